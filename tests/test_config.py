"""Settings from environment variables: defaults, validation, and secrets kept out of repr."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recon_assets.config import (
    DUCKDB_MEMORY_LIMIT,
    LOCAL_STRIPE_API_KEY,
    ConfigError,
    ReconSettings,
    local_start_date,
)

SNOWFLAKE = {
    "SNOWFLAKE_ACCOUNT": "acct",
    "SNOWFLAKE_USER": "recon",
    "SNOWFLAKE_PASSWORD": "pw-SECRET",
    "SNOWFLAKE_ROLE": "RECON",
    "SNOWFLAKE_WAREHOUSE": "RECON_WH",
    "SNOWFLAKE_DATABASE": "ANALYTICS",
}


def test_local_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = ReconSettings.from_env({})
    assert s.env == "local" and s.is_local
    assert s.home == tmp_path / ".recon"
    assert s.stage_uri == str(tmp_path / ".recon" / "stage")
    assert s.duckdb_path == tmp_path / ".recon" / "warehouse.duckdb"
    # locally the first partition is the first of last month: the UI opens on a few weeks
    assert s.start_date == local_start_date()
    assert local_start_date(date(2026, 12, 1)) == date(2026, 11, 1)
    assert local_start_date(date(2026, 1, 31)) == date(2025, 12, 1)
    assert s.stripe_api_key == LOCAL_STRIPE_API_KEY
    assert s.stripe_api_base is None  # local: the resource starts the emulator
    assert s.duckdb_memory_limit == DUCKDB_MEMORY_LIMIT
    assert ReconSettings.from_env({"RECON_DUCKDB_MEMORY_LIMIT": "1.5GiB"}).duckdb_memory_limit == (
        "1.5GiB"
    )


def test_pull_processes_two_locally_one_against_stripe() -> None:
    """Locally the emulator answers as fast as it can and a long pull is CPU-bound; against
    Stripe's rate one process is plenty, and a second would only split the rate."""
    assert ReconSettings.from_env({}).stripe_pull_processes == 2
    prod = ReconSettings.from_env(
        {
            "RECON_ENV": "prod",
            "STRIPE_API_KEY": "rk_live_x",
            "RECON_STAGE_URI": "s3://recon-b/p",
            "RECON_LEDGER_DSN": "postgresql://reader@db/ledger",
            **SNOWFLAKE,
        }
    )
    assert prod.stripe_pull_processes == 1
    assert ReconSettings.from_env({"RECON_STRIPE_PULL_PROCESSES": "3"}).stripe_pull_processes == 3


def test_explicit_api_base_wins_in_every_mode() -> None:
    for env in ("local", "prod"):
        s = ReconSettings.from_env(
            {
                "RECON_ENV": env,
                "STRIPE_API_KEY": "rk_live_x",
                "STRIPE_API_BASE": "http://127.0.0.1:9",
                "RECON_STAGE_URI": "s3://recon-b/p",
                "RECON_LEDGER_DSN": "postgresql://reader@db/ledger",
                **SNOWFLAKE,
            }
        )
        assert s.stripe_api_base == "http://127.0.0.1:9"


def test_prod_requires_key_and_s3_stage() -> None:
    with pytest.raises(ConfigError, match="STRIPE_API_KEY"):
        ReconSettings.from_env({"RECON_ENV": "prod", "RECON_STAGE_URI": "s3://recon-b/p"})
    with pytest.raises(ConfigError, match="RECON_STAGE_URI"):
        ReconSettings.from_env({"RECON_ENV": "prod", "STRIPE_API_KEY": "rk_live_x"})


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"RECON_ENV": "staging"}, "RECON_ENV"),
        ({"RECON_START_DATE": "01/02/2024"}, "RECON_START_DATE"),
        ({"RECON_STRIPE_RATE": "-1"}, "RECON_STRIPE_RATE"),
        ({"RECON_RESTATE_DAYS": "2", "RECON_TOLERANCE_DAYS": "3"}, "RESTATE"),
        ({"RECON_DAGSTER_URL": "dagster:3000"}, "RECON_DAGSTER_URL"),
        ({"RECON_SLACK_BOT_TOKEN": "xoxb-1"}, "RECON_SLACK_CHANNEL"),
        ({"RECON_ALERT_REPORT_READY": "maybe"}, "RECON_ALERT_REPORT_READY"),
        ({"RECON_CATCHUP_DAYS": "0"}, "RECON_CATCHUP_DAYS"),
        ({"RECON_STRIPE_PULL_PROCESSES": "0"}, "RECON_STRIPE_PULL_PROCESSES"),
        ({"RECON_DUCKDB_MEMORY_LIMIT": "lots"}, "RECON_DUCKDB_MEMORY_LIMIT"),
        ({"RECON_DUCKDB_MEMORY_LIMIT": "256"}, "RECON_DUCKDB_MEMORY_LIMIT"),
        ({"RECON_DUCKDB_MEMORY_LIMIT": "1GB; DROP TABLE x"}, "RECON_DUCKDB_MEMORY_LIMIT"),
        ({"RECON_DUCKDB_RUN_MEMORY_LIMIT": "64"}, "RECON_DUCKDB_RUN_MEMORY_LIMIT"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ReconSettings.from_env(env)


def test_secrets_never_in_repr() -> None:
    s = ReconSettings.from_env(
        {
            "RECON_ENV": "prod",
            "STRIPE_API_KEY": "rk_live_SECRET123",
            "RECON_STAGE_URI": "s3://recon-b/p",
            "RECON_LEDGER_DSN": "postgresql://u:hunter2@db/ledger",
            **SNOWFLAKE,
        }
    )
    text = repr(s) + str(s)
    assert "SECRET123" not in text and "hunter2" not in text and "pw-SECRET" not in text
    assert s.warehouse == "snowflake"
    assert "stripe_api_key=<set>" in text


def test_snowflake_warehouse_names_missing_variables() -> None:
    with pytest.raises(ConfigError, match=r"SNOWFLAKE_ACCOUNT.*SNOWFLAKE_PASSWORD"):
        ReconSettings.from_env(
            {"RECON_WAREHOUSE": "snowflake", "SNOWFLAKE_USER": "u", "SNOWFLAKE_DATABASE": "d"}
        )


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"RECON_STAGE_URI": "s3:/typo-bucket/recon"}, "RECON_STAGE_URI"),
        ({"RECON_STAGE_URI": "http://bucket/recon"}, "RECON_STAGE_URI"),
        ({"RECON_STAGE_URI": "s3://Bad_Bucket/recon"}, "RECON_STAGE_URI"),
        ({"RECON_LEDGER_DSN": "postgresql://u:hunter2@/ledger"}, "RECON_LEDGER_DSN"),
        ({"RECON_LEDGER_DSN": "mysql://u:hunter2@db/ledger"}, "RECON_LEDGER_DSN"),
        ({"STRIPE_API_BASE": "localhost:12111"}, "STRIPE_API_BASE"),
    ],
)
def test_malformed_uris_and_dsns_are_refused_in_every_mode_without_the_secret(
    env: dict[str, str], match: str
) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        ReconSettings.from_env(env)
    assert "hunter2" not in str(err.value)


