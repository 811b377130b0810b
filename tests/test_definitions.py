"""The code location: what Dagster loads, how the Stripe asset runs a range, and the schedule."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from recon_assets.cli import INSTANCE_YAML
from recon_assets.config import ConfigError, ReconSettings
from recon_assets.definitions import build_definitions
from recon_assets.defs.automation import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    catch_up_window,
    trailing_window,
)
from recon_assets.defs.partitions import daily_partitions
from recon_assets.local.bootstrap import settings_emulator_config
from recon_assets.local.stripe_emulator import ChargeGenerator
from recon_assets.progress import materialize_range
from recon_assets.timewindows import BUSINESS_TZ, day_window

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(300)
NOW = int(datetime(2024, 6, 20, tzinfo=BUSINESS_TZ).timestamp())


@pytest.fixture
def settings(tmp_path: Path, dbt_manifest: Path) -> ReconSettings:
    return ReconSettings.from_env(
        {
            "RECON_HOME": str(tmp_path / "recon"),
            "RECON_START_DATE": "2024-06-01",
            "RECON_EMULATOR_CHARGES_PER_DAY": "700",
            "RECON_EMULATOR_NOW": str(NOW),
        }
    )


def test_import_reads_no_environment() -> None:
    """Importing the module must not read env vars or parse dbt; loading the defs does."""
    code = (
        "import recon_assets.definitions as d\n"
        "try:\n    d.defs()\nexcept Exception as e:\n    print(type(e).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"RECON_ENV": "bogus", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "ConfigError"


def test_a_local_code_location_loads_no_integration_it_does_not_use(tmp_path: Path) -> None:
    """Loading the code location costs what it needs: with a local stage, DuckDB and no Slack
    bot, neither dagster-snowflake (snowpark, about 7 s) nor dagster-aws nor dagster-slack is
    imported, nor the local emulator and embedded Postgres (a run starts them). Nor dbt-core: it
    lives in its own environment (`.venv-dbt`), because where it is importable `import
    dagster_dbt` imports it too (2.3 s); a run starts dbt as a subprocess."""
    code = (
        "import sys\n"
        "import recon_assets.definitions as d\n"
        "d.defs().resolve_all_job_defs()\n"
        "heavy = ('dagster_snowflake', 'snowflake.connector', 'snowflake.snowpark', 'dagster_aws',"
        " 'boto3', 'dagster_slack', 'slack_sdk', 'recon_assets.local', 'dbt.version',"
        " 'dbt.adapters.base')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RECON_", "SNOWFLAKE_", "STRIPE_", "DAGSTER_"))
    }
    env["RECON_HOME"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_graph_lineage_partitions_and_backfill_policy(settings: ReconSettings) -> None:
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    key = dg.AssetKey
    assert graph.get(key(["raw", "stripe_charges"])).parent_keys == {key("stripe_charges")}
    assert graph.get(key(["raw", "ledger_entries"])).parent_keys == {key("ledger_entries")}
    stg = graph.get(key(["staging", "stg_stripe__charges"]))
    assert key(["raw", "stripe_charges"]) in stg.parent_keys  # dbt source → loader asset
    report = graph.get(key("reconciliation_report"))
    assert key(["marts", "rpt_daily_reconciliation"]) in report.parent_keys
    for node in graph.asset_nodes:
        if node.is_materializable:
            pd = node.partitions_def
            assert isinstance(pd, dg.DailyPartitionsDefinition)
            assert pd.timezone == "America/New_York"
            assert node.backfill_policy == dg.BackfillPolicy.single_run()
    charges = graph.get(key("stripe_charges"))
    assert {"stripe", "parquet"} <= set(charges.kinds)
    assert charges.owners and charges.group_name == "stripe" and charges.description


def test_stripe_charges_three_day_range_in_one_run(settings: ReconSettings) -> None:
    defs = build_definitions(settings)
    first, last = date(2024, 6, 3), date(2024, 6, 5)
    result = materialize_range(defs, first, last, selection="stripe_charges")
    assert result.success
    mats = result.asset_materializations_for_node("stripe_charges")
    assert sorted(m.partition for m in mats) == ["2024-06-03", "2024-06-04", "2024-06-05"]
    gen = ChargeGenerator(settings_emulator_config(settings))
    expected = {
        d.isoformat(): gen.count(day_window(d).start, day_window(d).end)
        for d in (first, date(2024, 6, 4), last)
    }
    # each day's own figures on that day's materialization (Dagster's plots are per day) ...
    per_day = {m.partition: {k: v.value for k, v in m.metadata.items()} for m in mats}
    assert {d: m["rows"] for d, m in per_day.items()} == expected
    assert {d: m["fetched"] for d, m in per_day.items()} == expected
    assert all(m["quarantined"] == 0 and m["staged_uri"] for m in per_day.values())
    assert len({m["staged_uri"] for m in per_day.values()}) == 3
    # ... and the run's own figures, named as the run's, the same on every day
    meta = per_day["2024-06-03"]
    assert meta["run_rows"] == sum(expected.values()) and meta["run_retries"] == 0
    assert meta["run_requests"] >= sum(expected.values()) / 100
    for k in ("run_seconds", "run_rows_per_s", "run_rate_limited_429", "schema_drift"):
        assert k in meta
    checks = result.get_asset_check_evaluations()
    assert [c.passed for c in checks] == [True]
    assert settings.stripe_api_key not in str(meta)


@pytest.mark.parametrize(
    ("today", "restate", "expected"),
    [
        (date(2024, 3, 11), 3, (date(2024, 3, 7), date(2024, 3, 10))),
        (date(2024, 6, 2), 3, (date(2024, 6, 1), date(2024, 6, 1))),  # clipped at the start
        (date(2024, 6, 1), 3, None),  # no complete day yet
    ],
)
def test_trailing_window(today: date, restate: int, expected: tuple[date, date] | None) -> None:
    assert (
        trailing_window(today, restate, date(2024, 6, 1) if today.month == 6 else date(2024, 1, 1))
        == expected
    )


def test_nightly_schedule_requests_yesterday_and_the_restatement_window(
    settings: ReconSettings, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def("nightly_reconciliation_schedule")
    assert schedule.execution_timezone == "America/New_York"
    reported(instance, settings.start_date, date(2024, 11, 2))  # every night ran
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime(2024, 11, 4, 1, 0, tzinfo=BUSINESS_TZ),
    ) as ctx:  # exited: it enters an instance (see `instance`)
        (req,) = schedule.evaluate_tick(ctx).run_requests or []
    assert req.tags[RANGE_START_TAG] == "2024-10-31"  # >= T days back, over the DST change
    assert req.tags[RANGE_END_TAG] == "2024-11-03"
    assert "recon/caught_up_from" not in req.tags


@pytest.fixture
def instance(tmp_path: Path) -> dg.DagsterInstance:
    """A real (sqlite) instance for schedule ticks, in a folder that outlives the test: Dagster
    remembers the last instance it saw for loading definitions, so one removed mid-run (as
    `instance_for_test` does) breaks every later `resolve_*` in the process. For the same
    reason each test exits its schedule context (`with`): a tick that reads `context.instance`
    enters an instance of its own, and one left entered, once garbage-collected, failed every
    later definitions load of the worker ("Attempted to resolve undefined DagsterInstance
    weakref", seen when the tests were dealt to three workers)."""
    home = tmp_path / "dagster-home"
    home.mkdir()
    return dg.DagsterInstance.local_temp(str(home))


def reported(instance: dg.DagsterInstance, first: date, last: date) -> None:
    """Record the report as materialized for [first, last], as runs would have."""
    d = first
    while d <= last:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(dg.AssetKey("reconciliation_report"), partition=d.isoformat())
        )
        d += timedelta(days=1)


