"""Faults a careful SRE tries: two runs at once, and a run killed with -9. Each must end in a
clean failure or the tables of one clean run, and re-running is always safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from recon_assets.config import ReconSettings
from recon_assets.local.bootstrap import seed_local_ledger, settings_emulator_config
from tests.clock import PINNED_NOW, pinned_days
from tests.ledger_fixtures import database_copy
from tests.pipeline_fixtures import assert_same_tables, snapshot

pytestmark = [pytest.mark.timeout(900)]

RECON = Path(sys.executable).with_name("recon")


def recon_env(home: Path, dsn: str, now: int, first_partition: str) -> dict[str, str]:
    env = {
        **os.environ,
        "RECON_HOME": str(home),
        "RECON_LEDGER_DSN": dsn,
        "RECON_START_DATE": first_partition,
        "RECON_EMULATOR_CHARGES_PER_DAY": "200",
        "RECON_EMULATOR_NOW": str(now),
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }
    env.pop("DAGSTER_HOME", None)
    return env


def backfill(
    env: dict[str, str], first: str, last: str, *, sigterm_ignored: bool = False
) -> subprocess.Popen[bytes]:
    """`recon backfill`; with `sigterm_ignored`, started as a parent that ignores SIGTERM would
    start it (an ignored signal survives exec)."""
    return subprocess.Popen(
        [str(RECON), "backfill", "--start", first, "--end", last],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=(lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
        if sigterm_ignored else None,
    )  # fmt: skip


def seed_ledger_for(env: dict[str, str], dsn: str, first: date, last: date) -> None:
    """The ledger `dsn` names, seeded for the emulator account of `env` before any run (recon
    only reads a ledger named by RECON_LEDGER_DSN)."""
    s = ReconSettings.from_env({k: v for k, v in env.items() if k.startswith("RECON_")})
    seed_local_ledger(dsn, settings_emulator_config(s), first, last, tolerance_days=3)


@pytest.fixture
def ledger_db(ledger_pg: object) -> Iterator[str]:
    with database_copy(ledger_pg.dsn) as dsn:  # type: ignore[attr-defined]
        yield dsn


@pytest.mark.xdist_group("faults-overlap")
def test_two_overlapping_runs_at_once_end_well_and_equal_one_run(
    ledger_db: str, dbt_manifest: Path, tmp_path: Path
) -> None:
    d1, d2, d3 = pinned_days(3)
    now = PINNED_NOW
    start = (d1 - timedelta(days=2)).isoformat()
    env = recon_env(tmp_path / "both", ledger_db, now, start)
    # The ledger of the three days exists before either run: RECON_LEDGER_DSN names a ledger
    # recon only reads, as a real one exists before recon runs.
    seed_ledger_for(env, ledger_db, d1, d3)
    a = backfill(env, d1.isoformat(), d2.isoformat())
    b = backfill(env, d2.isoformat(), d3.isoformat())
    out_a, _ = a.communicate(timeout=600)
    out_b, _ = b.communicate(timeout=600)
    assert a.returncode == 0, out_a.decode(errors="replace")[-2000:]
    assert b.returncode == 0, out_b.decode(errors="replace")[-2000:]
    # one of them waited for the other: one writer at a time, never a raw file-lock error
    assert b"waiting for it to finish" in out_a + out_b
    assert b"IO Error" not in out_a + out_b
    # the same days as ONE run: the same raw and mart rows
    one = recon_env(tmp_path / "one", ledger_db, now, start)
    c = backfill(one, d1.isoformat(), d3.isoformat())
    out_c, _ = c.communicate(timeout=600)
    assert c.returncode == 0, out_c.decode(errors="replace")[-2000:]
    assert_same_tables(
        snapshot(tmp_path / "both" / "warehouse.duckdb"),
        snapshot(tmp_path / "one" / "warehouse.duckdb"),
    )


@dataclass(frozen=True)
class CleanRun:
    """One clean run of the kill tests' day: what every killed-then-rerun run must equal."""

    day: date
    now: int
    start: str
    tables: dict[str, list[tuple]]


