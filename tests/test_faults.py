"""Faults a careful SRE tries: two runs at once, and a run killed with -9. Each must end in a
clean failure or the tables of one clean run, and re-running is always safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recon_assets.cli import last_complete_days
from recon_assets.config import ReconSettings
from recon_assets.local.bootstrap import seed_local_ledger, settings_emulator_config
from tests.ledger_fixtures import TEMPLATE_DB, _create_db, _db_dsn, _drop_db
from tests.pipeline_fixtures import assert_same_tables, snapshot

pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("faults")]

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


def backfill(env: dict[str, str], first: str, last: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(RECON), "backfill", "--start", first, "--end", last],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


@pytest.fixture
def ledger_db(ledger_pg: object) -> object:
    server_dsn = ledger_pg.dsn  # type: ignore[attr-defined]
    name = _create_db(server_dsn, TEMPLATE_DB)
    yield _db_dsn(server_dsn, name)
    _drop_db(server_dsn, name)


def test_two_overlapping_runs_at_once_end_well_and_equal_one_run(
    ledger_db: str, dbt_manifest: Path, tmp_path: Path
) -> None:
    d1, d2, d3 = last_complete_days(3)
    now = int(datetime.now(UTC).timestamp())
    start = (d1 - timedelta(days=2)).isoformat()
    env = recon_env(tmp_path / "both", ledger_db, now, start)
    # The ledger of the three days exists before either run (each `recon backfill` re-seeds its
    # own days identically). Seeding d1 only after d3 was extracted would insert d1's refunds
    # posted on d3 with their historical updated_at: a row no real ledger can have, which the
    # changes extract rightly does not see.
    s = ReconSettings.from_env({k: v for k, v in env.items() if k.startswith("RECON_")})
    seed_local_ledger(ledger_db, settings_emulator_config(s), d1, d3, tolerance_days=3)
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


@pytest.mark.parametrize("step", ["pull Stripe charges", "load charges", "dbt build"])
def test_kill_9_during_a_step_then_a_rerun_equals_a_clean_run(
    step: str, ledger_db: str, dbt_manifest: Path, tmp_path: Path
) -> None:
    """kill -9 the run's process as soon as the step before `step` has finished (so `step`
    is running or about to), then re-run: the tables equal those of one clean run."""
    (day,) = last_complete_days(1)
    now = int(datetime.now(UTC).timestamp())
    start = (day - timedelta(days=2)).isoformat()
    env = recon_env(tmp_path / "killed", ledger_db, now, start)
    before = {
        "pull Stripe charges": "extract the ledger",
        "load charges": "load ledger entries",
        "dbt build": "look-ups by id",
    }[step]
    proc = backfill(env, day.isoformat(), day.isoformat())
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
    assert proc.returncode == -signal.SIGKILL
    rerun = backfill(env, day.isoformat(), day.isoformat())
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out.decode(errors="replace")[-2000:]
    clean = recon_env(tmp_path / "clean", ledger_db, now, start)
    ref = backfill(clean, day.isoformat(), day.isoformat())
    out_ref, _ = ref.communicate(timeout=600)
    assert ref.returncode == 0, out_ref.decode(errors="replace")[-2000:]
    assert_same_tables(
        snapshot(tmp_path / "killed" / "warehouse.duckdb"),
        snapshot(tmp_path / "clean" / "warehouse.duckdb"),
    )
