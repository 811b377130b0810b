"""Which ledger the CLI writes to: only its own.

- `recon backfill` with `RECON_LEDGER_DSN` (someone's ledger) leaves it byte for byte unchanged;
- every command answers an unreachable ledger with one line naming the host and the database,
  never the password, and no traceback;
- the embedded ledger behaves like a real one: the demo, then a backfill of the day before its
  range, gives that day the statuses of one backfill over all four days (a re-seed used to
  insert that day's bookings on the demo's days with back-dated `updated_at`, which no extract
  of late changes can see: 647 false `missing_in_ledger` on a day of 2,000 charges).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from recon_assets.local.postgres import find_pg_bin_dir, free_port
from tests.clock import PINNED_NOW, pinned_days
from tests.ledger_fixtures import database_copy, traversable_tmpdir

pytestmark = [pytest.mark.timeout(600)]

RECON = Path(sys.executable).with_name("recon")


def recon_env(home: Path, **extra: str) -> dict[str, str]:
    """The CLI's environment: the local account on the pinned clock (`tests/clock.py`)."""
    env = {
        **os.environ,
        "RECON_HOME": str(home),
        "RECON_EMULATOR_CHARGES_PER_DAY": "150",
        "RECON_EMULATOR_NOW": str(PINNED_NOW),
        "RECON_START_DATE": pinned_days(7)[0].isoformat(),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        **extra,
    }
    env.pop("DAGSTER_HOME", None)
    if "RECON_LEDGER_DSN" not in extra:  # the embedded server, unless a test names a ledger
        env.pop("RECON_LEDGER_DSN", None)
    return env


