"""The whole graph on the embedded default, checked against the seeder's ground truth.

A week of emulator charges (over the March 2024 DST change) and a ledger seeded from the same
account with every kind of break; the Stripe pull, ledger extract, raw loads, dbt marts and the
report run as Dagster runs over partition ranges. Every charge's status must equal the ground
truth exactly, the report's counts and amounts must equal the ground truth's totals, and
re-running a day or the whole range must leave every table as it was.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from recon_assets.config import ReconSettings
from recon_assets.definitions import build_definitions
from recon_assets.local.bootstrap import seed_local_ledger, settings_emulator_config
from recon_assets.local.ledger_seeder import SeedResult
from recon_assets.progress import materialize_range
from tests.pipeline_fixtures import assert_same_tables, snapshot

pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("e2e")]

FIRST, LAST = date(2024, 3, 6), date(2024, 3, 12)
NOW = int(datetime(2024, 3, 13, 11, 0, tzinfo=UTC).timestamp())  # the nightly run's wall clock


@pytest.fixture
def pipeline(
    tmp_path: Path, ledger_db_dsn: str, dbt_manifest: Path
) -> Iterator[tuple[ReconSettings, SeedResult]]:
    settings = ReconSettings.from_env(
        {
            "RECON_HOME": str(tmp_path / "recon"),
            "RECON_START_DATE": "2024-03-01",
            "RECON_LEDGER_DSN": ledger_db_dsn,
            "RECON_EMULATOR_CHARGES_PER_DAY": "400",
            "RECON_EMULATOR_NOW": str(NOW),
            "RECON_EMULATOR_SEED": "11",
        }
    )
    seed = seed_local_ledger(
        ledger_db_dsn, settings_emulator_config(settings), FIRST, LAST, tolerance_days=3
    )
    yield settings, seed


def test_week_reconciles_to_ground_truth_and_reruns_change_nothing(
    pipeline: tuple[ReconSettings, SeedResult],
) -> None:
    settings, seed = pipeline
    defs = build_definitions(settings)
    result = materialize_range(defs, FIRST, LAST)
    assert result.success

    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    fct = con.execute(
        "select reporting_date, charge_id, ledger_entry_ids, recon_status, currency, "
        "stripe_amount, ledger_amount, amount_diff from marts.fct_charge_reconciliation "
        "where reporting_date >= ?",
        [FIRST],  # earlier charges a transaction's look-up found
    ).fetchall()
    rpt = con.execute(
        "select reporting_date, currency, recon_status, item_count, stripe_amount, ledger_amount "
        "from marts.rpt_daily_reconciliation where item_type = 'charge' and reporting_date >= ?",
        [FIRST],
    ).fetchall()
    refunds = con.execute(
        "select reporting_date, refund_id, ledger_entry_ids, recon_status, currency, "
        "stripe_amount, ledger_amount from marts.fct_refund_reconciliation"
    ).fetchall()
    seeded = "(select id from raw.stripe_charges where _partition_date >= ?)"
    fees = con.execute(  # of the seeded days' charges (and their disputes): one captured later
        # is nobody's booking
        "select reporting_date, 'fee:' || source_id, ledger_entry_ids, recon_status, currency, "
        f"stripe_amount, ledger_amount from marts.fct_fee_reconciliation where source_id in "
        f"{seeded} or source_id in (select id from raw.stripe_disputes where charge in {seeded})",
        [FIRST, FIRST],
    ).fetchall()
    disputes = con.execute(  # each movement of the disputes of the seeded days' charges, and
        # each orphan dispute entry (a dispute Stripe never had: no charge)
        "select reporting_date, dispute_id || '#' || dispute_leg, ledger_entry_ids, recon_status, "
        "currency, stripe_amount, ledger_amount from marts.fct_dispute_reconciliation "
        f"where charge_id in {seeded} or (charge_id is null and recon_status = 'missing_in_stripe')",
        [FIRST],
    ).fetchall()
    fee_breaks = con.execute(  # every fee break the report lists, a charge's of any day included
        "select reporting_date, source_id from marts.fct_fee_reconciliation where is_break"
    ).fetchall()
    dispute_breaks = con.execute(  # and every dispute movement's
        "select reporting_date, dispute_id || '#' || dispute_leg "
        "from marts.fct_dispute_reconciliation where is_break"
    ).fetchall()
    payouts = con.execute(
        "select reporting_date, payout_id, ledger_entry_ids, recon_status, currency, "
        "stripe_amount, ledger_amount from marts.fct_payout_reconciliation"
    ).fetchall()
    carried = con.execute(
        "select payout_id, is_complete, carried_net, amount from marts.rpt_payout_composition "
        "where stripe_status = 'paid' and reporting_date between ? and ?",
        [FIRST, LAST],  # a payout arriving later, looked up by id, waits for its own day
    ).fetchall()
    tieout = con.execute(
        "select reporting_date, currency, stripe_net, ledger_net, difference, explained, "
        "unexplained from marts.rpt_balance_tieout"
    ).fetchall()
    stripe_net = dict(con.execute(
        "select _partition_date, sum(net) from raw.stripe_balance_transactions group by 1"
    ).fetchall())  # fmt: skip
    earlier = {  # refunds of charges created before the seeded days: nobody booked them
        r[0] for r in con.execute(
            "select id from raw.stripe_refunds where charge not in "
            "(select id from raw.stripe_charges where _partition_date >= ?)", [FIRST]
        ).fetchall()
    }  # fmt: skip
    con.close()

    every = [t for t in seed.ground_truth if FIRST <= t.reporting_date <= LAST]
    # every refund is an item of its own, on its own day, as the seeder says it must be
    refund_truth = {
        (t.reporting_date, t.charge_id, t.ledger_entry_ids_text, t.recon_status, t.currency,
         t.stripe_amount, t.ledger_amount)
        for t in every if t.item_type == "refund"
    }  # fmt: skip
    got_refunds = {r for r in refunds if FIRST <= r[0] <= LAST and r[1] not in earlier}
    assert got_refunds == refund_truth, (sorted(got_refunds - refund_truth)[:3],
                                         sorted(refund_truth - got_refunds)[:3])  # fmt: skip
    assert {"matched", "missing_in_stripe"} <= {t[3] for t in refund_truth}
    # every fee Stripe took is an item of its own, on its balance transaction's day
    fee_truth = {
        (t.reporting_date, t.charge_id, t.ledger_entry_ids_text, t.recon_status, t.currency,
         t.stripe_amount, t.ledger_amount)
        for t in every if t.item_type == "fee"
    }  # fmt: skip
    got_fees = {r for r in fees if FIRST <= r[0] <= LAST}
    assert got_fees == fee_truth, (sorted(got_fees - fee_truth)[:3],
                                   sorted(fee_truth - got_fees)[:3])  # fmt: skip
    assert {"matched", "missing_in_ledger"} <= {t[3] for t in fee_truth}
    # every dispute movement is an item of its own, on its balance transaction's day
    dispute_truth = {
        (t.reporting_date, t.charge_id, t.ledger_entry_ids_text, t.recon_status, t.currency,
         t.stripe_amount, t.ledger_amount)
        for t in every if t.item_type == "dispute"
    }  # fmt: skip
    got_disputes = {r for r in disputes if FIRST <= r[0] <= LAST}
    assert got_disputes == dispute_truth, (sorted(got_disputes - dispute_truth)[:3],
                                           sorted(dispute_truth - got_disputes)[:3])  # fmt: skip
    assert "matched" in {t[3] for t in dispute_truth}
    assert "missing_in_stripe" in {t[3] for t in dispute_truth}  # the seeded orphans
    # every payout is an item of its own, on its arrival date, and carried exactly its amount
    payout_truth = {
        (t.reporting_date, t.charge_id, t.ledger_entry_ids_text, t.recon_status, t.currency,
         t.stripe_amount, t.ledger_amount)
        for t in every if t.item_type == "payout"
    }  # fmt: skip
    got_payouts = {r for r in payouts if FIRST <= r[0] <= LAST}
    assert got_payouts == payout_truth, (sorted(got_payouts - payout_truth)[:3],
                                         sorted(payout_truth - got_payouts)[:3])  # fmt: skip
    assert len(payout_truth) >= 5 * 6 and "matched" in {t[3] for t in payout_truth}
    assert carried and all(c[1] and c[2] == c[3] for c in carried), carried
    # the balance tie-out: Stripe's side is the day's transactions, and on the seeded ledger
    # every cent of the difference is explained
    assert tieout and {r[0] for r in tieout} == set(stripe_net)
    for d, total in stripe_net.items():
        assert sum(r[2] for r in tieout if r[0] == d) == total
    for r in tieout:
        assert r[4] == r[3] - r[2] and r[5] == r[4] and r[6] == 0, r
    truth = [t for t in every if t.item_type == "charge"]
    statuses = Counter(t.recon_status for t in truth)
    # the week must exercise every status of the contract, or this test proves little
    assert set(statuses) == {
        "pending_in_stripe", "not_booked", "unexpected_ledger_entry", "pending_in_ledger",
        "missing_in_ledger", "duplicate_in_ledger", "currency_mismatch", "amount_mismatch",
        "late_posting", "matched", "missing_in_stripe",
    }  # fmt: skip
    expected = sorted(
        (
            t.reporting_date,
            t.charge_id,
            t.ledger_entry_ids_text,
            t.recon_status,
            t.currency,
            t.stripe_amount,
            t.ledger_amount,
            (t.ledger_amount or 0) - (t.stripe_amount or 0),
        )
        for t in truth
    )
    got = sorted(fct)
    missing, extra = set(expected) - set(got), set(got) - set(expected)
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])
    assert len(got) == len(expected)

    totals: dict[tuple, list[int]] = {}
    for t in truth:
        g = totals.setdefault((t.reporting_date, t.currency, t.recon_status), [0, 0, 0])
        g[0] += 1
        g[1] += t.stripe_amount or 0
        g[2] += t.ledger_amount or 0
    assert sorted(rpt) == sorted((*k, *v) for k, v in totals.items())

    # the ops report files exist for every day and list every break
    for d in (FIRST, LAST):
        folder = Path(settings.stage_uri) / "reports" / d.isoformat()
        text = (folder / f"reconciliation_{d}.html").read_text()
        csv_rows = (folder / f"reconciliation_{d}.csv").read_text().splitlines()[1:]
        breaks = [
            t
            for t in truth
            if t.reporting_date == d
            and t.recon_status
            not in ("matched", "not_booked", "pending_in_stripe", "pending_in_ledger")
        ]
        refund_breaks = [  # every refund break the marts hold for the day, with its item id
            r[1] for r in refunds
            if r[0] == d and r[3] not in
            ("matched", "not_booked", "pending_in_stripe", "pending_in_ledger")
        ]  # fmt: skip
        fee_ids = [s for day, s in fee_breaks if day == d]
        payout_breaks = [
            r[1] for r in payouts if r[0] == d and r[3] not in
            ("matched", "not_booked", "pending_in_stripe", "pending_in_ledger")
        ]  # fmt: skip
        dispute_ids = [s for day, s in dispute_breaks if day == d]
        n = len(breaks) + len(refund_breaks) + len(fee_ids) + len(payout_breaks) + len(dispute_ids)
        assert f"<h2>Breaks ({n:,})</h2>" in text
        assert len(csv_rows) == n
        rows = [r.split(",") for r in csv_rows]
        # each row carries its item type and id; a charge row keeps its charge_id
        assert sorted(r[4] for r in rows if r[2] == "charge") == sorted(
            t.charge_id or "" for t in breaks
        )
        assert all(r[3] == r[4] for r in rows if r[2] == "charge")
        assert sorted(r[3] for r in rows if r[2] == "refund") == sorted(refund_breaks)
        assert sorted(r[3] for r in rows if r[2] == "fee") == sorted(fee_ids)
        assert sorted(r[3] for r in rows if r[2] == "payout") == sorted(payout_breaks)
        assert sorted(r[3] for r in rows if r[2] == "dispute") == sorted(dispute_ids)
        assert f"Payouts arriving on this day ({len([r for r in payouts if r[0] == d]):,})" in text
        # the report's header ties the balance out, per currency
        assert text.count("Stripe balance (") == len([r for r in tieout if r[0] == d]) > 0

    before = snapshot(settings.duckdb_path)
    assert before["raw.stripe_charges"] and before["marts.fct_charge_reconciliation"]
    # re-run one day, then the whole range: every table is identical
    materialize_range(defs, date(2024, 3, 10), date(2024, 3, 10))
    assert_same_tables(snapshot(settings.duckdb_path), before)
    materialize_range(defs, FIRST, LAST)
    assert_same_tables(snapshot(settings.duckdb_path), before)


def test_more_unknown_charges_than_the_bound_fail_before_any_lookup(
    pipeline: tuple[ReconSettings, SeedResult],
) -> None:
    """The seeded week has orphan entries; with the look-up bound at 0 the run must stop at the
    look-up step with a message that says what to do, before any call, and build no marts."""
    settings, _ = pipeline
    strict = dataclasses.replace(settings, stripe_max_lookups=0)
    with pytest.raises(Exception, match=r"RECON_STRIPE_MAX_LOOKUPS.*backfill") as err:
        materialize_range(build_definitions(strict), FIRST, LAST)
    assert "nothing was looked up" in str(err.value)
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        assert con.execute("select count(*) from raw.stripe_charge_lookups").fetchone() == (0,)
        marts = con.execute(
            "select count(*) from information_schema.tables where table_schema = 'marts'"
        ).fetchone()
        assert marts == (0,)
    finally:
        con.close()