def test_missed_nights_are_caught_up_by_the_next_tick_as_one_run(
    settings: ReconSettings, instance: dg.DagsterInstance
) -> None:
    """The daemon was down for 6 nights: the next tick's one run starts at the first day whose
    report is missing, not just at the trailing window."""
    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def("nightly_reconciliation_schedule")
    reported(instance, settings.start_date, date(2024, 10, 24))
    reported(instance, date(2024, 10, 27), date(2024, 10, 27))  # one night in between ran
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime(2024, 11, 4, 1, 0, tzinfo=BUSINESS_TZ),
    ) as ctx:  # exited: it enters an instance (see `instance`)
        (req,) = schedule.evaluate_tick(ctx).run_requests or []
    assert (req.tags[RANGE_START_TAG], req.tags[RANGE_END_TAG]) == ("2024-10-25", "2024-11-03")
    assert req.tags["recon/caught_up_from"] == "2024-10-25"
    assert req.run_key == "nightly-2024-11-03"


def failed_report_run(instance: dg.DagsterInstance, start: date, first: date, last: date) -> None:
    """A run over [first, last] whose report step failed, as a real run records it."""

    @dg.asset(name="reconciliation_report", partitions_def=daily_partitions(start))
    def report() -> None:
        raise RuntimeError("the report step failed")

    result = dg.materialize(
        [report],
        instance=instance,
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        raise_on_error=False,
    )
    assert not result.success


