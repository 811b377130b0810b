"""`build_dbt_vars`: the Dagster window -> dbt vars conversion, DST days included.

Expectations are written out per case (known UTC offsets of New York) or derived from zoneinfo
local midnights, never from the function under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recon_assets.warehouse.dbt_vars import build_dbt_vars

NY = ZoneInfo("America/New_York")


def et_midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=NY)


def test_single_ordinary_day() -> None:
    v = build_dbt_vars(et_midnight(date(2024, 1, 15)), et_midnight(date(2024, 1, 16)), 3)
    assert v == {
        "min_reporting_date": "2024-01-15",
        "max_reporting_date_exclusive": "2024-01-16",
        "tolerance_days": 3,
    }
    json.dumps(v)  # what the Dagster asset passes to --vars


@pytest.mark.parametrize(
    ("day", "start_utc", "end_utc", "hours"),
    [
        # spring forward: 23 hours, EST start, EDT end
        (date(2024, 3, 10), "2024-03-10T05:00:00+00:00", "2024-03-11T04:00:00+00:00", 23),
        # fall back: 25 hours, EDT start, EST end
        (date(2024, 11, 3), "2024-11-03T04:00:00+00:00", "2024-11-04T05:00:00+00:00", 25),
        (date(2025, 3, 9), "2025-03-09T05:00:00+00:00", "2025-03-10T04:00:00+00:00", 23),
        (date(2025, 11, 2), "2025-11-02T04:00:00+00:00", "2025-11-03T05:00:00+00:00", 25),
    ],
)
def test_dst_days(day: date, start_utc: str, end_utc: str, hours: int) -> None:
    v = build_dbt_vars(et_midnight(day), et_midnight(day + timedelta(1)), 3)
    # the same day given as its UTC instants is the same window
    assert (
        build_dbt_vars(datetime.fromisoformat(start_utc), datetime.fromisoformat(end_utc), 3) == v
    )
    assert v["min_reporting_date"] == day.isoformat()
    assert v["max_reporting_date_exclusive"] == (day + timedelta(1)).isoformat()
    span = datetime.fromisoformat(end_utc) - datetime.fromisoformat(start_utc)
    assert span == timedelta(hours=hours)


def test_range_over_dst_and_any_aware_zone() -> None:
    # The same window expressed in UTC instead of ET is the same window.
    start = et_midnight(date(2024, 3, 9)).astimezone(UTC)
    end = et_midnight(date(2024, 3, 12)).astimezone(UTC)
    v = build_dbt_vars(start, end, 5)
    assert v["min_reporting_date"] == "2024-03-09"
    assert v["max_reporting_date_exclusive"] == "2024-03-12"
    assert v["tolerance_days"] == 5


def test_as_of_is_passed_in_utc_only_when_given() -> None:
    start, end = et_midnight(date(2024, 5, 1)), et_midnight(date(2024, 5, 2))
    assert "as_of" not in build_dbt_vars(start, end, 3)
    v = build_dbt_vars(start, end, 3, as_of=et_midnight(date(2024, 5, 4)))
    assert v["as_of"] == "2024-05-04T04:00:00+00:00"


@pytest.mark.parametrize(
    ("start", "end"),
    [
        # naive datetimes
        (datetime(2024, 1, 15), datetime(2024, 1, 16)),
        (et_midnight(date(2024, 1, 15)), datetime(2024, 1, 16)),
        # not on ET midnights (UTC midnights; an hour off; a "start + 24h" on a DST day)
        (datetime(2024, 1, 15, tzinfo=UTC), datetime(2024, 1, 16, tzinfo=UTC)),
        (et_midnight(date(2024, 1, 15)) + timedelta(hours=1), et_midnight(date(2024, 1, 16))),
        (
            et_midnight(date(2024, 3, 10)),
            et_midnight(date(2024, 3, 10)).astimezone(UTC) + timedelta(hours=24),
        ),
        # empty and reversed windows
        (et_midnight(date(2024, 1, 15)), et_midnight(date(2024, 1, 15))),
        (et_midnight(date(2024, 1, 16)), et_midnight(date(2024, 1, 15))),
    ],
)
def test_rejects_bad_windows(start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError):
        build_dbt_vars(start, end, 3)


@pytest.mark.parametrize("tolerance", [-1, True, 2.5, "3"])
def test_rejects_bad_tolerance(tolerance: object) -> None:
    with pytest.raises(ValueError):
        build_dbt_vars(et_midnight(date(2024, 1, 15)), et_midnight(date(2024, 1, 16)), tolerance)  # type: ignore[arg-type]


def test_rejects_naive_as_of() -> None:
    with pytest.raises(ValueError):
        build_dbt_vars(
            et_midnight(date(2024, 1, 15)),
            et_midnight(date(2024, 1, 16)),
            3,
            as_of=datetime(2024, 1, 20),
        )


@given(
    first=st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31)),
    n_days=st.integers(min_value=1, max_value=60),
    tolerance=st.integers(min_value=0, max_value=30),
)
def test_any_range_is_half_open_and_exact(first: date, n_days: int, tolerance: int) -> None:
    end_day = first + timedelta(days=n_days)
    v = build_dbt_vars(et_midnight(first), et_midnight(end_day), tolerance)
    assert v["min_reporting_date"] == first.isoformat()
    assert v["max_reporting_date_exclusive"] == end_day.isoformat()
    assert set(v) == {"min_reporting_date", "max_reporting_date_exclusive", "tolerance_days"}
    # the same window given in UTC instants (any DST in between) gives the same dates
    assert (
        build_dbt_vars(
            et_midnight(first).astimezone(UTC), et_midnight(end_day).astimezone(UTC), tolerance
        )
        == v
    )
    assert v["tolerance_days"] == tolerance


@given(
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31)),
    minutes=st.integers(min_value=1, max_value=24 * 60 - 1),
)
def test_any_unaligned_start_is_rejected(day: date, minutes: int) -> None:
    start = et_midnight(day).astimezone(UTC) + timedelta(minutes=minutes)
    with pytest.raises(ValueError):
        build_dbt_vars(start, et_midnight(day + timedelta(2)), 3)


def test_the_run_id_is_passed_only_when_it_is_a_plain_run_id() -> None:
    day = date(2024, 3, 10)
    window = (et_midnight(day), et_midnight(day + timedelta(1)))
    run_id = "6c0ec224-811e-4bae-aa8c-d1e132d2c214"
    assert build_dbt_vars(*window, 3, run_id=run_id)["dagster_run_id"] == run_id
    assert "dagster_run_id" not in build_dbt_vars(*window, 3)
    # it is put into SQL by the history model: anything but a run id is refused
    for bad in ("x'; drop table marts.fct_reconciliation_history; --", "", "a" * 65):
        with pytest.raises(ValueError, match="run_id"):
            build_dbt_vars(*window, 3, run_id=bad)


def test_launcher_arguments_round_trip_and_leave_dbt_arguments_alone() -> None:
    """`recon-dbt` takes its `--recon-env` pairs out wherever they are and hands dbt the rest in
    order; values may hold `=` and JSON."""
    from recon_assets.warehouse.dbt_launch import env_args, split_env_args

    env = {"RECON_DUCKDB_PATH": "/d/w=1.duckdb", "RECON_DBT_RUN_VARS": '{"a": "b c"}'}
    argv = ["build", *env_args(env), "--select", "fqn:*"]
    assert split_env_args(argv) == (env, ["build", "--select", "fqn:*"])
    assert split_env_args(["parse"]) == ({}, ["parse"])
    with pytest.raises(ValueError, match="not an environment variable name"):
        env_args({"lower; rm": "x"})
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        split_env_args(["build", "--recon-env"])
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        split_env_args(["--recon-env", "novalue", "build"])


def test_the_launcher_in_dagsters_environment_says_where_dbt_lives() -> None:
    """Dagster's environment has `recon-dbt` (recon's own script) but no dbt-core: run from there
    by mistake (say, first on PATH), it says so and where dbt is, instead of a bare ImportError."""
    launcher = Path(sys.executable).with_name("recon-dbt")
    out = subprocess.run([str(launcher), "parse"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "dbt-core is not installed in" in out.stderr
    assert ".venv-dbt" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_new_homes_first_build_starts_from_the_prepared_parse(
    tmp_path: Path, dbt_manifest: Path
) -> None:
    """The manifest `recon prepare` makes is parsed with the warehouse named as runs name it, so
    the first dbt invocation of a new home (the demo's, a new deployment's), whose target folder
    starts from the prepared `partial_parse.msgpack`, parses nothing again."""
    from recon_assets.defs.dbt_assets import (
        DBT_PROJECT_DIR,
        dbt_project,
        default_dbt_executable,
        stable_target_path,
    )
    from recon_assets.warehouse.dbt_launch import env_args

    home = tmp_path / "somewhere" / "new-home"
    home.mkdir(parents=True)
    target = stable_target_path(tmp_path / "dbt-runs", "local", dbt_project("local"))
    env = {
        **os.environ,
        "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        "DBT_TARGET_PATH": str(target),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
    }
    cmd = [
        default_dbt_executable(),
        *env_args({"RECON_DUCKDB_PATH": str(home / "warehouse.duckdb")}),
        "parse",
        *("--target", "local"),  # as dagster-dbt passes the project's target
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stdout[-2000:]
    log = (tmp_path / "logs" / "dbt.log").read_text()
    assert "Nothing changed, skipping partial parsing" in log, out.stdout[-2000:]
    assert "Unable to do partial parsing" not in log


def test_the_dbt_version_is_read_from_dbts_own_environment() -> None:
    """The resource skips dagster-dbt's `dbt --version` subprocess by reading dbt-core's version
    from the environment of the executable it runs; it must be what that dbt itself reports, and
    nothing for an environment without dbt-core (Dagster's own), which then keeps the check."""
    from recon_assets.defs.dbt_assets import dbt_core_version, default_dbt_executable
    from tests.test_dbt_models import DBT  # the dbt beside the default `recon-dbt`

    executable = default_dbt_executable()
    reported = subprocess.run(
        [str(DBT), "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    found = dbt_core_version(executable)
    assert found is not None
    assert f"installed: {found}" in reported
    assert dbt_core_version(Path(sys.executable).with_name("recon-dbt")) is None
    assert dbt_core_version("recon-dbt") is None  # a bare name: dagster-dbt's own check


def test_the_launcher_opens_the_warehouse_by_name_from_its_folder() -> None:
    """dbt runs in the warehouse's folder and opens it by name; whatever it would have read
    relative to where it was started is made absolute; without a warehouse nothing changes."""
    from recon_assets.warehouse.dbt_launch import open_warehouse_here

    env = {"RECON_DUCKDB_PATH": "../h/warehouse.duckdb", "DBT_LOG_PATH": "logs", "X": "y"}
    args = ["build", "--profiles-dir", "p", "--log-path=l", "--select", "a/b"]
    out_env, out_args, cwd = open_warehouse_here(env, args, "/repo/dbt", {"DBT_PROFILES_DIR": "q"})
    assert cwd == "/repo/dbt/../h" and out_env["RECON_DUCKDB_PATH"] == "warehouse.duckdb"
    assert out_env["DBT_LOG_PATH"] == "/repo/dbt/logs" and out_env["X"] == "y"
    assert out_env["DBT_PROFILES_DIR"] == "/repo/dbt/q"  # from the inherited environment
    assert out_env["DBT_PROJECT_DIR"] == "/repo/dbt"  # where dbt would have found the project
    assert out_args == ["build", "--profiles-dir", "/repo/dbt/p", "--log-path=/repo/dbt/l",
                        "--select", "a/b"]  # fmt: skip
    absolute = {"RECON_DUCKDB_PATH": "/data/w.duckdb", "DBT_PROJECT_DIR": "/p"}
    assert open_warehouse_here(absolute, ["run"], "/x", {})[0] == {
        "RECON_DUCKDB_PATH": "w.duckdb", "DBT_PROJECT_DIR": "/p"}  # fmt: skip
    # an absolute project dir in the inherited environment stands: it is not where dbt starts
    inherited = open_warehouse_here(
        {"RECON_DUCKDB_PATH": "/data/w.duckdb"}, ["run"], "/x", {"DBT_PROJECT_DIR": "/p"}
    )
    assert inherited[0] == {"RECON_DUCKDB_PATH": "w.duckdb"} and inherited[2] == "/data"
    assert open_warehouse_here({"A": "b"}, ["run"], "/x", {}) == ({"A": "b"}, ["run"], "/x")


def test_a_new_warehouse_keeps_the_partial_parse(tmp_path: Path) -> None:
    """Two warehouses in two folders, one dbt target folder: the second parse reuses the first's
    (the profile, part of dbt's parse hash, names the warehouse only by its file name). That
    dbt then opens the right file is what every end-to-end test relies on."""
    from recon_assets.defs.dbt_assets import DBT_PROJECT_DIR, default_dbt_executable
    from recon_assets.warehouse.dbt_launch import env_args

    outputs = []
    for home in ("a", "b"):
        (tmp_path / home).mkdir()
        env = {
            "RECON_DUCKDB_PATH": str(tmp_path / home / "warehouse.duckdb"),
            "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
            "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
            "DBT_TARGET_PATH": str(tmp_path / "target"),
            "DBT_LOG_PATH": str(tmp_path / "logs"),
        }
        cmd = [default_dbt_executable(), *env_args(env), "parse"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert out.returncode == 0, out.stdout[-2000:]
        outputs.append(out.stdout)
    assert "Unable to do partial parsing" in outputs[0]  # the first had nothing to reuse
    assert "Unable to do partial parsing" not in outputs[1], outputs[1][-2000:]