@pytest.fixture(scope="module")
def clean_run(
    ledger_pg: object, dbt_manifest: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CleanRun]:
    """The clean reference, run once for the three kill tests (they share its day and clock,
    and each of them runs on its own copy of the same ledger template)."""
    (day,) = pinned_days(1)
    now = PINNED_NOW
    start = (day - timedelta(days=2)).isoformat()
    home = tmp_path_factory.mktemp("clean")
    with database_copy(ledger_pg.dsn) as dsn:  # type: ignore[attr-defined]
        env = recon_env(home, dsn, now, start)
        seed_ledger_for(env, dsn, day, day)
        ref = backfill(env, *[day.isoformat()] * 2)
        out_ref, _ = ref.communicate(timeout=600)
        assert ref.returncode == 0, out_ref.decode(errors="replace")[-2000:]
        yield CleanRun(day, now, start, snapshot(home / "warehouse.duckdb"))


@pytest.mark.xdist_group("faults-kill")
@pytest.mark.parametrize("step", ["pull Stripe charges", "load charges", "dbt build"])
def test_kill_9_during_a_step_then_a_rerun_equals_a_clean_run(
    step: str, ledger_db: str, clean_run: CleanRun, tmp_path: Path
) -> None:
    """kill -9 the run's process as soon as the step before `step` has finished (so `step`
    is running or about to), then re-run: the tables equal those of one clean run."""
    day = clean_run.day.isoformat()
    env = recon_env(tmp_path / "killed", ledger_db, clean_run.now, clean_run.start)
    seed_ledger_for(env, ledger_db, clean_run.day, clean_run.day)
    before = {
        "pull Stripe charges": "extract the ledger",
        "load charges": "load ledger entries",
        "dbt build": "look-ups by id",
    }[step]
    proc = backfill(env, day, day)
    seen = b""
    assert proc.stdout is not None
    deadline = time.monotonic() + 300
    while before.encode() not in seen:
        line = proc.stdout.readline()
        assert line or proc.poll() is None, seen.decode(errors="replace")
        seen += line
        assert time.monotonic() < deadline
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    killed_at = time.monotonic()
    assert proc.returncode == -signal.SIGKILL
    rerun = backfill(env, day, day)
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out.decode(errors="replace")[-2000:]
    print(f"kill -9 during {step}: re-run recovered in {time.monotonic() - killed_at:.1f} s")
    assert_same_tables(snapshot(tmp_path / "killed" / "warehouse.duckdb"), clean_run.tables)


@pytest.mark.xdist_group("faults-kill")
def test_a_run_out_of_duckdb_memory_says_what_to_raise_then_a_rerun_equals_a_clean_run(
    ledger_db: str, clean_run: CleanRun, tmp_path: Path
) -> None:
    """DuckDB's memory limit too small for the work (1MB here; in real use, a first build of
    millions of charges at the default): the run fails naming the setting to raise, dbt's or the
    run worker's own, not DuckDB's "SET memory_limit", and the same run at the defaults gives the
    tables of one clean run."""
    day = clean_run.day.isoformat()
    env = recon_env(tmp_path / "small", ledger_db, clean_run.now, clean_run.start)
    seed_ledger_for(env, ledger_db, clean_run.day, clean_run.day)
    # started as a parent that ignores SIGTERM would start it (a test worker after Dagster's
    # interrupt handling does): recon must not pass that on to what Dagster starts per step
    small = backfill({**env, "RECON_DUCKDB_MEMORY_LIMIT": "1MB"}, day, day, sigterm_ignored=True)
    out, _ = small.communicate(timeout=600)
    text = out.decode(errors="replace")
    assert small.returncode == 1, text[-2000:]
    assert "recon backfill failed: DuckDB ran out of its memory limit (1MB)" in text, text[-2000:]
    assert "RECON_DUCKDB_MEMORY_LIMIT=1GB" in text
    # Dagster's compute-log teardown stopped its `tail` (it raises TimeoutExpired when it cannot)
    (log,) = (tmp_path / "small" / "logs").glob("backfill-*.log")
    assert "TimeoutExpired" not in log.read_text(errors="replace")
    # the run worker's own connections have their own limit: out of it, the advice names it
    tiny = backfill({**env, "RECON_DUCKDB_RUN_MEMORY_LIMIT": "1MB"}, day, day)
    out, _ = tiny.communicate(timeout=600)
    text = out.decode(errors="replace")
    assert tiny.returncode == 1, text[-2000:]
    assert "recon backfill failed: DuckDB ran out of the run worker's memory limit (1MB)" in text, (
        text[-2000:]
    )
    assert "RECON_DUCKDB_RUN_MEMORY_LIMIT=256MB" in text
    rerun = backfill(env, day, day)
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out.decode(errors="replace")[-2000:]
    assert_same_tables(snapshot(tmp_path / "small" / "warehouse.duckdb"), clean_run.tables)