def recon(env: dict[str, str], *args: str, timeout: int = 500) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RECON), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def pg_dump(dsn: str) -> str:
    """The whole database as SQL: schemas, tables, rows, sequences' positions."""
    bin_dir = find_pg_bin_dir()
    assert bin_dir is not None
    out = subprocess.run(
        [str(bin_dir / "pg_dump"), "--no-owner", "--restrict-key=recon", "--dbname", dsn],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return out.stdout


@pytest.fixture
def someones_ledger(ledger_pg: object) -> Iterator[str]:
    """A ledger recon does not own: migrated by its owners, with bookings made by hand."""
    with database_copy(ledger_pg.dsn) as dsn, psycopg.connect(dsn) as conn:  # type: ignore[attr-defined]
        day = pinned_days(1)[0]
        (journal,) = conn.execute(
            "INSERT INTO ledger_journals (batch_key, source_system, description, created_by) "
            "VALUES ('erp:2026-q4', 'erp', 'booked by hand', 'ops') RETURNING id"
        ).fetchone()  # type: ignore[misc]
        for i, (kind, ref, amount) in enumerate(
            [("charge", "ch_hand_1", 1200), ("fee", "ch_hand_1", -65), ("adjustment", None, 500)]
        ):
            conn.execute(
                "INSERT INTO ledger_entries (entry_type, external_ref, account, amount_minor, "
                "currency, posted_at, created_by, source_system, journal_id, description) "
                "VALUES (%s, %s, 'stripe_clearing', %s, 'USD', %s::date + interval '15 hours' "
                "+ %s * interval '1 minute', 'ops', 'erp', %s, 'by hand')",
                (kind, ref, amount, day, i, journal),
            )
        conn.commit()
        yield dsn


@pytest.mark.xdist_group("cli-ledger")
def test_a_backfill_leaves_a_ledger_it_does_not_own_byte_for_byte_unchanged(
    someones_ledger: str, dbt_manifest: Path, tmp_path: Path
) -> None:
    day = pinned_days(1)[0]
    before = pg_dump(someones_ledger)
    env = recon_env(
        tmp_path / "recon",
        RECON_LEDGER_DSN=someones_ledger,
        RECON_START_DATE=(day - timedelta(days=3)).isoformat(),
    )
    proc = recon(env, "backfill", "--start", day.isoformat(), "--end", day.isoformat())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "read only (recon seeds only its embedded server)" in proc.stdout
    assert "3 ledger entries staged" in proc.stdout  # it was read
    assert pg_dump(someones_ledger) == before
    assert not (tmp_path / "recon" / "postgres").exists()  # and no embedded server was started


def test_a_ledger_without_the_ledger_table_is_refused_and_left_empty(
    empty_db_dsn: str, tmp_path: Path
) -> None:
    """An empty database named by mistake is not migrated: one line, nothing created."""
    before = pg_dump(empty_db_dsn)
    day = pinned_days(1)[0].isoformat()
    proc = recon(recon_env(tmp_path, RECON_LEDGER_DSN=empty_db_dsn), "backfill", "--start", day,
                 "--end", day, timeout=120)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "no ledger_entries table" in proc.stderr
    assert pg_dump(empty_db_dsn) == before


@pytest.mark.parametrize(
    "command",
    [["backfill", "--start", "{day}", "--end", "{day}"], ["demo", "--days", "1"], ["dev"],
     ["seed", "--dsn", "{dsn}"]],
    ids=["backfill", "demo", "dev", "seed"],
)  # fmt: skip
def test_an_unreachable_ledger_is_one_line_naming_host_and_database(
    command: list[str], tmp_path: Path
) -> None:
    port = free_port()
    password = "pw-must-not-show-4f1c"
    dsn = f"postgresql://ledger_reader:{password}@127.0.0.1:{port}/books"
    day = pinned_days(1)[0].isoformat()
    args = [a.format(day=day, dsn=dsn) for a in command]
    proc = recon(recon_env(tmp_path / "recon", RECON_LEDGER_DSN=dsn), *args, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    line = proc.stderr.strip()
    assert line.startswith(f"recon {args[0]}: cannot connect to the ledger database "), line
    assert f"127.0.0.1:{port}/books" in line and "refused" in line.lower()
    assert password not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    # before any run: no warehouse, no dbt run, no embedded server
    home = tmp_path / "recon"
    assert not (home / "warehouse.duckdb").exists() and not (home / "dbt-runs").exists()
    assert not (home / "postgres").exists()


BREAK_STATUSES = {
    "missing_in_ledger", "duplicate_in_ledger", "currency_mismatch", "amount_mismatch",
    "late_posting", "unexpected_ledger_entry", "missing_in_stripe", "unreadable_in_stripe",
    "currency_conversion",
}  # fmt: skip


def _check_demo_days(out: str, days: list[date]) -> None:
    """Each demo day says why it is preliminary (its days are younger than T, so none can be
    final), and its breaks by status add up to its break count, each a break status."""
    lines = out.splitlines()
    for day in days:
        (i,) = [n for n, line in enumerate(lines) if line.strip().startswith(f"{day}  ")]
        header, why, kinds = lines[i].split(), lines[i + 1].strip(), lines[i + 2].strip()
        assert header[1] == "PRELIMINARY" and why.startswith("why preliminary: "), lines[i : i + 3]
        assert len(why) > len("why preliminary: ") + 10, why
        breaks = int(header[header.index("breaks") - 1].replace(",", ""))
        assert kinds.startswith("breaks by status: "), lines[i : i + 3]
        listed = kinds.removeprefix("breaks by status: ")
        counted = (
            dict(part.rsplit(" ", 1) for part in listed.split(", ")) if listed != "none" else {}
        )
        assert set(counted) <= BREAK_STATUSES, counted
        assert sum(int(n.replace(",", "")) for n in counted.values()) == breaks, (kinds, breaks)


def _statuses(home: Path, first: date, last: date) -> list[tuple[object, ...]]:
    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(
            "select reporting_date, charge_id, recon_status, currency, stripe_amount, "
            "ledger_amount, ledger_entry_ids from marts.fct_charge_reconciliation "
            "where reporting_date >= ? and reporting_date <= ? order by all",
            [first, last],
        ).fetchall()
    finally:
        con.close()


@pytest.mark.xdist_group("cli-ledger")
def test_the_demo_then_the_day_before_equals_one_backfill_of_all_four_days(
    dbt_manifest: Path,
) -> None:
    """Each home runs its own embedded server, as a new user's does: the order of commands
    must not change a day's statuses."""
    import duckdb

    base = traversable_tmpdir("recon-cli-order-")
    now = str(PINNED_NOW)  # the emulator's clock, frozen for both homes
    d0, *demo_days = pinned_days(4)
    homes = {name: base / name / "recon" for name in ("steps", "once")}
    envs = {
        name: recon_env(home, RECON_EMULATOR_NOW=now, RECON_START_DATE=d0.isoformat())
        for name, home in homes.items()
    }
    try:
        steps = recon(envs["steps"], "demo")
        assert steps.returncode == 0, (steps.stdout + steps.stderr)[-3000:]
        assert f"recon demo, {demo_days[0]}..{demo_days[-1]}" in steps.stdout
        _check_demo_days(steps.stdout, demo_days)
        report = recon(envs["steps"], "report")
        assert report.returncode == 0 and report.stdout.startswith(f"{demo_days[-1]}: "), report
        # `recon report | head`: a reader that stops early ends it quietly, as the shell's
        # SIGPIPE would (141), with no traceback (the pipe is closed before recon writes)
        piped = subprocess.Popen([str(RECON), "report"], env=envs["steps"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        assert piped.stdout is not None and piped.stderr is not None
        piped.stdout.close()
        err = piped.stderr.read().decode()
        assert piped.wait(timeout=120) == 141 and not err, err
        # dbt by hand, as the README gives it: dbt's environment, the project, this warehouse
        shown = recon(envs["steps"], "dbt", "show", "--inline",
                      "select count(*) as n from marts.fct_charge_reconciliation")  # fmt: skip
        assert shown.returncode == 0, (shown.stdout + shown.stderr)[-3000:]
        with duckdb.connect(str(homes["steps"] / "warehouse.duckdb"), read_only=True) as con:
            (n,) = con.execute("select count(*) from marts.fct_charge_reconciliation").fetchone()
        assert f"| {n} |" in shown.stdout, shown.stdout[-2000:]
        steps = recon(envs["steps"], "backfill", "--start", d0.isoformat(), "--end", d0.isoformat())
        assert steps.returncode == 0, (steps.stdout + steps.stderr)[-3000:]
        once = recon(envs["once"], "backfill", "--start", d0.isoformat(),
                     "--end", demo_days[-1].isoformat())  # fmt: skip
        assert once.returncode == 0, (once.stdout + once.stderr)[-3000:]
        stepped = _statuses(homes["steps"], d0, demo_days[-1])
        assert {r[0] for r in stepped} == {d0, *demo_days}
        assert stepped == _statuses(homes["once"], d0, demo_days[-1])
        # the day itself is not mostly unbooked: bookings of d0 posted on the demo's days arrived
        d0_rows = [r for r in stepped if r[0] == d0]
        missing = sum(r[2] == "missing_in_ledger" for r in d0_rows)
        assert missing < 0.02 * len(d0_rows), (missing, len(d0_rows))
    finally:
        for env in envs.values():
            recon(env, "stop", timeout=120)
        subprocess.run(["rm", "-rf", str(base)], check=False)