@pytest.mark.parametrize("one_planned_event_per_asset", [False, True])
def test_a_day_whose_last_attempt_failed_is_caught_up_whatever_the_planned_events(
    settings: ReconSettings,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    one_planned_event_per_asset: bool,
) -> None:
    """A run over 10-20..10-22 failed after every night had reported: the next tick starts there.
    Dagster's own partition status says FAILED only when the run wrote one planned event per
    partition; with DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS (docs/operations.md, for long
    backfills) it still says MATERIALIZED, so the tick must not read it. A day reported again
    after the failure is done again."""
    if one_planned_event_per_asset:
        monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    else:
        monkeypatch.delenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", raising=False)
    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def("nightly_reconciliation_schedule")
    reported(instance, settings.start_date, date(2024, 11, 2))
    failed_report_run(instance, settings.start_date, date(2024, 10, 20), date(2024, 10, 22))
    status = instance.get_status_by_partition(
        dg.AssetKey("reconciliation_report"), ["2024-10-21"], daily_partitions(settings.start_date)
    )
    expected = "MATERIALIZED" if one_planned_event_per_asset else "FAILED"
    assert status is not None and status["2024-10-21"].name == expected

    def tick() -> dg.RunRequest:
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2024, 11, 4, 1, 0, tzinfo=BUSINESS_TZ),
        ) as ctx:  # exited: it enters an instance (see `instance`)
            (req,) = schedule.evaluate_tick(ctx).run_requests or []
        return req

    req = tick()
    assert (req.tags[RANGE_START_TAG], req.tags[RANGE_END_TAG]) == ("2024-10-20", "2024-11-03")
    assert req.tags["recon/caught_up_from"] == "2024-10-20"
    reported(instance, date(2024, 10, 20), date(2024, 10, 22))  # re-run by hand, and passed
    req = tick()
    assert req.tags[RANGE_START_TAG] == "2024-10-31"
    assert "recon/caught_up_from" not in req.tags


@pytest.mark.parametrize(
    ("done_until", "catchup", "expected_first"),
    [
        (date(2024, 11, 2), 31, date(2024, 10, 31)),  # nothing missed: the trailing window
        (date(2024, 10, 20), 31, date(2024, 10, 21)),  # missed days: from the first of them
        (date(2024, 9, 1), 10, date(2024, 10, 25)),  # older gaps are a backfill's, not a tick's
    ],
)
def test_catch_up_window(done_until: date, catchup: int, expected_first: date) -> None:
    done = {
        date(2024, 6, 1) + timedelta(days=i)
        for i in range((done_until - date(2024, 6, 1)).days + 1)
    }
    got = catch_up_window(date(2024, 11, 4), 3, date(2024, 6, 1), done, catchup)
    assert got == (expected_first, date(2024, 11, 3))