@pytest.mark.xdist_group("faults-network")
def test_network_faults_during_a_whole_graph_run_change_nothing(
    ledger_db: str, dbt_manifest: Path, tmp_path: Path
) -> None:
    """The whole graph against an emulator answering 15 % of requests with 5xx, resetting 10 %
    of connections and truncating 10 % of bodies (decided by request number, so no timing): the
    run succeeds, every retry is counted per kind, and the tables equal a run without faults."""
    from recon_assets.definitions import build_definitions
    from recon_assets.local.stripe_emulator import EmulatorConfig, FaultConfig, StripeEmulator
    from recon_assets.progress import materialize_range

    (day,) = pinned_days(1)
    now = PINNED_NOW
    base = EmulatorConfig(seed=11, charges_per_day=2500, start_date=day - timedelta(days=3),
                          end_date=day + timedelta(days=2), now=now)  # fmt: skip
    noisy = FaultConfig(error_5xx_rate=0.15, reset_rate=0.1, truncate_rate=0.1)
    seed_local_ledger(ledger_db, base, day, day, tolerance_days=3)

    def run(home: Path, cfg: EmulatorConfig) -> dict[str, object]:
        with StripeEmulator(cfg, host="127.0.0.1", port=0) as emu:
            s = ReconSettings.from_env(
                {
                    "RECON_HOME": str(home),
                    "RECON_START_DATE": (day - timedelta(days=3)).isoformat(),
                    "RECON_LEDGER_DSN": ledger_db,
                    "STRIPE_API_BASE": emu.base_url,
                    "STRIPE_API_KEY": cfg.api_key,
                    "RECON_STRIPE_MAX_RETRIES": "20",
                }
            )
            result = materialize_range(build_definitions(s), day, day)
        assert result.success
        (mat,) = result.asset_materializations_for_node("stripe_charges")
        return {k: v.value for k, v in mat.metadata.items()}

    faulty = run(tmp_path / "faulty", EmulatorConfig(**{**base.__dict__, "faults": noisy}))
    clean = run(tmp_path / "clean", base)
    assert int(faulty["run_server_errors_5xx"]) > 0  # type: ignore[call-overload]
    assert int(faulty["run_connection_errors"]) + int(faulty["run_bad_bodies"]) > 0  # type: ignore[call-overload]
    assert int(faulty["run_retries"]) == sum(  # type: ignore[call-overload]
        int(faulty[k])  # type: ignore[call-overload]
        for k in ("run_server_errors_5xx", "run_connection_errors", "run_bad_bodies",
                  "run_rate_limited_429")
    )  # fmt: skip
    assert int(clean["run_retries"]) == 0  # type: ignore[call-overload]
    counts = {k: faulty[k] for k in faulty if (k.startswith("run_") and "error" in k) or k in (
        "run_retries", "run_bad_bodies", "run_requests")}  # fmt: skip
    print(f"network faults: {counts}")
    assert_same_tables(
        snapshot(tmp_path / "faulty" / "warehouse.duckdb"),
        snapshot(tmp_path / "clean" / "warehouse.duckdb"),
    )


def wait_for_worker_pid(home: Path, run_id: str, timeout_s: float = 300) -> int:
    """The pid of a run's worker process, read as the dead-worker sensor reads it."""
    import dagster as dg

    from recon_assets.defs.automation import run_worker

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            worker = run_worker(instance, run_id)
        if worker is not None:
            return worker.pid
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} never reported its worker's pid")