def test_prod_refuses_to_load_without_the_ledger() -> None:
    """Every production setting is required when the location loads, not inside a run."""
    env = {"RECON_ENV": "prod", "STRIPE_API_KEY": "rk_live_x", "RECON_STAGE_URI": "s3://b-1/p",
           **SNOWFLAKE}  # fmt: skip
    with pytest.raises(ConfigError, match="RECON_LEDGER_DSN"):
        ReconSettings.from_env(env)
    ok = ReconSettings.from_env({**env, "RECON_LEDGER_DSN": "postgresql://r@db:5432/ledger"})
    assert ok.stage_uri == "s3://b-1/p"


def test_prod_names_every_missing_setting_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        ReconSettings.from_env({"RECON_ENV": "prod", "SNOWFLAKE_USER": "u"})
    named = str(err.value)
    for v in ("STRIPE_API_KEY", "RECON_STAGE_URI", "RECON_LEDGER_DSN", "SNOWFLAKE_ACCOUNT",
              "SNOWFLAKE_PASSWORD", "SNOWFLAKE_DATABASE"):  # fmt: skip
        assert v in named, named
    assert "SNOWFLAKE_USER" not in named
    with pytest.raises(ConfigError) as err:  # a DuckDB warehouse needs no Snowflake settings
        ReconSettings.from_env({"RECON_ENV": "prod", "RECON_WAREHOUSE": "duckdb"})
    assert "SNOWFLAKE" not in str(err.value) and "RECON_LEDGER_DSN" in str(err.value)


@pytest.mark.parametrize(
    "cron",
    ["0 1 * * ", "0 25 * * *", "61 * * * *", "0 1 * *", "0 1 * * * *", "0 1 0 * *",
     "0 1 * 13 *", "*/0 1 * * *", "0 1 * * mon-foo", "5-2 1 * * *", "daily", "0 1 * * 8"],
)  # fmt: skip
def test_a_bad_cron_is_refused_naming_its_variable(cron: str) -> None:
    for name in ("RECON_SCHEDULE_CRON", "RECON_DEEP_RESTATE_CRON"):
        with pytest.raises(ConfigError, match=name):
            ReconSettings.from_env({name: cron})


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["*", "*/5", "1-5", "mon", "jan-mar", "0", "7", "3/2", "sun-sat", "x"]),
            st.integers(0, 70).map(str),
            st.tuples(st.integers(0, 40), st.integers(0, 40)).map(lambda t: f"{t[0]}-{t[1]}"),
        ),
        min_size=5,
        max_size=5,
    )
)
def test_every_cron_recon_accepts_dagster_schedules(fields: list[str]) -> None:
    """The check is Dagster's rule, not a stricter or looser one of our own: what it accepts, a
    Dagster schedule accepts, so no typo passes here to fail later as a schedule error."""
    import dagster as dg

    cron = " ".join(fields)
    try:
        ReconSettings.from_env({"RECON_SCHEDULE_CRON": cron})
        ours = True
    except ConfigError:
        ours = False
    try:
        dg.ScheduleDefinition(name="s", cron_schedule=cron, job_name="j")
        theirs = True
    except Exception:
        theirs = False
    if ours:
        assert theirs, cron


def test_dbt_profile_falls_back_to_the_same_duckdb_memory_limit() -> None:
    """Dagster hands dbt RECON_DUCKDB_MEMORY_LIMIT; dbt run by hand uses the profile's default,
    which must be the project's one default, not a second value that drifts."""
    profile = (Path(__file__).resolve().parents[1] / "dbt_project" / "profiles.yml").read_text()
    assert f"env_var('RECON_DUCKDB_MEMORY_LIMIT', '{DUCKDB_MEMORY_LIMIT}')" in profile