@pytest.mark.parametrize("raw, want", [(None, 60), ("15", 15)])
def test_the_dead_run_sensor_looks_as_often_as_the_setting_says(
    tmp_path: Path, dbt_manifest: Path, raw: str | None, want: int
) -> None:
    """RECON_DEAD_RUN_CHECK_SECONDS reaches the daemon's sensor (a minute by default); below
    5 s it is refused naming the variable."""
    env = {"RECON_HOME": str(tmp_path / "recon"), "RECON_START_DATE": "2024-06-01"}
    if raw is not None:
        env["RECON_DEAD_RUN_CHECK_SECONDS"] = raw
    defs = build_definitions(ReconSettings.from_env(env))
    sensor = defs.resolve_sensor_def("dead_run_worker_sensor")
    assert sensor.minimum_interval_seconds == want
    with pytest.raises(ConfigError, match="RECON_DEAD_RUN_CHECK_SECONDS must be >= 5"):
        ReconSettings.from_env({**env, "RECON_DEAD_RUN_CHECK_SECONDS": "2"})


def test_weekly_deep_restatement_requests_the_last_120_days_as_one_run(
    settings: ReconSettings, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def("deep_restatement_schedule")
    assert schedule.execution_timezone == "America/New_York"
    assert schedule.cron_schedule == "0 3 * * 0"  # Sundays, after the nightly run
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime(2024, 11, 10, 3, 0, tzinfo=BUSINESS_TZ),
    ) as ctx:  # exited: it enters an instance (see `instance`)
        (req,) = schedule.evaluate_tick(ctx).run_requests or []
    assert req.tags[RANGE_END_TAG] == "2024-11-09"
    # 120 days before yesterday, clipped at the first partition of these settings
    want = max(date(2024, 11, 9) - timedelta(days=120), settings.start_date)
    assert req.tags[RANGE_START_TAG] == want.isoformat()
    assert req.run_key == "deep-2024-11-09"


def test_a_missed_9am_deadline_fails_the_freshness_check_at_error_and_alerts(
    settings: ReconSettings, tmp_path: Path
) -> None:
    """The mission's promise, run: the report's freshness check, evaluated on an instance where
    the day it expects is missing, fails at ERROR severity against 09:00 US Eastern, expecting
    the day before its latest 09:00 (whatever the time of day this runs), and the run-success
    sensor sends the alert naming that day; once the day is written, it passes."""
    import json
    import warnings

    from recon_assets.defs.automation import REPORT_KEY, AlertResource, build_automation

    defs = build_definitions(settings)  # the code location wires this very check and sensors
    (check_key,) = [c for c in defs.resolve_asset_graph().asset_check_keys
                    if c.asset_key == REPORT_KEY and c.name == "freshness_check"]  # fmt: skip
    for sensor in ("report_freshness_sensor", "deadline_at_risk_sensor",
                   "run_failure_alert_sensor", "run_success_alert_sensor"):  # fmt: skip
        assert defs.resolve_sensor_def(sensor)

    @dg.asset(key=REPORT_KEY, partitions_def=daily_partitions(settings.start_date))
    def report() -> None:
        """The report's partitions and key, without its work: only the check is exercised."""

    auto = build_automation([report], start_date=settings.start_date, restate_days=3)
    (freshness,) = auto["asset_checks"]
    assert freshness.check_key == check_key
    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster"))

    def evaluate() -> tuple[dg.ExecuteInProcessResult, dg.AssetCheckEvaluation]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = dg.materialize([report, freshness], instance=instance,
                                    selection=dg.AssetSelection.checks(freshness))  # fmt: skip
        (evaluation,) = result.get_asset_check_evaluations()
        return result, evaluation

    run, missed = evaluate()
    assert not missed.passed and missed.severity == dg.AssetCheckSeverity.ERROR
    params = missed.metadata["dagster/freshness_params"].value
    assert params == {"deadline_cron": "0 9 * * *", "timezone": BUSINESS_TZ.key}
    tick = datetime.fromtimestamp(
        missed.metadata["dagster/latest_cron_tick_timestamp"].value, BUSINESS_TZ
    )
    assert (tick.hour, tick.minute) == (9, 0) and tick <= datetime.now(BUSINESS_TZ)
    expected = (tick.date() - timedelta(days=1)).isoformat()  # the day before the deadline
    assert f"expect partition {expected} to have arrived" in (missed.description or "")

    alerts = AlertResource(log_path=str(tmp_path / "alerts.jsonl"))
    success = next(e for e in run.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
    sensors = {s.name: s for s in auto["sensors"]}
    with dg.build_run_status_sensor_context(
        "run_success_alert_sensor", success, instance, run.dagster_run,
        resources={"alerts": alerts},
    ) as ctx:  # fmt: skip
        sensors["run_success_alert_sensor"](ctx)
    received = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in received] == ["check_failed"], received
    assert "freshness_check" in received[0]["title"] and expected in received[0]["title"]

    dg.materialize([report], instance=instance, partition_key=expected)
    assert evaluate()[1].passed


