"""Late Stripe changes reach their charge's own day through events alone, and the history keeps
every version.

One seeded account (a clean ledger, so every charge's final status is `matched`) in which five
charges of day D change long after D, by hand-made changes the emulator also lists as events: a
bank debit settling on D+5, an authorization captured in full on D+6, one captured for less on
D+6, a refund on D+20, a dispute on D+25; a payout paid within D..D+3 that the bank returns on
D+5; and a dispute opened on D+1 that is won on D+31. Day D is loaded once, by the first run;
every later
run covers only its own night (the trailing re-statement plays no part: no run re-pulls D), with
the emulator's clock moved forward to that night. Then the daemon is "down" for five weeks: the
next run fails, naming the range a backfill must cover.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from recon_assets.config import ReconSettings
from recon_assets.definitions import build_definitions
from recon_assets.local.bootstrap import seed_local_ledger, settings_emulator_config
from recon_assets.local.ledger_seeder import BreakRates
from recon_assets.local.stripe_emulator import ChargeGenerator
from recon_assets.local.stripe_emulator.balance import BalanceBook
from recon_assets.local.stripe_emulator.payouts import PayoutBook, payouts_arriving
from recon_assets.local.stripe_emulator.refunds import RefundBook
from recon_assets.progress import materialize_range
from recon_assets.stripe.events import EventsRetentionError, backfill_days
from recon_assets.timewindows import day_window
from tests.ledger_fixtures import TEMPLATE_DB, _create_db, _db_dsn, _drop_db

pytestmark = [pytest.mark.timeout(1200), pytest.mark.xdist_group("events")]

D = date(2024, 3, 4)
HORIZON = 120


def at(day: date, hour: int) -> int:
    return int(datetime.combine(day, time(hour), tzinfo=UTC).timestamp())


def night_after(day: date) -> int:
    """10:00 UTC the morning after `day`: the nightly of `day` runs then."""
    return at(day + timedelta(days=1), 10)


@dataclass
class World:
    home: Path
    dsn: str
    changes: Path
    ids: dict[str, str]
    amounts: dict[str, int]
    event_runs: list[dict[str, object]]


def settings_for(w_home: Path, dsn: str, now: int, changes: Path | None) -> ReconSettings:
    env = {
        "RECON_HOME": str(w_home),
        "RECON_START_DATE": "2024-03-01",
        "RECON_LEDGER_DSN": dsn,
        "RECON_EMULATOR_CHARGES_PER_DAY": "150",
        "RECON_EMULATOR_NOW": str(now),
        # a seed whose day D has no bank debit pending for ever (1 % of charges): once the
        # hand-made one settles, nothing of D is pending and D becomes final (signed off)
        "RECON_EMULATOR_SEED": "36",
        "RECON_DEEP_RESTATE_DAYS": str(HORIZON),
    }
    if changes is not None:
        env["RECON_EMULATOR_CHANGES"] = str(changes)
    return ReconSettings.from_env(env)


def run(w: World, first: date, last: date, now: int) -> dg.ExecuteInProcessResult:
    defs = build_definitions(settings_for(w.home, w.dsn, now, w.changes))
    result = materialize_range(defs, first, last)
    mats = result.asset_materializations_for_node("raw__stripe_charge_events")
    w.event_runs.append({k: v.value for k, v in mats[0].metadata.items()})
    return result


def plain_charges(s: ReconSettings, day: date, n: int) -> list[dict]:
    """Charges of `day` that are succeeded, captured in full, never refunded nor disputed."""
    cfg = settings_emulator_config(s)
    gen = ChargeGenerator(cfg)
    w = day_window(day)
    out = [
        c
        for c in gen.iter_charges(w.start, w.end, now=w.end + 200 * 86400)
        if c["status"] == "succeeded"
        and c["captured"]
        and c["amount_captured"] == c["amount"] > 100
        and not c["amount_refunded"]
        and not c["disputed"]
    ]
    assert len(out) >= n
    return out[:n]


@pytest.fixture(scope="module")
def world(ledger_pg: object, dbt_manifest: Path) -> Iterator[World]:
    server_dsn = ledger_pg.dsn  # type: ignore[attr-defined]
    name = _create_db(server_dsn, TEMPLATE_DB)
    dsn = _db_dsn(server_dsn, name)
    home = Path(tempfile.mkdtemp(prefix="recon-events-")) / "recon"
    try:
        home.mkdir(parents=True)
        base = settings_for(home, dsn, night_after(D + timedelta(days=3)), None)
        picked = plain_charges(base, D, 5)
        ids = dict(zip(["settle", "capture", "partial", "refund", "dispute"],
                       [c["id"] for c in picked], strict=True))  # fmt: skip
        amounts = {k: c["amount"] for k, c in zip(ids, picked, strict=True)}
        ids["refund_fails"], ids["dispute_won"] = (
            c["id"] for c in plain_charges(base, D + timedelta(days=1), 2)
        )
        # a payout that arrives within D..D+3 (the account's first ones arrive on D+2), is
        # paid, and that the bank returns on D+5
        gen = ChargeGenerator(settings_emulator_config(base))
        book = PayoutBook(BalanceBook(gen, RefundBook(gen)))
        paid = [p for k in range(4)
                for p in payouts_arriving(book, D + timedelta(k), night_after(D + timedelta(5)))
                if p["status"] == "paid"]  # fmt: skip
        ids["payout_fails"] = paid[0]["id"]
        partial = amounts["partial"] * 3 // 5
        changes = home / "changes.json"
        changes.write_text(
            json.dumps(
                [
                    {"charge_id": ids["settle"], "kind": "settle", "at": at(D + timedelta(5), 15)},
                    {"charge_id": ids["capture"], "kind": "capture",
                     "at": at(D + timedelta(6), 15)},
                    {"charge_id": ids["partial"], "kind": "capture", "amount": partial,
                     "at": at(D + timedelta(6), 16)},
                    {"charge_id": ids["refund"], "kind": "refund", "at": at(D + timedelta(20), 15)},
                    # a refund that succeeds on D+6 and fails a week later
                    {"charge_id": ids["refund_fails"], "kind": "refund",
                     "at": at(D + timedelta(6), 15)},
                    {"charge_id": ids["refund_fails"], "kind": "refund_fail",
                     "at": at(D + timedelta(13), 15)},
                    {"charge_id": ids["dispute"], "kind": "dispute",
                     "at": at(D + timedelta(25), 15)},
                    {"charge_id": ids["payout_fails"], "kind": "payout_fail",
                     "at": at(D + timedelta(5), 15)},
                    # a dispute opened on D+1 (10:00 EST) and won 30 days later
                    {"charge_id": ids["dispute_won"], "kind": "dispute",
                     "at": at(D + timedelta(1), 15)},
                    {"charge_id": ids["dispute_won"], "kind": "dispute_close", "outcome": "won",
                     "at": at(D + timedelta(31), 15)},
                ]
            )
        )  # fmt: skip
        amounts["partial"] = partial
        # the ledger books what the charges finally are (a clean ledger: every charge matched)
        final = settings_for(home, dsn, night_after(D + timedelta(days=32)), changes)
        seed_local_ledger(
            dsn, settings_emulator_config(final), D - timedelta(days=1), D + timedelta(days=26),
            rates=BreakRates.none(),
        )  # fmt: skip
        yield World(home, dsn, changes, ids, amounts, [])
    finally:
        shutil.rmtree(home.parent, ignore_errors=True)
        _drop_db(server_dsn, name)


def fct(w: World) -> dict[str, tuple]:
    con = duckdb.connect(str(w.home / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "select charge_id, reporting_date, recon_status, stripe_status, stripe_amount, "
            "stripe_amount_refunded, stripe_disputed from marts.fct_charge_reconciliation "
            "where charge_id in (select unnest(?))",
            [[v for k, v in w.ids.items() if k not in ("payout_fails", "dispute_won")]],
        ).fetchall()
        return {r[0]: r[1:] for r in rows}
    finally:
        con.close()


def query(w: World, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(w.home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_late_changes_reach_their_day_through_events_alone(world: World) -> None:
    w, ids, amt = world, world.ids, world.amounts
    # run 1, the night after D+3: D..D+3 loaded; the five charges as they are then
    run(w, D, D + timedelta(days=3), night_after(D + timedelta(days=3)))
    before = fct(w)
    assert before[ids["settle"]][1:3] == ("pending_in_stripe", "pending")
    for k in ("capture", "partial"):  # booked by the ledger, not captured (yet) in Stripe
        assert before[ids[k]][1:4] == ("unexpected_ledger_entry", "succeeded", 0)
    assert before[ids["refund"]][1:] == ("matched", "succeeded", amt["refund"], 0, False)
    assert before[ids["dispute"]][1:] == ("matched", "succeeded", amt["dispute"], 0, False)

    # each later night covers only itself; the emulator's clock is that night
    for day in (D + timedelta(5), D + timedelta(6), D + timedelta(20), D + timedelta(25)):
        run(w, day, day, night_after(day))

    after = fct(w)
    for k in ids:
        if k not in ("refund_fails", "payout_fails", "dispute_won"):
            assert after[ids[k]][0] == D  # every change landed on the charge's own day

    # refunds are items of their own, each on the day it was created: the one made 20 days
    # after its charge on D+20, the one that failed a week after it succeeded on D+6, where
    # the failure (an event only: no run covers D+13) reached it through a re-pull by id
    refunds = {
        r[0]: r[1:]
        for r in query(
            w,
            "select charge_id, reporting_date, stripe_status, recon_status "
            "from marts.fct_refund_reconciliation where charge_id in (select unnest(?))",
            [[ids["refund"], ids["refund_fails"]]],
        )
    }
    assert refunds[ids["refund"]][:2] == (D + timedelta(20), "succeeded")
    assert refunds[ids["refund_fails"]][:2] == (D + timedelta(6), "failed")
    # failed, it must not stand booked: booked when it succeeded, its reversal is posted on a day
    # no run loads, so what the warehouse holds of the ledger decides which break it is
    (standing,) = query(
        w,
        "select count(*) from raw.ledger_entries as e where e.entry_type = 'refund' "
        "and e.external_ref in (select id from raw.stripe_refunds where charge = ?) "
        "and not exists (select 1 from raw.ledger_entries as r where r.reversal_of = e.id)",
        [ids["refund_fails"]],
    )[0]
    assert refunds[ids["refund_fails"]][2] == (
        "unexpected_ledger_entry" if standing else "not_booked"
    )
    assert int(w.event_runs[3]["run_refunds_repulled"]) >= 1  # type: ignore[call-overload]
    # the payout paid on its day (pulled once, by the first run) that the bank returned on
    # D+5 reached its own day through the payout.failed event and a re-pull by id: it is no
    # longer money that left the balance, and its returned money is its item's in the tie-out
    ((p_day, p_status, p_recon),) = query(
        w,
        "select reporting_date, stripe_status, recon_status from marts.fct_payout_reconciliation "
        "where payout_id = ?",
        [ids["payout_fails"]],
    )
    (p_standing,) = query(
        w,
        "select count(*) from raw.ledger_entries as e where e.external_ref = ? "
        "and not exists (select 1 from raw.ledger_entries as r where r.reversal_of = e.id)",
        [ids["payout_fails"]],
    )[0]
    arrived = D + timedelta(2)  # the account's first payouts arrive on D+2
    assert (p_day, p_status) == (arrived, "failed")
    assert p_recon == ("unexpected_ledger_entry" if p_standing else "not_booked")
    assert int(w.event_runs[1]["run_payouts_repulled"]) == 1  # type: ignore[call-overload]
    assert query(
        w,
        "select count(*) from raw.load_log where dataset = 'stripe_payouts' "
        "and partition_date = ? and load_kind = 'day'",
        [arrived],
    ) == [(1,)]
    assert query(
        w,
        "select type from raw.stripe_balance_transactions where source = ? order by created",
        [ids["payout_fails"]],
    ) == [("payout",), ("payout_failure",)]
    assert query(w, "select count(*) from marts.rpt_balance_tieout where unexplained <> 0") == [
        (0,)
    ]
    assert after[ids["settle"]][1:3] == ("matched", "succeeded")
    assert after[ids["capture"]][1:4] == ("matched", "succeeded", amt["capture"])
    assert after[ids["partial"]][1:4] == ("matched", "succeeded", amt["partial"])
    assert after[ids["refund"]][1:] == ("matched", "succeeded", amt["refund"], amt["refund"], False)
    assert after[ids["dispute"]][1:] == ("matched", "succeeded", amt["dispute"], 0, True)

    # ... through events alone: D's charges were pulled as a whole day exactly once
    loads = query(
        w,
        "select count(*) from raw.load_log where dataset = 'stripe_charges' "
        "and partition_date = ? and load_kind = 'day'",
        [D],
    )
    assert loads == [(1,)]
    reopened = [r["run_reopened_days"] for r in w.event_runs[1:5]]
    assert all(D.isoformat() in days for days in reopened)  # type: ignore[operator]
    assert all(int(r["run_charges_repulled"]) >= 1 for r in w.event_runs[1:5])  # type: ignore[call-overload]
    # the dispute event carries a Dispute, not the charge: it was retrieved by id
    assert int(w.event_runs[4]["run_retrieved_by_id"]) >= 1  # type: ignore[call-overload]

    # the history has each before and after, on day D, with the run that changed it
    changes = {
        r[0]: r[1:]
        for r in query(
            w,
            "select charge_id, reporting_date, status_before, status_after, "
            "stripe_amount_before, stripe_amount_after, stripe_refunded_before, "
            "stripe_refunded_after, stripe_disputed_before, stripe_disputed_after, "
            "changed_by_run from marts.rpt_status_changes where charge_id in (select unnest(?))",
            [list(ids.values())],
        )
    }
    assert changes[ids["settle"]][:3] == (D, "pending_in_stripe", "matched")
    assert changes[ids["capture"]][:5] == (D, "unexpected_ledger_entry", "matched", 0,
                                           amt["capture"])  # fmt: skip
    assert changes[ids["partial"]][:5] == (D, "unexpected_ledger_entry", "matched", 0,
                                           amt["partial"])  # fmt: skip
    assert changes[ids["refund"]][1:3] == ("matched", "matched")
    assert changes[ids["refund"]][5:7] == (0, amt["refund"])
    assert changes[ids["dispute"]][7:9] == (False, True)
    assert all(c[-1] for c in changes.values())  # a run id
    resolved = dict(
        query(
            w,
            "select charge_id, resolution from marts.rpt_break_history "
            "where charge_id in (select unnest(?)) and not is_open",
            [list(ids.values())],
        )
    )
    assert resolved == {ids["capture"]: "changed_in_stripe", ids["partial"]: "changed_in_stripe"}

    # day D was signed off (final) once the bank debit settled; the captures, the refund and the
    # dispute came after, and its history lists each, before and after
    html = (w.home / "stage" / "reports" / D.isoformat() / f"reconciliation_{D}.html").read_text()
    signed_off = html.split('id="changed-after-signoff"')[1].split("<h2>")[0]
    assert "<b>4 changes</b> since its first final report" in signed_off, signed_off
    for k in ("capture", "partial", "refund", "dispute"):
        assert ids[k] in signed_off
    assert ids["settle"] not in signed_off  # it changed before the day was final
    assert "unexpected_ledger_entry → matched" in signed_off
    assert "False → True" in signed_off  # the dispute
    state = json.loads((w.home / "stage" / "reports" / D.isoformat() / "_state.json").read_text())
    assert state["first_final_at"] is not None

    # the dispute opened on D+1 (pulled with its day by the first run, its withdrawal booked)
    # is won on D+31: the night of D+31 re-pulls it by id through its events (D+1 is never
    # pulled again), and its reinstatement is an item of D+31, its balance transaction's day
    won_on = D + timedelta(31)
    did = "dp_" + ids["dispute_won"][3:]
    # (the ledger books it hours later, up to the next day: the run covers both nights' days)
    run(w, won_on, won_on + timedelta(1), night_after(won_on + timedelta(1)))
    moves = {
        r[0]: r[1:]
        for r in query(
            w,
            "select dispute_leg, reporting_date, stripe_status, recon_status, stripe_amount, "
            "ledger_amount from marts.fct_dispute_reconciliation where dispute_id = ?",
            [did],
        )
    }
    a = amt["dispute_won"] = query(
        w, "select amount from raw.stripe_disputes where id = ? limit 1", [did]
    )[0][0]
    assert moves == {
        "withdrawal": (D + timedelta(1), "won", "matched", a, -a),
        "reinstatement": (won_on, "won", "matched", -a, a),
    }
    assert int(w.event_runs[5]["run_disputes_repulled"]) >= 1  # type: ignore[call-overload]
    assert query(
        w,
        "select count(*) from raw.load_log where dataset = 'stripe_disputes' "
        "and partition_date = ? and load_kind = 'day'",
        [D + timedelta(1)],
    ) == [(1,)]
    # its row was replaced by id on its own day, never by a pull of D+1
    assert query(
        w, "select status, _partition_date from raw.stripe_disputes where id = ?", [did]
    ) == [("won", D + timedelta(1))]
    assert ("events",) in query(
        w,
        "select load_kind from raw.load_log where dataset = 'stripe_disputes' "
        "and load_kind <> 'day' and partition_date = ?",
        [D + timedelta(1)],
    )
    # its fee is a fee item keyed by the dispute, and the balance still ties out to the cent
    assert query(
        w, "select recon_status from marts.fct_fee_reconciliation where source_id = ?", [did]
    ) == [("matched",)]
    assert query(w, "select count(*) from marts.rpt_balance_tieout where unexplained <> 0") == [
        (0,)
    ]

    # the daemon is down for five weeks: the next night fails and names the backfill
    cursor = query(w, "select max(read_until) from raw.stripe_event_reads")[0][0]
    late = D + timedelta(days=70)
    with pytest.raises(Exception) as err:
        run(w, late, late, night_after(late))
    first, last = backfill_days(int(cursor.timestamp()), night_after(late), HORIZON)
    message = str(err.value) + "".join(str(a) for a in getattr(err.value, "args", ()))
    chain = err.value
    while chain is not None and not isinstance(chain, EventsRetentionError):
        chain = chain.__cause__ or chain.__context__  # type: ignore[assignment]
    assert chain is not None, message
    assert f"backfill {first.isoformat()} through {last.isoformat()}" in str(chain)
    assert last == late - timedelta(days=30) or last == late - timedelta(days=29)
    # nothing recorded a read past the gap
    assert query(w, "select max(read_until) from raw.stripe_event_reads")[0][0] == cursor
