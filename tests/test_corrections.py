"""The ledger's own corrections, end to end: real Postgres, the real extract, DuckDB and dbt.

A clean ledger of day D gets one break of each kind ops meet (a duplicate, a wrong amount, a
booked failed charge, an orphan, an amount too high) and the nightly of D..D+4 reports them.
Then ops correct them as the README says, the way the ledger corrects (a `reversal` entry with
`reversal_of`, never an edit), and one good booking is reversed by mistake, all posted on D+5.
The nightly of D+5 alone (it never re-reads D) must resolve each break on D through the
reversal's `reversal_of`, show it as `corrected_in_ledger` in the break history, and turn the
unbooked charge into `missing_in_ledger`. One backfill of D..D+5 in a second warehouse must
give the same facts: the order of runs does not matter.
"""

from __future__ import annotations

import random
import shutil
import string
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import duckdb
import psycopg
import pytest

from recon_assets.config import ReconSettings
from recon_assets.definitions import build_definitions
from recon_assets.local.bootstrap import seed_local_ledger, settings_emulator_config
from recon_assets.local.ledger_seeder import BreakRates
from recon_assets.local.stripe_emulator import ChargeGenerator
from recon_assets.progress import materialize_range
from recon_assets.timewindows import day_window
from tests.ledger_fixtures import TEMPLATE_DB, _create_db, _db_dsn, _drop_db

pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("corrections")]

D = date(2024, 3, 4)
FIX_DAY = D + timedelta(days=5)


def at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


def settings_for(home: Path, dsn: str, night_of: date) -> ReconSettings:
    return ReconSettings.from_env(
        {
            "RECON_HOME": str(home),
            "RECON_START_DATE": "2024-03-01",
            "RECON_LEDGER_DSN": dsn,
            "RECON_EMULATOR_CHARGES_PER_DAY": "120",
            "RECON_EMULATOR_NOW": str(int(at(night_of + timedelta(days=1), 10).timestamp())),
            "RECON_EMULATOR_SEED": "11",
        }
    )


@dataclass
class World:
    dsn: str
    homes: Path
    ids: dict[str, str]
    amounts: dict[str, int]
    entry_of: dict[str, int]


def _insert(conn: psycopg.Connection, entry_type: str, ref: str | None, amount: int,
            currency: str, posted: datetime, reversal_of: int | None = None) -> int:  # fmt: skip
    """One entry as the ledger's bookkeeping writes it (the test plays the ledger, not recon)."""
    (eid,) = conn.execute(
        "INSERT INTO ledger_entries (entry_type, external_ref, account, amount_minor, currency, "
        "posted_at, source_system, reversal_of, description) "
        "VALUES (%s, %s, 'stripe_clearing', %s, %s, %s, 'ops', %s, 'by hand') RETURNING id",
        (entry_type, ref, amount, currency, posted, reversal_of),
    ).fetchone()  # type: ignore[misc]
    return int(eid)


@pytest.fixture(scope="module")
def world(ledger_pg: object, dbt_manifest: Path) -> Iterator[World]:
    server_dsn = ledger_pg.dsn  # type: ignore[attr-defined]
    name = _create_db(server_dsn, TEMPLATE_DB)
    dsn = _db_dsn(server_dsn, name)
    homes = Path(tempfile.mkdtemp(prefix="recon-corrections-"))
    try:
        s = settings_for(homes / "a", dsn, FIX_DAY)
        cfg = settings_emulator_config(s)
        seed_local_ledger(dsn, cfg, D - timedelta(1), FIX_DAY + timedelta(3),
                          rates=BreakRates.none())  # fmt: skip
        w = day_window(D)
        charges = list(ChargeGenerator(cfg).iter_charges(w.start, w.end, now=w.end + 30 * 86400))
        plain = [c for c in charges if c["status"] == "succeeded" and c["captured"]
                 and c["amount_captured"] > 500]  # fmt: skip
        failed = next(c for c in charges if c["status"] == "failed")
        picked = dict(zip(["dup", "amount", "good", "over"], plain, strict=False))
        picked["failed"] = failed
        ids = {k: str(c["id"]) for k, c in picked.items()}
        amounts = {k: int(c["amount_captured"] or c["amount"]) for k, c in picked.items()}
        rng = random.Random(5)
        ids["orphan"] = "ch_" + "".join(rng.choices(string.ascii_letters + string.digits, k=24))
        with psycopg.connect(dsn, autocommit=True) as conn:
            entry_of = {
                k: int(r[0])
                for k in ("dup", "amount", "good", "over")
                for r in conn.execute(
                    "SELECT id FROM ledger_entries WHERE external_ref = %s "
                    "AND entry_type = 'charge'",
                    (ids[k],),
                ).fetchall()
            }
            cur = str(picked["dup"]["currency"]).upper()
            # the breaks, as bookkeeping made them on D (before any extract)
            entry_of["dup_extra"] = _insert(conn, "charge", ids["dup"], amounts["dup"], cur,
                                            at(D, 22))  # fmt: skip
            conn.execute("UPDATE ledger_entries SET amount_minor = amount_minor + 7 WHERE id = %s",
                         (entry_of["amount"],))  # fmt: skip
            conn.execute(
                "UPDATE ledger_entries SET amount_minor = amount_minor + 300 WHERE id = %s",
                (entry_of["over"],),
            )
            entry_of["failed"] = _insert(conn, "charge", ids["failed"], amounts["failed"],
                                         str(failed["currency"]).upper(), at(D, 21))  # fmt: skip
            entry_of["orphan"] = _insert(conn, "charge", ids["orphan"], 4200, "USD", at(D, 20))
        yield World(dsn, homes, ids, amounts, entry_of)
    finally:
        shutil.rmtree(homes, ignore_errors=True)
        _drop_db(server_dsn, name)