def test_the_demo_prepares_a_missing_or_stale_manifest(tmp_path: Path) -> None:
    """A fresh clone has no manifest and a pull can change a model: `recon demo`/`recon dev`
    parse again exactly then, and not when the manifest is current."""
    import os
    import shutil

    from recon_assets.defs.dbt_assets import (
        DBT_PROJECT_DIR,
        dbt_project,
        ensure_manifest,
        manifest_is_current,
    )

    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    assert not manifest_is_current(project)
    manifest = ensure_manifest("local", project)
    assert manifest == dbt_project("local", project).manifest_path and manifest.exists()
    assert manifest_is_current(project)
    parsed_at = manifest.stat().st_mtime
    assert ensure_manifest("local", project).stat().st_mtime == parsed_at  # no re-parse
    model = project / "models" / "marts" / "fct_charge_reconciliation.sql"
    model.write_text(model.read_text() + "\n-- edited\n")
    os.utime(manifest, (parsed_at - 60, parsed_at - 60))  # so the edit is surely after it
    assert not manifest_is_current(project)
    ensure_manifest("local", project)
    assert manifest_is_current(project)
    assert "-- edited" in (project / "target" / "local" / "manifest.json").read_text()


def test_a_failed_blocking_check_publishes_nothing_and_the_load_refuses_the_day(
    tmp_path: Path, dbt_manifest: Path
) -> None:
    """The quarantine check fails (5 % malformed charges > 1 %): the day's current-file pointer
    does not move, and a later load of the day refuses it, naming the check, instead of loading
    the previous version as if it were current. A clean re-pull makes the day loadable again."""
    from recon_assets.local.stripe_emulator import EmulatorConfig, FaultConfig, StripeEmulator
    from recon_assets.stage.manifest import manifest_key

    day = date(2024, 6, 3)
    base = EmulatorConfig(
        seed=5, charges_per_day=400, start_date=date(2024, 6, 1), end_date=date(2024, 6, 10),
        now=NOW,
    )  # fmt: skip
    home = tmp_path / "recon"

    def run(cfg: EmulatorConfig, selection: str) -> dg.ExecuteInProcessResult:
        with StripeEmulator(cfg, host="127.0.0.1", port=0) as emu:
            s = ReconSettings.from_env(
                {
                    "RECON_HOME": str(home),
                    "RECON_START_DATE": "2024-06-01",
                    "STRIPE_API_BASE": emu.base_url,
                    "STRIPE_API_KEY": cfg.api_key,
                }
            )
            return materialize_range(build_definitions(s), day, day, selection=selection)

    run(base, "stripe_charges")  # a good version of the day first
    pointer = home / "stage" / manifest_key("stripe_charges", day)
    good = pointer.read_text()
    broken = EmulatorConfig(**{**base.__dict__, "faults": FaultConfig(malformed_rate=0.05)})
    with pytest.raises(Exception, match="quarantine_rate_below_threshold"):
        run(broken, "stripe_charges")
    assert pointer.read_text() == good  # the pointer did not move
    with pytest.raises(Exception) as err:
        run(base, "raw/stripe_charges")
    assert "failed the blocking check 'quarantine_rate_below_threshold'" in str(err.value)
    # a clean re-pull publishes the day again, and the load takes it
    run(base, "stripe_charges")
    assert pointer.read_text() != good
    result = run(base, "raw/stripe_charges")
    assert result.success