@pytest.mark.xdist_group("faults-daemon")
def test_the_daemon_fails_a_dead_run_and_then_starts_the_run_queued_behind_it(
    ledger_db: str, dbt_manifest: Path, tmp_path: Path
) -> None:
    """Through Dagster's own machinery with the shipped dagster.yaml: the daemon's run queue
    starts run A; its worker is killed with -9 together with the code server that started it
    (a crash of the process tree: a surviving code server notices its own worker's death and
    fails the run itself); run B of the same day stays queued behind the `recon_writer` pool
    while A holds it; the dead-worker sensor, in the code server the daemon starts again, marks
    A failed (not its 3-hour maximum runtime, which nothing here shortens), and B starts within
    5 minutes of the kill and succeeds."""
    import json

    import yaml

    from recon_assets.cli import dagster_home
    from recon_assets.defs.automation import NIGHTLY_JOB

    (day,) = pinned_days(1)
    now = PINNED_NOW
    env = recon_env(tmp_path / "home", ledger_db, now, (day - timedelta(days=2)).isoformat())
    # the sensor looks every 10 s here, not every minute, so it also looks while B runs: a
    # sensor that took a healthy worker for dead would fail B (one did: it looked for the run id
    # in the command line of a code server's worker, a spawned child that does not carry it).
    # A's end is bounded by the daemon itself, which starts the killed code server again only
    # when it reloads its workspace (every 60 s, Dagster's RELOAD_WORKSPACE_INTERVAL).
    env["RECON_DEAD_RUN_CHECK_SECONDS"] = "10"
    s = ReconSettings.from_env({k: v for k, v in env.items() if k.startswith("RECON_")})
    assert s.dead_run_check_seconds == 10
    home = dagster_home(s)
    config = yaml.safe_load((home / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"] == {"granularity": "run", "default_limit": 1}
    assert config["run_monitoring"]["max_runtime_seconds"] >= 3600  # not what ends A here
    env["DAGSTER_HOME"] = str(home)
    root = Path(__file__).resolve().parents[1]
    dagster = [str(Path(sys.executable).with_name("dagster"))]
    workspace = ["-w", str(root / "workspace.yaml")]

    def launch(**tags: str) -> None:
        subprocess.run(
            [*dagster, "job", "launch", *workspace, "-j", NIGHTLY_JOB,
             "--tags", json.dumps({"dagster/partition": day.isoformat(), **tags})],
            env=env, cwd=root, check=True, capture_output=True, timeout=300,
        )  # fmt: skip

    def runs() -> list[dict[str, object]]:
        """The nightly job's runs, oldest first: A and B (the daemon's sensors may launch runs
        of their own, such as the freshness check's, which hold no pool)."""
        import dagster as dg

        with dg.DagsterInstance.from_config(str(home)) as instance:
            return [
                {
                    "id": r.dagster_run.run_id,
                    "status": r.dagster_run.status.value,
                    "start": r.start_time,
                    "end": r.end_time,
                }
                for r in instance.get_run_records(
                    filters=dg.RunsFilter(job_name=NIGHTLY_JOB),
                    order_by="create_timestamp",
                    ascending=True,
                )
            ]

    def wait_for(predicate: object, what: str, timeout_s: float = 400) -> list[dict[str, object]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = runs()
            if predicate(got):  # type: ignore[operator]
                return got
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}: {runs()}")

    launch()
    (queued,) = runs()
    assert queued["status"] == "QUEUED"
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", *workspace],
        env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        a_id = str(queued["id"])
        wait_for(lambda rs: rs[0]["status"] == "STARTED", "run A to start")
        pid = wait_for_worker_pid(home, a_id)
        server = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert "grpc" in Path(f"/proc/{server}/cmdline").read_text(), "not the code server"
        os.kill(server, signal.SIGKILL)  # first: it would see its worker die
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        launch()
        # B starts within 5 minutes of the kill
        wait_for(lambda rs: len(rs) == 2 and rs[1]["start"] is not None, "B to start", 300)
        got = wait_for(
            lambda rs: len(rs) == 2 and rs[0]["status"] == "FAILURE" and rs[1]["status"] in (
                "SUCCESS", "FAILURE"),
            "A failed by the dead-worker sensor and B finished",
        )  # fmt: skip
        import dagster as dg

        with dg.DagsterInstance.from_config(str(home)) as instance:
            failure = [e.message for e in instance.all_logs(
                a_id, of_type=dg.DagsterEventType.RUN_FAILURE)]  # fmt: skip
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
    a, b = got
    assert b["status"] == "SUCCESS", got
    assert any(f"worker process (pid {pid}) is gone" in (m or "") for m in failure), failure
    failed_after, started_after = float(a["end"]) - killed_at, float(b["start"]) - killed_at  # type: ignore[arg-type]
    print(f"worker killed: run A failed {failed_after:.0f} s later, queued B started "
          f"{started_after:.0f} s later")  # fmt: skip
    assert started_after <= 300
    # B waited in the queue for the pool A held until A was marked failed
    assert b["start"] is not None and a["end"] is not None and b["start"] >= a["end"]