def facts(home: Path) -> dict[str, tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "select coalesce(charge_id, '') || '#' || recon_key, reporting_date, recon_status, "
            "stripe_amount, ledger_amount, ledger_entry_ids from marts.fct_charge_reconciliation"
        ).fetchall()
        return {r[0]: r[1:] for r in rows}
    finally:
        con.close()


def by_charge(rows: dict[str, tuple], charge_id: str) -> list[tuple]:
    return [v for k, v in rows.items() if k.split("#")[0] == charge_id]


def test_each_correction_resolves_its_break_through_reversal_of(world: World) -> None:
    w, ids, amt, e = world, world.ids, world.amounts, world.entry_of
    home = w.homes / "a"
    materialize_range(build_definitions(settings_for(home, w.dsn, D + timedelta(4))),
                      D, D + timedelta(4))  # fmt: skip
    before = facts(home)
    assert by_charge(before, ids["dup"])[0][1] == "duplicate_in_ledger"
    assert by_charge(before, ids["amount"])[0][1] == "amount_mismatch"
    assert by_charge(before, ids["over"])[0][1] == "amount_mismatch"
    assert by_charge(before, ids["good"])[0][1] == "matched"
    assert by_charge(before, ids["failed"])[0][1] == "unexpected_ledger_entry"
    assert [r[1] for r in by_charge(before, ids["orphan"])] == ["missing_in_stripe"]

    # ops correct on D+5, as the ledger does: reversals (no external_ref), never edits
    posted = at(FIX_DAY, 15)
    with psycopg.connect(w.dsn, autocommit=True) as conn:

        def reverse(entry_id: int, amount: int | None = None) -> int:
            (orig, cur) = conn.execute(
                "SELECT amount_minor, currency FROM ledger_entries WHERE id = %s", (entry_id,)
            ).fetchone()  # type: ignore[misc]
            return _insert(conn, "reversal", None, -orig if amount is None else amount, cur,
                           posted, reversal_of=entry_id)  # fmt: skip

        rev = {k: reverse(e[k]) for k in ("dup_extra", "amount", "good", "failed", "orphan")}
        rev["over"] = reverse(e["over"], amount=-300)
        (cur,) = conn.execute(
            "SELECT currency FROM ledger_entries WHERE id = %s", (e["amount"],)
        ).fetchone()  # type: ignore[misc]
        rebooked = _insert(conn, "charge", ids["amount"], amt["amount"], cur, posted)

    materialize_range(build_definitions(settings_for(home, w.dsn, FIX_DAY)), FIX_DAY, FIX_DAY)
    after = facts(home)

    def ids_text(*xs: int) -> str:
        return ",".join(map(str, sorted(xs)))

    # every item stays on D, whatever day its correction was posted
    assert by_charge(after, ids["dup"]) == [
        (D, "matched", amt["dup"], amt["dup"], ids_text(e["dup"], e["dup_extra"], rev["dup_extra"]))
    ]
    # re-booked after the deadline: timeliness is judged by the first booking
    assert by_charge(after, ids["amount"]) == [
        (D, "matched", amt["amount"], amt["amount"],
         ids_text(e["amount"], rev["amount"], rebooked))
    ]  # fmt: skip
    assert by_charge(after, ids["over"]) == [
        (D, "matched", amt["over"], amt["over"], ids_text(e["over"], rev["over"]))
    ]
    assert by_charge(after, ids["failed"]) == [
        (D, "not_booked", 0, None, ids_text(e["failed"], rev["failed"]))
    ]
    # a good booking reversed and nothing booked again is money unbooked, not `matched`
    assert by_charge(after, ids["good"]) == [
        (D, "missing_in_ledger", amt["good"], None, ids_text(e["good"], rev["good"]))
    ]
    assert by_charge(after, ids["orphan"]) == []  # reversed whole: no item at all

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        history = {
            r[0]: r[1:]
            for r in con.execute(
                "select coalesce(charge_id, recon_key), is_open, resolution, current_status "
                "from marts.rpt_break_history"
            ).fetchall()
        }
    finally:
        con.close()
    for k in ("dup", "amount", "over", "failed"):
        assert history[ids[k]][:2] == (False, "corrected_in_ledger"), k
    assert history[ids["orphan"]] == (False, "corrected_in_ledger", None)
    assert history[ids["good"]] == (True, None, "missing_in_ledger")

    # one backfill over the whole span, in a warehouse of its own, gives the same facts
    other = w.homes / "b"
    materialize_range(build_definitions(settings_for(other, w.dsn, FIX_DAY)), D, FIX_DAY)
    assert facts(other) == after