def test_every_asset_check_schedule_and_sensor_says_what_it_is(settings: ReconSettings) -> None:
    """Descriptions render as written (no angle brackets the UI's Markdown swallows), dbt
    models show their YAML description (not their SQL), and the location is named recon."""
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    for node in graph.asset_nodes:
        text = node.description or ""
        assert text, f"{node.key.to_user_string()} has no description"
        assert "<" not in text, node.key.to_user_string()
        assert not text.lstrip().lower().startswith(("select", "with", "{{", "{%")), (
            f"{node.key.to_user_string()} shows its SQL"
        )
    for spec in graph.asset_check_keys:
        assert graph.get_check_spec(spec).description, spec
    for s in defs.schedules or []:
        assert s.description, s.name
    for sensor in defs.sensors or []:
        assert sensor.description or sensor.name == "report_freshness_sensor", sensor.name
    assert "location_name: recon" in (REPO / "workspace.yaml").read_text()


def test_local_tooling_is_wired_only_where_it_runs(dbt_manifest: Path) -> None:
    """With a real Stripe (STRIPE_API_BASE) and ledger (RECON_LEDGER_DSN), as in production,
    loading the location imports nothing of the emulator, the embedded Postgres or the seeder."""
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "from recon_assets.config import ReconSettings\n"
        "from recon_assets.definitions import build_definitions\n"
        "from recon_assets.defs.resources import LocalStripeResource, StripeResource\n"
        "d = build_definitions(ReconSettings.from_env())\n"
        "r = d.resources['stripe']\n"
        "assert type(r) is StripeResource, type(r)\n"
        "print(sorted(m for m in sys.modules if m.startswith('recon_assets.local')))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "RECON_HOME": "/tmp/recon-wiring",
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "STRIPE_API_KEY": "sk_test_x",
        "RECON_LEDGER_DSN": "postgresql://reader@db:5432/ledger",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
        cwd=REPO, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


def guide_storage_block(guide: str) -> str:
    """The `storage:` block of docs/operations.md (its first yaml block), as the guide gives it."""
    return textwrap.dedent(guide.split("```yaml\n", 1)[1].split("```", 1)[0])


_PARTITIONED_RUN = """
import dagster as dg

@dg.asset(partitions_def=dg.DailyPartitionsDefinition("2024-01-01"), pool="recon_writer")
def day() -> int:
    return 1

with dg.DagsterInstance.get() as instance:
    try:
        ok = dg.materialize([day], instance=instance, partition_key="2024-01-02").success
        print("RUN", "ok" if ok else "failed")
    except Exception as e:
        print("RUN raised", type(e).__name__, str(e).splitlines()[0])
"""


@pytest.mark.timeout(180)
def test_the_production_instance_block_of_the_operations_guide_runs_on_postgres(
    empty_db_dsn: str, tmp_path: Path
) -> None:
    """docs/operations.md's `storage:` block, merged with recon_assets/dagster.yaml as it says,
    on a real Postgres: a partitioned run succeeds with the psycopg2 URL the guide prescribes,
    and fails with the plain `postgresql://` URL the guide warns about (SQLAlchemy 2.1 then
    picks psycopg 3). If an upgrade makes the plain URL work, the guide's warning must go."""
    guide = (REPO / "docs" / "operations.md").read_text()
    block = guide_storage_block(guide)
    assert block.startswith("storage:\n  postgres:"), block
    assert "postgresql+psycopg2://" in guide
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML.read_text() + "\n" + block)
    plain = empty_db_dsn
    assert plain.startswith("postgresql://"), plain

    def run(url: str) -> str:
        env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_PG_URL": url}
        proc = subprocess.run(
            [sys.executable, "-c", _PARTITIONED_RUN],
            env=env, capture_output=True, text=True, timeout=150, check=False,
        )  # fmt: skip
        line = [x for x in proc.stdout.splitlines() if x.startswith("RUN")]
        assert line, proc.stdout[-2000:] + proc.stderr[-3000:]
        return line[-1]

    assert run(plain.replace("postgresql://", "postgresql+psycopg2://", 1)) == "RUN ok"
    failed = run(plain)
    assert failed.startswith("RUN raised ProgrammingError"), failed
    assert 'syntax error at or near "$1"' in failed, failed


_RANGE_RUN = """
import dagster as dg

days = dg.DailyPartitionsDefinition("2024-01-01", end_date="2024-01-11")

@dg.asset(partitions_def=days)
def upstream() -> None:
    pass

@dg.asset(partitions_def=days, deps=[upstream])
def downstream() -> None:
    pass

with dg.DagsterInstance.get() as instance:
    result = dg.materialize(
        [upstream, downstream], instance=instance,
        tags={"dagster/asset_partition_range_start": "2024-01-01",
              "dagster/asset_partition_range_end": "2024-01-10"},
    )
    ok = result.success
    planned = instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=1000
    ).records
    print("PLANNED", len(planned))
    for key in (upstream.key, downstream.key):
        n = len(instance.fetch_materializations(key, limit=100).records)
        print("ASSET", key.to_user_string(), n, len(instance.get_materialized_partitions(key)))
    print("RUN", "ok" if ok else "failed")
"""


@pytest.mark.timeout(180)
def test_the_guides_event_settings_record_every_day_of_a_range_run_on_postgres(
    empty_db_dsn: str, tmp_path: Path
) -> None:
    """docs/operations.md's two Dagster event settings for long ranges, on a real Postgres with
    the guide's storage block: a 10-day range run of two assets records each day of each asset
    once (batched inserts lose none) and wrote one planned event per asset, not 20."""
    import re

    guide = (REPO / "docs" / "operations.md").read_text()
    settings = dict(re.findall(r"`(DAGSTER_[A-Z_]+)=([^`]+)`", guide))
    assert set(settings) == {
        "DAGSTER_EVENT_BATCH_SIZE",
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS",
    }, settings
    block = guide_storage_block(guide)
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML.read_text() + "\n" + block)
    url = empty_db_dsn.replace("postgresql://", "postgresql+psycopg2://", 1)
    env = {**os.environ, **settings, "DAGSTER_HOME": str(home), "DAGSTER_PG_URL": url}
    proc = subprocess.run(
        [sys.executable, "-c", _RANGE_RUN],
        env=env, capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    lines = [x for x in proc.stdout.splitlines() if x.startswith(("RUN", "ASSET", "PLANNED"))]
    assert "RUN ok" in lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert sorted(x for x in lines if x.startswith("ASSET")) == [
        "ASSET downstream 10 10",
        "ASSET upstream 10 10",
    ]
    assert "PLANNED 2" in lines, lines  # one planned event per asset, not one per day: the speed-up


def test_a_worker_is_alive_only_while_its_own_process_runs() -> None:
    """The dead-worker sensor's judgement on real processes: a running worker is alive whatever
    its command line (a code server's worker is a spawned child that does not name its run); the
    same process killed (a zombie until reaped, then gone) is not; nor is a live process created
    after the worker reported its pid (the kernel gave the pid to someone else)."""
    from recon_assets.defs.automation import Worker, worker_alive

    spawned_like = [sys.executable, "-c", "import time; time.sleep(120)"]  # no run id in it
    worker = subprocess.Popen(spawned_like)
    time.sleep(0.1)  # the worker reports its pid once it runs
    reported = Worker(worker.pid, time.time())
    try:
        assert worker_alive(reported)
        # the same pid, seen as a process created 10 s after the report: another process
        assert not worker_alive(reported._replace(reported_at=reported.reported_at - 10))
        worker.kill()
        deadline = datetime.now() + timedelta(seconds=30)
        while worker_alive(reported):  # a zombie, unreaped, is already dead
            assert datetime.now() < deadline
        assert Path(f"/proc/{worker.pid}").exists()  # not reaped yet: the zombie's entry
        worker.wait()
        assert not worker_alive(reported)
    finally:
        worker.kill()
        worker.wait()
