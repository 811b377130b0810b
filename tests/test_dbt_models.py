"""The dbt project end to end on DuckDB: every row of the reconciliation rules table, its edges,
and the incremental window.

Synthetic raw tables are built with the exact staged schemas (plus `_loaded_at`) in a temporary
DuckDB file; each case states its charge, its ledger entries and the row it must produce, written
out by hand (never derived from the SQL). dbt runs as the real CLI in a subprocess with a session
time zone that is neither UTC nor US-Eastern, so a bare `::timestamptz` or session-dependent day
arithmetic would show. dbt start-up dominates: assertions are batched into few invocations.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recon_assets.defs.dbt_assets import dbt_project, default_dbt_executable
from recon_assets.stage.schemas import (
    LEDGER_ENTRIES_SCHEMA,
    STRIPE_BALANCE_TRANSACTIONS_SCHEMA,
    STRIPE_CHARGES_SCHEMA,
    STRIPE_DISPUTES_SCHEMA,
    STRIPE_PAYOUT_TRANSACTIONS_SCHEMA,
    STRIPE_PAYOUTS_SCHEMA,
    STRIPE_REFUNDS_SCHEMA,
)
from recon_assets.warehouse.dbt_launch import WAREHOUSE_ENV, env_args
from recon_assets.warehouse.dbt_vars import RUN_VARS_ENV
from recon_assets.warehouse.loader import DATASETS

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
RECON_DBT = default_dbt_executable()
"""dbt as the project runs it: `recon-dbt` of dbt's own environment (`.venv-dbt`)."""
DBT = Path(RECON_DBT).with_name("dbt")
"""dbt itself, beside `recon-dbt`."""
PREPARED_PARSE = PROJECT_DIR / dbt_project("local").target_path / "partial_parse.msgpack"
"""What `recon prepare` left for every run's target folder to start from."""
NY = ZoneInfo("America/New_York")

# The latest ledger day loaded is 2024-03-12 (ET), so "as of" is 2024-03-13 00:00 EDT.
AS_OF = datetime(2024, 3, 13, 4, 0, tzinfo=UTC)
SYNCED = datetime(2024, 3, 12, 10, 0, tzinfo=UTC)
RESYNCED = datetime(2024, 3, 13, 10, 0, tzinfo=UTC)

FCT_COLUMNS = [
    "reporting_date",
    "charge_id",
    "ledger_entry_ids",
    "recon_status",
    "currency",
    "stripe_amount",
    "ledger_amount",
    "amount_diff",
    "charge_synced_at",
]
RPT_COLUMNS = [
    "reporting_date",
    "currency",
    "recon_status",
    "item_count",
    "stripe_amount",
    "ledger_amount",
    "is_break",
]
NOT_BREAKS = {
    "matched", "not_booked", "pending_in_stripe", "pending_in_ledger", "pending_stripe_lookup",
}  # fmt: skip


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def et_day(t: datetime) -> date:
    """The `_partition_date` the extract would give (input data, not an expectation)."""
    return t.astimezone(NY).date()


def charge(
    cid: str,
    created: datetime,
    *,
    status: str = "succeeded",
    captured: bool = True,
    currency: str = "usd",
    amount: int = 1000,
    amount_captured: int | None = None,
    synced: datetime = SYNCED,
    refunded: bool = False,
) -> dict[str, Any]:
    if amount_captured is None:
        amount_captured = amount if captured else 0
    return {
        "id": cid,
        "created": created,
        "livemode": False,
        "status": status,
        "paid": status == "succeeded",
        "captured": captured,
        "refunded": refunded,
        "disputed": False,
        "currency": currency,
        "amount": amount,
        "amount_captured": amount_captured,
        "amount_refunded": amount if refunded else 0,
        "balance_transaction": f"txn_{cid}",
        "customer": "cus_1",
        "payment_intent": f"pi_{cid}",
        "failure_code": "card_declined" if status == "failed" else None,
        "failure_message": None,
        "outcome_type": "authorized",
        "description": None,
        "metadata": json.dumps({"order": cid}),
        "_partition_date": et_day(created),
        "_synced_at": synced,
        "_run_id": "run_test",
    }


def entry(
    eid: int,
    ref: str | None,
    posted: datetime,
    amount: int = 1000,
    currency: str = "USD",
    entry_type: str = "charge",
    reversal_of: int | None = None,
) -> dict[str, Any]:
    return {
        "id": eid,
        "entry_type": entry_type,
        "external_ref": ref,
        "account": "stripe_clearing",
        "amount_minor": amount,
        "currency": currency,
        "posted_at": posted,
        "created_at": posted,
        "updated_at": posted,
        "journal_id": 1,
        "reversal_of": reversal_of,
        "_partition_date": et_day(posted),
        "_synced_at": SYNCED,
        "_run_id": "run_test",
    }


@dataclass(frozen=True)
class Expect:
    """The fct row a case must produce (the nine contract columns)."""

    reporting_date: date
    charge_id: str | None
    status: str
    currency: str
    stripe_amount: int | None
    ledger_amount: int | None
    ledger_entry_ids: str | None
    synced: datetime | None = SYNCED

    def row(self) -> tuple[Any, ...]:
        diff = (self.ledger_amount or 0) - (self.stripe_amount or 0)
        return (
            self.reporting_date,
            self.charge_id,
            self.ledger_entry_ids,
            self.status,
            self.currency,
            self.stripe_amount,
            self.ledger_amount,
            diff,
            self.synced,
        )


@dataclass
class Case:
    name: str
    charges: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    expect: list[Expect] = field(default_factory=list)


def refund(rid: str, created: datetime, *, status: str = "succeeded", amount: int = 500,
           currency: str = "usd", synced: datetime = SYNCED, charge_id: str = "ch_x") -> dict:  # fmt: skip
    return {
        "id": rid, "created": created, "status": status, "charge": charge_id,
        "payment_intent": None, "currency": currency, "amount": amount,
        "balance_transaction": f"txn_{rid}",
        "failure_balance_transaction": f"txn_f_{rid}" if status == "failed" else None,
        "failure_reason": "expired_or_canceled_card" if status == "failed" else None,
        "reason": None, "metadata": None, "_partition_date": et_day(created),
        "_synced_at": synced, "_run_id": "run_test",
    }  # fmt: skip


def txn(tid: str, source: str, created: datetime, amount: int, fee: int = 0, *,
        type_: str = "charge", currency: str = "usd") -> dict:  # fmt: skip
    """A balance transaction: `net` = amount - fee, as Stripe's always is."""
    return {
        "id": tid, "created": created, "available_on": created + timedelta(days=2),
        "status": "available", "type": type_, "reporting_category": type_, "source": source,
        "currency": currency, "amount": amount, "fee": fee, "net": amount - fee,
        "exchange_rate": None, "description": None, "_partition_date": et_day(created),
        "_synced_at": SYNCED, "_run_id": "run_test",
    }  # fmt: skip


def reversal(eid: int, of: dict, posted: datetime, amount: int | None = None,
             ref: str | None = None) -> dict:  # fmt: skip
    """The ledger's correction of entry `of`: minus its amount unless told, no external_ref
    unless told (`reversal_of` is what ties it to its item)."""
    return entry(eid, ref, posted, -of["amount_minor"] if amount is None else amount,
                 of["currency"], "reversal", reversal_of=of["id"])  # fmt: skip


def ok(eid: int, cid: str, created: datetime, amount: int = 1000, currency: str = "USD") -> dict:
    """A ledger entry that books the charge an hour after it was created."""
    return entry(eid, cid, created + timedelta(hours=1), amount, currency)


def cases() -> list[Case]:
    d = date
    c = []
    # -- status pending: whatever the ledger says
    t = utc(2024, 3, 11, 15)
    c.append(
        Case(
            "pending",
            [charge("ch_pending", t, status="pending", captured=False)],
            [ok(1, "ch_pending", t)],
            [Expect(d(2024, 3, 11), "ch_pending", "pending_in_stripe", "USD", 0, 1000, "1")],
        )
    )
    # -- failed / not captured, no entry: correct
    t = utc(2024, 3, 8, 14)
    c.append(
        Case(
            "failed, none",
            [charge("ch_failed", t, status="failed", captured=False)],
            [],
            [Expect(d(2024, 3, 8), "ch_failed", "not_booked", "USD", 0, None, None)],
        )
    )
    c.append(
        Case(
            "uncaptured, none",
            [charge("ch_uncaptured", t, captured=False)],
            [],
            [Expect(d(2024, 3, 8), "ch_uncaptured", "not_booked", "USD", 0, None, None)],
        )
    )
    # -- failed / not captured with entries
    c.append(
        Case(
            "failed, booked",
            [charge("ch_failed_booked", t, status="failed", captured=False)],
            [ok(2, "ch_failed_booked", t)],
            [
                Expect(
                    d(2024, 3, 8),
                    "ch_failed_booked",
                    "unexpected_ledger_entry",
                    "USD",
                    0,
                    1000,
                    "2",
                )
            ],
        )
    )
    c.append(
        Case(
            "uncaptured, booked twice",
            [charge("ch_uncaptured_booked", t, captured=False)],
            [ok(3, "ch_uncaptured_booked", t), ok(4, "ch_uncaptured_booked", t)],
            [
                Expect(
                    d(2024, 3, 8),
                    "ch_uncaptured_booked",
                    "unexpected_ledger_entry",
                    "USD",
                    0,
                    2000,
                    "3,4",
                )
            ],
        )
    )
    # -- schema drift: an unknown status is "not succeeded", even if captured
    c.append(
        Case(
            "unknown status, none",
            [charge("ch_review", t, status="requires_review", captured=True, amount_captured=0)],
            [],
            [Expect(d(2024, 3, 8), "ch_review", "not_booked", "USD", 0, None, None)],
        )
    )
    c.append(
        Case(
            "unknown status, booked",
            [charge("ch_review_booked", t, status="requires_review", amount_captured=0)],
            [ok(5, "ch_review_booked", t)],
            [
                Expect(
                    d(2024, 3, 8),
                    "ch_review_booked",
                    "unexpected_ledger_entry",
                    "USD",
                    0,
                    1000,
                    "5",
                )
            ],
        )
    )
    # -- succeeded, no entry: pending or missing by created + T (72 h) against as-of
    c.append(
        Case(
            "recent, none",
            [charge("ch_pending_ledger", utc(2024, 3, 11, 12))],
            [],
            [
                Expect(
                    d(2024, 3, 11),
                    "ch_pending_ledger",
                    "pending_in_ledger",
                    "USD",
                    1000,
                    None,
                    None,
                )
            ],
        )
    )
    c.append(
        Case(
            "created + T exactly at as-of: no longer pending",
            [charge("ch_deadline_at_as_of", AS_OF - timedelta(hours=72))],  # 23:00 EST Mar 9
            [],
            [
                Expect(
                    d(2024, 3, 9),
                    "ch_deadline_at_as_of",
                    "missing_in_ledger",
                    "USD",
                    1000,
                    None,
                    None,
                )
            ],
        )
    )
    c.append(
        Case(
            "created + T one second after as-of",
            [charge("ch_deadline_after", AS_OF - timedelta(hours=72) + timedelta(seconds=1))],
            [],
            [
                Expect(
                    d(2024, 3, 9), "ch_deadline_after", "pending_in_ledger", "USD", 1000, None, None
                )
            ],
        )
    )
    t = utc(2024, 3, 5, 12)
    c.append(
        Case(
            "old, none (an entry of another type does not count)",
            [charge("ch_missing", t)],
            [entry(6, "ch_missing", t + timedelta(hours=2), 30, entry_type="adjustment")],
            [Expect(d(2024, 3, 5), "ch_missing", "missing_in_ledger", "USD", 1000, None, None)],
        )
    )
    # -- more than one entry; ids ascending as integers (9 before 10)
    c.append(
        Case(
            "duplicate",
            [charge("ch_dup", t)],
            [ok(10, "ch_dup", t), ok(9, "ch_dup", t)],
            [Expect(d(2024, 3, 5), "ch_dup", "duplicate_in_ledger", "USD", 1000, 2000, "9,10")],
        )
    )
    # -- one entry, other currency (compared upper-case)
    c.append(
        Case(
            "currency mismatch",
            [charge("ch_currency", t, currency="usd")],
            [ok(11, "ch_currency", t, currency="EUR")],
            [Expect(d(2024, 3, 5), "ch_currency", "currency_mismatch", "USD", 1000, 1000, "11")],
        )
    )
    c.append(
        Case(
            "lower-case stripe currency equals upper-case ledger currency",
            [charge("ch_eur", t, currency="eur", amount=2500)],
            [ok(12, "ch_eur", t, 2500, "EUR")],
            [Expect(d(2024, 3, 5), "ch_eur", "matched", "EUR", 2500, 2500, "12")],
        )
    )
    # -- one entry, amount != amount_captured
    c.append(
        Case(
            "amount mismatch",
            [charge("ch_amount", t)],
            [ok(13, "ch_amount", t, 999)],
            [Expect(d(2024, 3, 5), "ch_amount", "amount_mismatch", "USD", 1000, 999, "13")],
        )
    )
    c.append(
        Case(
            "partial capture booked at the captured amount",
            [charge("ch_partial", t, amount=1000, amount_captured=600)],
            [ok(14, "ch_partial", t, 600)],
            [Expect(d(2024, 3, 5), "ch_partial", "matched", "USD", 600, 600, "14")],
        )
    )
    # -- zero-decimal currency: minor units are yen, never divided by 100
    c.append(
        Case(
            "JPY matched",
            [charge("ch_jpy", t, currency="jpy", amount=1500)],
            [ok(15, "ch_jpy", t, 1500, "JPY")],
            [Expect(d(2024, 3, 5), "ch_jpy", "matched", "JPY", 1500, 1500, "15")],
        )
    )
    c.append(
        Case(
            "JPY booked x100",
            [charge("ch_jpy_x100", t, currency="jpy", amount=1500)],
            [ok(16, "ch_jpy_x100", t, 150000, "JPY")],
            [Expect(d(2024, 3, 5), "ch_jpy_x100", "amount_mismatch", "JPY", 1500, 150000, "16")],
        )
    )
    # -- one entry, posted after created + T; exactly at created + T is in time
    c.append(
        Case(
            "late posting",
            [charge("ch_late", t)],
            [entry(17, "ch_late", t + timedelta(hours=72, seconds=1))],
            [Expect(d(2024, 3, 5), "ch_late", "late_posting", "USD", 1000, 1000, "17")],
        )
    )
    c.append(
        Case(
            "posted exactly at created + T",
            [charge("ch_on_time", t)],
            [entry(18, "ch_on_time", t + timedelta(hours=72))],
            [Expect(d(2024, 3, 5), "ch_on_time", "matched", "USD", 1000, 1000, "18")],
        )
    )
    c.append(
        Case(
            "refunded later, still matched (refunds are not charge entries)",
            [charge("ch_refunded", t, refunded=True)],
            [
                ok(19, "ch_refunded", t),
                # a refund entry names its refund; this one Stripe never had (a refund item of
                # its own, on the refund side of the marts: test_refund_rules)
                entry(20, "re_refunded_unknown", t + timedelta(days=1), -1000, entry_type="refund"),
            ],
            [Expect(d(2024, 3, 5), "ch_refunded", "matched", "USD", 1000, 1000, "19")],
        )
    )
    # -- reporting dates around the DST changes (spring 2024-03-10, fall 2023-11-05)
    for i, (cid, created, day) in enumerate(
        [
            ("ch_spring_a", utc(2024, 3, 10, 4, 59, 59), d(2024, 3, 9)),  # 23:59:59 EST
            ("ch_spring_b", utc(2024, 3, 10, 5, 0, 0), d(2024, 3, 10)),  # 00:00 EST
            ("ch_spring_c", utc(2024, 3, 11, 3, 59, 59), d(2024, 3, 10)),  # 23:59:59 EDT
            ("ch_spring_d", utc(2024, 3, 11, 4, 0, 0), d(2024, 3, 11)),  # 00:00 EDT
            ("ch_fall_a", utc(2023, 11, 5, 3, 59, 59), d(2023, 11, 4)),  # 23:59:59 EDT
            ("ch_fall_b", utc(2023, 11, 5, 4, 0, 0), d(2023, 11, 5)),  # 00:00 EDT
            ("ch_fall_c", utc(2023, 11, 6, 4, 59, 59), d(2023, 11, 5)),  # 23:59:59 EST
            ("ch_fall_d", utc(2023, 11, 6, 5, 0, 0), d(2023, 11, 6)),  # 00:00 EST
        ]
    ):
        eid = 100 + i
        c.append(
            Case(
                f"DST {cid}",
                [charge(cid, created)],
                [ok(eid, cid, created)],
                [Expect(day, cid, "matched", "USD", 1000, 1000, str(eid))],
            )
        )
    # -- two synced versions of one charge: the latest wins and is named
    t = utc(2024, 3, 9, 16)
    c.append(
        Case(
            "re-synced charge",
            [
                charge("ch_versions", t, status="pending", captured=False),
                charge("ch_versions", t, synced=SYNCED + timedelta(hours=1)),
            ],
            [ok(21, "ch_versions", t)],
            [
                Expect(
                    d(2024, 3, 9),
                    "ch_versions",
                    "matched",
                    "USD",
                    1000,
                    1000,
                    "21",
                    SYNCED + timedelta(hours=1),
                )
            ],
        )
    )
    # -- orphan ledger charge entries: missing_in_stripe on the ET day of posting
    c.append(
        Case(
            "orphan",
            [],
            [entry(500, "ch_ghost", utc(2024, 3, 11, 3, 30), 700, "GBP")],  # 23:30 EDT Mar 10
            [
                Expect(
                    d(2024, 3, 10), "ch_ghost", "missing_in_stripe", "GBP", None, 700, "500", None
                )
            ],
        )
    )
    c.append(
        Case(
            "orphan without a reference (the only item of 2024-03-12)",
            [],
            [entry(501, None, utc(2024, 3, 12, 15), 300)],
            [Expect(d(2024, 3, 12), None, "missing_in_stripe", "USD", None, 300, "501", None)],
        )
    )
    c.append(
        Case(
            "a non-charge entry without a charge is not an orphan",
            [],
            [entry(502, "ch_nowhere", utc(2024, 3, 8, 12), 5, entry_type="adjustment")],
            [],
        )
    )
    # -- an orphan is only what Stripe's look-up by id says it is
    c.append(
        Case(
            "orphan whose charge was never looked up: not a break yet",
            [],
            [entry(503, "ch_unknown", utc(2024, 3, 8, 12), 400)],
            [
                Expect(
                    d(2024, 3, 8), "ch_unknown", "pending_stripe_lookup", "USD", None, 400, "503",
                    None,
                )
            ],
        )
    )  # fmt: skip
    c.append(
        Case(
            "orphan whose charge Stripe has but we could not read (quarantined)",
            [],
            [entry(504, "ch_garbled", utc(2024, 3, 8, 13), 450)],
            [
                Expect(
                    d(2024, 3, 8), "ch_garbled", "unreadable_in_stripe", "USD", None, 450, "504",
                    None,
                )
            ],
        )
    )  # fmt: skip
    # -- the ledger's corrections: a reversal cancels the entry it names (reversal_of)
    t = utc(2024, 3, 6, 15)
    extra = entry(701, "ch_dup_fixed", t + timedelta(hours=2))
    c.append(
        Case(
            "duplicate whose extra entry is reversed (the reversal names the charge too)",
            [charge("ch_dup_fixed", t)],
            [ok(700, "ch_dup_fixed", t), extra,
             reversal(702, extra, t + timedelta(days=2), ref="ch_dup_fixed")],
            [Expect(d(2024, 3, 6), "ch_dup_fixed", "matched", "USD", 1000, 1000, "700,701,702")],
        )
    )  # fmt: skip
    wrong = ok(703, "ch_amount_fixed", t, amount=990)
    c.append(
        Case(
            "wrong amount reversed and booked right after the deadline: first booking in time",
            [charge("ch_amount_fixed", t)],
            [wrong, reversal(704, wrong, t + timedelta(days=4)),
             entry(705, "ch_amount_fixed", t + timedelta(days=4))],
            [Expect(d(2024, 3, 6), "ch_amount_fixed", "matched", "USD", 1000, 1000,
                    "703,704,705")],
        )
    )  # fmt: skip
    booked = ok(706, "ch_failed_fixed", t)
    c.append(
        Case(
            "booking of a failed charge reversed",
            [charge("ch_failed_fixed", t, status="failed", captured=False)],
            [booked, reversal(707, booked, t + timedelta(days=1))],
            [Expect(d(2024, 3, 6), "ch_failed_fixed", "not_booked", "USD", 0, None, "706,707")],
        )
    )
    good = ok(708, "ch_unbooked", t)
    c.append(
        Case(
            "good booking reversed, nothing booked again: the money is unbooked",
            [charge("ch_unbooked", t)],
            [good, reversal(709, good, t + timedelta(days=1))],
            [Expect(d(2024, 3, 6), "ch_unbooked", "missing_in_ledger", "USD", 1000, None,
                    "708,709")],
        )
    )  # fmt: skip
    ghost = entry(710, "ch_ghost", utc(2024, 3, 7, 12), 800)
    c.append(
        Case(
            "orphan entry reversed: no item at all",
            [],
            [ghost, reversal(711, ghost, utc(2024, 3, 9, 12))],
            [],
        )
    )
    over = ok(712, "ch_part_reversed", t, amount=1300)
    c.append(
        Case(
            "a reversal of another amount counts by its amount (the pair nets to what is left)",
            [charge("ch_part_reversed", t)],
            [over, reversal(713, over, t + timedelta(days=1), amount=-300)],
            [Expect(d(2024, 3, 6), "ch_part_reversed", "matched", "USD", 1000, 1000,
                    "712,713")],
        )
    )  # fmt: skip
    ghost2 = entry(714, "ch_ghost", utc(2024, 3, 7, 13), 700, "GBP")
    c.append(
        Case(
            "orphan partly reversed: what is left stays missing in Stripe",
            [],
            [ghost2, reversal(715, ghost2, utc(2024, 3, 9, 13), amount=-200)],
            [Expect(d(2024, 3, 7), "ch_ghost", "missing_in_stripe", "GBP", None, 500,
                    "714,715", None)],
        )
    )  # fmt: skip
    late_dup = ok(717, "ch_dup_late", t)
    c.append(
        Case(
            "duplicate whose extra entry run B reverses",
            [charge("ch_dup_late", t)],
            [ok(716, "ch_dup_late", t), late_dup],
            [Expect(d(2024, 3, 6), "ch_dup_late", "duplicate_in_ledger", "USD", 1000, 2000,
                    "716,717")],
        )
    )  # fmt: skip
    c.append(
        Case(
            "orphan run B reverses",
            [],
            [entry(718, "ch_ghost", utc(2024, 3, 7, 14), 900)],
            [Expect(d(2024, 3, 7), "ch_ghost", "missing_in_stripe", "USD", None, 900, "718",
                    None)],
        )
    )  # fmt: skip
    # -- a gap in the loaded ledger days: as-of is the end of the gap-free run holding the day
    c.append(
        Case(
            "deadline after the gap: pending, though later ledger days are loaded",
            [charge("ch_before_gap", utc(2024, 1, 8, 17))],
            [],
            [Expect(d(2024, 1, 8), "ch_before_gap", "pending_in_ledger", "USD", 1000, None, None)],
        )
    )
    c.append(
        Case(
            "deadline before the gap: missing",
            [charge("ch_well_before_gap", utc(2024, 1, 5, 17))],
            [],
            [
                Expect(
                    d(2024, 1, 5), "ch_well_before_gap", "missing_in_ledger", "USD", 1000, None,
                    None,
                )
            ],
        )
    )  # fmt: skip
    return c


# --------------------------------------------------------------------------------------------
# warehouse and dbt helpers


def arrow_table(schema: pa.Schema, rows: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.table({f.name: [r[f.name] for r in rows] for f in schema}, schema=schema)


STRIPE_DAYS = tuple(d for d in DATASETS if d.startswith("stripe_"))
"""A Stripe day is loaded when each of its datasets is."""
LOADED_1 = datetime(2024, 3, 13, 9, 0, tzinfo=UTC)
LOADED_2 = datetime(2024, 3, 13, 12, 0, tzinfo=UTC)
GAP_DAY = date(2024, 1, 10)
"""The one ledger day never loaded: charges before it are as of its start, not of Mar 13."""


def loaded_days(first: date = date(2023, 11, 1), last: date = date(2024, 3, 12)) -> list[date]:
    return [first + timedelta(i) for i in range((last - first).days + 1)]


LOOKUPS = [
    ("ch_ghost", "not_found"), ("ch_garbled", "quarantined"), ("re_refunded_unknown", "not_found"),
]  # fmt: skip


def write_raw(
    db: Path,
    charges: Sequence[dict],
    entries: Sequence[dict],
    *,
    load_log: Sequence[tuple[str, date, datetime]] | None = None,
    lookups: Sequence[tuple[str, str]] = LOOKUPS,
    refunds: Sequence[dict] = (),
    txns: Sequence[dict] = (),
    payouts: Sequence[dict] = (),
    carried: Sequence[dict] = (),
    disputes: Sequence[dict] = (),
) -> None:
    """What the loaders leave behind: raw.* = staged columns + `_loaded_at` (TIMESTAMPTZ), the
    load log (every charge and ledger day loaded once at LOADED_1, but GAP_DAY's ledger) and
    the look-ups. A row's own `_loaded_at` key, when present, says when it was (re)loaded."""
    from recon_assets.warehouse.duckdb_loader import ensure_raw_tables

    if load_log is None:
        load_log = [(ds, d, LOADED_1) for ds in STRIPE_DAYS for d in loaded_days()] + [
            ("ledger_entries", d, LOADED_1) for d in loaded_days() if d != GAP_DAY
        ]
    con = duckdb.connect(str(db))
    try:
        con.execute("drop schema if exists raw cascade")
        ensure_raw_tables(con)
        for name, schema, rows in [
            ("stripe_charges", STRIPE_CHARGES_SCHEMA, charges),
            ("stripe_refunds", STRIPE_REFUNDS_SCHEMA, refunds),
            ("stripe_balance_transactions", STRIPE_BALANCE_TRANSACTIONS_SCHEMA, txns),
            ("stripe_payouts", STRIPE_PAYOUTS_SCHEMA, payouts),
            ("stripe_payout_transactions", STRIPE_PAYOUT_TRANSACTIONS_SCHEMA, carried),
            ("stripe_disputes", STRIPE_DISPUTES_SCHEMA, disputes),
            ("ledger_entries", LEDGER_ENTRIES_SCHEMA, entries),
        ]:
            tbl = arrow_table(schema, rows)
            tbl = tbl.append_column(
                "_loaded_at",
                pa.array([r.get("_loaded_at", LOADED_1) for r in rows], pa.timestamp("us", "UTC")),
            )
            con.execute(f"insert into raw.{name} by name select * from tbl")
        for dataset, day, at in load_log:
            con.execute(
                "insert into raw.load_log values (?, ?, 'day', 0, 'run_test', ?)",
                [dataset, day, at],
            )
        for cid, result in lookups:
            con.execute(
                "insert into raw.stripe_charge_lookups values (?, ?, null, 'run_test', ?)",
                [cid, result, LOADED_1],
            )
    finally:
        con.close()


def run_dbt(work: Path, *args: str, env: dict[str, str], fail: bool | None = False) -> str:
    """Run dbt from the project as a run does (`recon-dbt`, the warehouse named in `--recon-env`
    and opened by its file name) with `env` (on top of this process's), its artifacts in
    `work/target` and its logs in `work/logs`; return its output. The run must succeed, or with
    `fail` must fail; `fail=None` asserts neither. A hang fails with the end of dbt's own debug
    log, which names the node and the SQL in flight, instead of a bare timeout.

    A local target folder starts from the prepared manifest's partial parse, as a run's does
    (`stable_target_path`): dbt then parses only what differs from it, not the whole project
    (3.4 s a test)."""
    warehouse = {k: v for k, v in env.items() if k == WAREHOUSE_ENV}
    target = work / "target"
    if "prod" not in args and PREPARED_PARSE.exists() and not target.exists():
        target.mkdir(parents=True)
        shutil.copyfile(PREPARED_PARSE, target / PREPARED_PARSE.name)
    cmd = [RECON_DBT, *env_args(warehouse), *args, "--target-path", str(target),
           "--log-path", str(work / "logs")]  # fmt: skip
    # dbt runs in the warehouse's folder: it finds the profile as Dagster tells it, not in cwd
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "DBT_PROFILES_DIR": str(PROJECT_DIR), **env}  # fmt: skip
    env.pop(WAREHOUSE_ENV, None)
    try:
        proc = subprocess.run(
            cmd, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=240, check=False
        )
    except subprocess.TimeoutExpired:
        log = (work / "logs" / "dbt.log").read_text(errors="replace").splitlines()
        pytest.fail(f"dbt {' '.join(args)} hung; the end of its log:\n" + "\n".join(log[-60:]))
    if fail:
        assert proc.returncode != 0, proc.stdout[-3000:]
    elif fail is not None:
        assert proc.returncode == 0, (
            f"dbt {' '.join(args)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


def dbt(
    db: Path,
    work: Path,
    *args: str,
    session_tz: str = "Asia/Kolkata",
    fail: bool = False,
    run_vars: str | None = None,
) -> str:
    """Run the dbt CLI on the temp warehouse (see `run_dbt`). `run_vars` reach the models as
    a run's do (RECON_DBT_RUN_VARS), not as `--vars`, which dbt parses the project again for
    whenever they change."""
    env = {"RECON_DUCKDB_PATH": str(db), "TZ": session_tz}  # DuckDB's session TimeZone follows TZ
    if run_vars is not None:
        env[RUN_VARS_ENV] = run_vars
    return run_dbt(work, *args, env=env, fail=fail)


def window_vars(first: date, end_exclusive: date) -> str:
    return json.dumps(
        {
            "min_reporting_date": first.isoformat(),
            "max_reporting_date_exclusive": end_exclusive.isoformat(),
        }
    )


@dataclass(frozen=True)
class Marts:
    fct_columns: list[str]
    rpt_columns: list[str]
    fct: list[tuple]  # contract columns, sorted
    fct_full: list[tuple]  # every column, sorted by recon_key
    rpt: list[tuple]  # sorted
    fct_types: dict[str, str]

    def fct_on(self, day: date) -> list[tuple]:
        return [r for r in self.fct if r[0] == day]

    def fct_off(self, day: date) -> list[tuple]:
        return [r for r in self.fct_full if r[0] != day]

    def rpt_off(self, *days: date) -> list[tuple]:
        return [r for r in self.rpt if r[0] not in days]


def read_marts(db: Path) -> Marts:
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        fct_rel = con.table("marts.fct_charge_reconciliation")
        rpt_rel = con.table("marts.rpt_daily_reconciliation")
        cols = ", ".join(FCT_COLUMNS)
        fct = con.sql(f"select {cols} from marts.fct_charge_reconciliation").fetchall()
        full = con.sql(
            "select * from marts.fct_charge_reconciliation order by recon_key"
        ).fetchall()
        rpt = con.sql(
            f"select {', '.join(RPT_COLUMNS)} from marts.rpt_daily_reconciliation "
            "where item_type = 'charge'"
        ).fetchall()
        types = dict(zip(fct_rel.columns, [str(t) for t in fct_rel.types], strict=True))
        return Marts(
            list(fct_rel.columns),
            list(rpt_rel.columns),
            sorted(fct, key=_key),
            full,
            sorted(rpt, key=_key),
            types,
        )
    finally:
        con.close()


def _key(row: tuple) -> tuple:
    return tuple((v is None, str(v)) for v in row)


def expected_fct(cs: Sequence[Case]) -> list[tuple]:
    return sorted((e.row() for case in cs for e in case.expect), key=_key)


def expected_rpt(fct_rows: Sequence[tuple]) -> list[tuple]:
    """The report as ops should see it: a plain Python group-by over the expected fct rows."""
    groups: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for reporting_date, _cid, _ids, status, currency, stripe, ledger, _diff, _synced in fct_rows:
        g = groups[(reporting_date, currency, status)]
        g[0] += 1
        g[1] += stripe or 0
        g[2] += ledger or 0
    return sorted(
        (
            (d, cur, st, n, s, ledger, st not in NOT_BREAKS)
            for (d, cur, st), (n, s, ledger) in groups.items()
        ),
        key=_key,
    )


def flatten(cs: Sequence[Case]) -> tuple[list[dict], list[dict]]:
    return [ch for c in cs for ch in c.charges], [e for c in cs for e in c.entries]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("dbt_models")


# --------------------------------------------------------------------------------------------


def read_days(db: Path) -> dict[date, tuple[str, str]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "select reporting_date, day_status, day_status_reason "
            "from marts.rpt_reconciliation_days"
        ).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}
    finally:
        con.close()


def read_history(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "select history_key, recon_status, valid_from, valid_to, changed_by_run "
            "from marts.fct_reconciliation_history order by history_key"
        ).fetchall()
    finally:
        con.close()


def read_status_changes(db: Path) -> set[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return set(
            con.execute(
                "select recon_key, status_before, status_after from marts.rpt_status_changes"
            ).fetchall()
        )
    finally:
        con.close()


def read_break_history(db: Path) -> dict[str, tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "select recon_key, is_open, resolution, coalesce(current_status, last_break_status), "
            "first_seen, days_open from marts.rpt_break_history"
        ).fetchall()
        return {r[0]: r[1:] for r in rows}
    finally:
        con.close()


def without(rows: list[tuple], column: int) -> list[tuple]:
    return [r[:column] + r[column + 1 :] for r in rows]


@pytest.mark.timeout(300)
def test_every_rule_then_late_data_reopens_exactly_what_it_touches(work: Path) -> None:
    """Full build: every status and edge, and each day final or preliminary with its reason.
    Then late data (a re-synced charge, a late entry for a weeks-old charge, an entry that stops
    being a charge entry, a new booking) rebuilds exactly the charges it names, on their own
    days, whatever the run's window; re-runs change nothing; and the incremental result equals a
    full rebuild."""
    db = work / "warehouse.duckdb"
    cs = cases()
    statuses = {e.status for c in cs for e in c.expect}
    assert statuses == {
        "pending_in_stripe",
        "not_booked",
        "unexpected_ledger_entry",
        "pending_in_ledger",
        "missing_in_ledger",
        "duplicate_in_ledger",
        "currency_mismatch",
        "amount_mismatch",
        "late_posting",
        "matched",
        "missing_in_stripe",
        "unreadable_in_stripe",
        "pending_stripe_lookup",
    }
    write_raw(db, *flatten(cs))

    # -- run A: full build (models + every dbt test)
    dbt(db, work, "build", "--target", "local")
    a = read_marts(db)
    assert a.fct_columns[: len(FCT_COLUMNS)] == FCT_COLUMNS
    assert a.rpt_columns[: len(RPT_COLUMNS)] == RPT_COLUMNS
    for col in ("stripe_amount", "ledger_amount", "amount_diff"):
        assert a.fct_types[col] == "BIGINT", col  # integers in minor units, never decimals
    assert a.fct_types["reporting_date"] == "DATE"
    assert a.fct == expected_fct(cs)
    assert a.rpt == expected_rpt(expected_fct(cs))

    days = read_days(db)
    # Mar 5: Stripe day loaded, ledger loaded through Mar 12 (>= Mar 5 + 72 h), nothing pending
    assert days[date(2024, 3, 5)] == ("final", "")
    status, reason = days[date(2024, 3, 11)]
    assert status == "preliminary"
    assert "ledger loaded through 2024-03-12" in reason and "1 pending in Stripe" in reason
    assert "1 pending in the ledger" in reason
    assert days[date(2024, 3, 8)][0] == "preliminary"  # an orphan awaits its look-up
    assert "1 awaiting a Stripe look-up" in days[date(2024, 3, 8)][1]
    assert days[date(2024, 1, 8)] == (
        "preliminary",
        "ledger loaded through 2024-01-09, bookings can arrive through 2024-01-11; "
        "1 pending in the ledger",
    )
    assert days[date(2024, 1, 5)] == ("final", "")

    # -- new raw data, loaded later (only new or changed rows carry the later _loaded_at):
    # Stripe re-pulled ch_pending (it succeeded); the ledger booked ch_pending_ledger; an entry
    # for the Mar 5 charge ch_missing arrives a week late; the only Mar 12 item (orphan 501)
    # turns out to be an adjustment; ledger day Mar 12 was re-loaded.
    d5, d11, d12, d13 = date(2024, 3, 5), date(2024, 3, 11), date(2024, 3, 12), date(2024, 3, 13)
    charges, entries = flatten(cs)
    charges = [
        {**charge("ch_pending", ch["created"], synced=RESYNCED), "_loaded_at": LOADED_2}
        if ch["id"] == "ch_pending"
        else ch
        for ch in charges
    ]
    entries = [
        {**e, "entry_type": "adjustment", "_loaded_at": LOADED_2} if e["id"] == 501 else e
        for e in entries
    ] + [
        {**entry(600, "ch_pending_ledger", utc(2024, 3, 11, 20)), "_loaded_at": LOADED_2},
        {**entry(601, "ch_missing", utc(2024, 3, 12, 14)), "_loaded_at": LOADED_2},
        # corrections posted on Mar 12 reopen Mar 6 and Mar 7 through reversal_of alone
        {
            **reversal(602, next(e for e in entries if e["id"] == 717), utc(2024, 3, 12, 15)),
            "_loaded_at": LOADED_2,
        },
        {
            **reversal(603, next(e for e in entries if e["id"] == 718), utc(2024, 3, 12, 16)),
            "_loaded_at": LOADED_2,
        },
    ]
    log = [(ds, d, LOADED_1) for ds in STRIPE_DAYS for d in loaded_days()] + [
        ("ledger_entries", d, LOADED_1) for d in loaded_days() if d != GAP_DAY
    ]
    write_raw(db, charges, entries, load_log=[*log, ("ledger_entries", d12, LOADED_2)])
    changed = {
        "ch_pending": Expect(d11, "ch_pending", "matched", "USD", 1000, 1000, "1", RESYNCED),
        "ch_pending_ledger": Expect(d11, "ch_pending_ledger", "matched", "USD", 1000, 1000, "600"),
        "ch_missing": Expect(d5, "ch_missing", "late_posting", "USD", 1000, 1000, "601"),
        "ch_dup_late": Expect(date(2024, 3, 6), "ch_dup_late", "matched", "USD", 1000, 1000,
                              "602,716,717"),
    }  # fmt: skip
    want = sorted(
        [
            *(r for r in expected_fct(cs) if r[1] not in changed and r[2] not in ("501", "718")),
            *(e.row() for e in changed.values()),
        ],
        key=_key,
    )

    # -- run B: the nightly's window is Mar 11 only; the late entry still reopens Mar 5
    dbt(
        db,
        work,
        "build",
        "--target",
        "local",
        "--vars",
        window_vars(d11, d12),
        session_tz="America/Los_Angeles",
    )
    b = read_marts(db)
    assert b.fct == want
    assert b.rpt == expected_rpt(want)
    assert b.fct_on(d12) == []  # the day whose only item went away is empty
    assert [r for r in b.rpt if r[0] == d11] == [(d11, "USD", "matched", 3, 3000, 3000, False)]
    # untouched charges keep their rows as they were (only what the data named was rebuilt)
    untouched = {"ch_dup", "ch_currency", "ch_jpy", "ch_fall_a", "ch_before_gap"}
    keep = [r for r in a.fct_full if r[1] in untouched]
    assert [r for r in b.fct_full if r[1] in untouched] == keep

    # the history kept run A's version of every item run B changed, with before and after
    history = read_history(db)
    # 4 charges changed (a new version each); orphans 501 and 718 went away (closed); the
    # refund entry naming no refund Stripe has is an item of the history too, unchanged
    assert len(history) == len(a.fct) + 1 + 4
    assert sum(1 for h in history if h[3] is None) == len(b.fct) + 1
    changes = read_status_changes(db)
    assert changes == {
        ("charge:ch_pending", "pending_in_stripe", "matched"),
        ("charge:ch_pending_ledger", "pending_in_ledger", "matched"),
        ("charge:ch_missing", "missing_in_ledger", "late_posting"),
        ("ledger_entry:501", "missing_in_stripe", None),
        ("charge:ch_dup_late", "duplicate_in_ledger", "matched"),
        ("ledger_entry:718", "missing_in_stripe", None),
    }
    breaks = read_break_history(db)
    assert breaks["ledger_entry:501"][:3] == (False, "went_away", "missing_in_stripe")
    # the ledger's own corrections resolve breaks as such, a reversed orphan included
    assert breaks["charge:ch_dup_late"][:3] == (False, "corrected_in_ledger", "matched")
    assert breaks["ledger_entry:718"][:3] == (False, "corrected_in_ledger", "missing_in_stripe")
    assert breaks["charge:ch_missing"][:3] == (True, None, "late_posting")  # still a break
    assert "charge:ch_pending_ledger" not in breaks  # pending was never a break
    first_seen = {k: v[3] for k, v in breaks.items()}

    # -- run C: the same window on unchanged raw data changes nothing
    dbt(db, work, "build", "--target", "local", "--vars", window_vars(d11, d13), session_tz="UTC")
    c = read_marts(db)
    assert c.fct_full == b.fct_full
    assert c.rpt == b.rpt

    # -- run D: no window, nothing new: nothing changes
    dbt(db, work, "run", "--target", "local", "--select", "marts")
    assert read_marts(db).fct_full == b.fct_full

    # -- run E: a full rebuild from scratch gives the same marts as the incremental runs
    incremental_breaks = {k: v[:4] for k, v in read_break_history(db).items()}
    dbt(db, work, "run", "--target", "local", "--full-refresh", "--select", "+marts")
    e = read_marts(db)
    assert e.fct == b.fct
    assert e.rpt == b.rpt
    # ... and neither the re-runs nor the full refresh added a version or lost the history
    assert read_history(db) == history
    assert {k: v[3] for k, v in read_break_history(db).items()} == first_seen
    # the break history kept up by what each build wrote (int_recon__break_versions) is the
    # one read from the whole history
    assert {k: v[:4] for k, v in read_break_history(db).items()} == incremental_breaks


@pytest.mark.timeout(300)
def test_amounts_that_overflow_stop_the_build_before_anything_changes(tmp_path: Path) -> None:
    """Two ledger amounts near 2^63 on one charge: the sum does not fit the marts' int64. The
    build must fail naming the entries, and the fact table and report stay as they were."""
    db = tmp_path / "warehouse.duckdb"
    t = utc(2024, 3, 5, 12)
    charges = [charge("ch_ok", t), charge("ch_big", t)]
    entries = [ok(1, "ch_ok", t)]
    write_raw(db, charges, entries)
    dbt(db, tmp_path, "build", "--target", "local")
    before = read_marts(db)
    big = 2**63 - 10
    entries += [
        {**entry(7001, "ch_big", t + timedelta(hours=1), big), "_loaded_at": LOADED_2},
        {**entry(7002, "ch_big", t + timedelta(hours=2), big), "_loaded_at": LOADED_2},
    ]
    write_raw(db, charges, entries)
    out = dbt(db, tmp_path, "build", "--target", "local", fail=True)
    assert "amount does not fit int64 minor units" in out
    assert "ledger entries 7001,7002 of charge ch_big" in out
    after = read_marts(db)
    assert after.fct_full == before.fct_full
    assert after.rpt == before.rpt


@pytest.mark.timeout(400)
def test_unique_checks_the_keys_a_build_wrote_and_the_whole_table_after_an_unchecked_build(
    tmp_path: Path,
) -> None:
    """`unique` on the marts' keys reads only the keys a build wrote (against every row holding
    them) when every earlier build passed every test of the model, and the whole table otherwise
    (macros/checked_builds.sql). A hand-made duplicate of a charge no build touches stands for
    what an unchecked build could have left: a scoped build does not see it, `dbt test` alone,
    a build after a failed one and a build after `dbt run` (no tests) do, and a build that
    passes the whole table makes the next one scoped again."""
    db = tmp_path / "warehouse.duckdb"
    t1, t2 = utc(2024, 3, 5, 17), utc(2024, 3, 6, 17)
    write_raw(db, [charge("ch_a", t1), charge("ch_b", t2)], [ok(1, "ch_a", t1), ok(2, "ch_b", t2)])
    dbt(db, tmp_path, "build", "--target", "local")  # first build: every key written
    day1 = window_vars(t1.date(), t1.date() + timedelta(days=1))
    fct = "marts.fct_charge_reconciliation"

    def sql(*statements: str) -> None:
        con = duckdb.connect(str(db))
        try:
            for s in statements:
                con.execute(s)
        finally:
            con.close()

    dup_b = f"insert into {fct} select * from {fct} where charge_id = 'ch_b'"
    undo_b = (
        f"create or replace temp table keep as select distinct * from {fct}",
        f"delete from {fct}",
        f"insert into {fct} select * from keep",
    )
    unique = "unique_fct_charge_reconciliation_recon_key"

    # A nightly over day 1 touches ch_a only: the duplicate of ch_b is not among its keys.
    sql(dup_b)
    out = dbt(db, tmp_path, "build", "--target", "local", run_vars=day1)
    assert f"PASS {unique}" in out, out[-3000:]
    log = (tmp_path / "logs" / "dbt.log").read_text()
    for test in (unique, "unique_fct_reconciliation_history_history_key"):
        assert f"recon: {test} checks the keys this build wrote" in log
    # dbt test alone wrote nothing: the whole table.
    out = dbt(db, tmp_path, "test", "--target", "local", "--select", "fct_charge_reconciliation",
              fail=True)  # fmt: skip
    assert f"FAIL 1 {unique}" in out, out[-3000:]

    # Another test of the model fails (a null day on an untouched row, checked on the whole
    # table): the build is not checked, though its keys are unique.
    sql(*undo_b, f"insert into {fct} select * replace ('ch_null' as charge_id, "
                 f"'charge:ch_null' as recon_key, null as reporting_date) "
                 f"from {fct} where charge_id = 'ch_b'")  # fmt: skip
    out = dbt(db, tmp_path, "build", "--target", "local", run_vars=day1, fail=True)
    assert "FAIL 1 not_null_columns_fct_charge_reconciliation" in out, out[-3000:]
    assert f"PASS {unique}" in out, out[-3000:]

    # That build failed, so the next one checks the whole table: ch_b's duplicate is found.
    sql(f"delete from {fct} where charge_id = 'ch_null'", dup_b)
    out = dbt(db, tmp_path, "build", "--target", "local", run_vars=day1, fail=True)
    assert f"FAIL 1 {unique}" in out, out[-3000:]

    # Repaired, a build passes the whole table, which vouches for the failed builds before it:
    # the next one reads only its keys again.
    sql(*undo_b)
    dbt(db, tmp_path, "build", "--target", "local", run_vars=day1)
    sql(dup_b)
    out = dbt(db, tmp_path, "build", "--target", "local", run_vars=day1)
    assert f"PASS {unique}" in out, out[-3000:]
    # `dbt run` writes the model without its tests, so the build after it checks the whole table.
    dbt(db, tmp_path, "run", "--target", "local", run_vars=day1)
    out = dbt(db, tmp_path, "build", "--target", "local", run_vars=day1, fail=True)
    assert f"FAIL 1 {unique}" in out, out[-3000:]


def test_the_report_view_is_checked_for_its_grain_and_null_keys_in_one_read(
    tmp_path: Path,
) -> None:
    """assert_rpt_daily_reconciliation_well_formed, the one read of the report view that stands
    for its generic tests: a clean build passes; a fact row with no currency (a key of the
    report's grain) and a report holding a row twice each fail it, by the count of bad rows."""
    db = tmp_path / "warehouse.duckdb"
    t1 = utc(2024, 3, 5, 17)
    write_raw(db, [charge("ch_a", t1), charge("ch_b", t1)], [ok(1, "ch_a", t1), ok(2, "ch_b", t1)])
    dbt(db, tmp_path, "build", "--target", "local")
    test = "assert_rpt_daily_reconciliation_well_formed"
    select = ("test", "--target", "local", "--select", test)
    assert f"PASS {test}" in dbt(db, tmp_path, *select)
    fct, rpt = "marts.fct_charge_reconciliation", "marts.rpt_daily_reconciliation"
    con = duckdb.connect(str(db))
    try:
        con.execute(f"insert into {fct} select * replace ('ch_x' as charge_id, "
                    f"'charge:ch_x' as recon_key, null as currency) from {fct} "
                    f"where charge_id = 'ch_b'")  # fmt: skip
    finally:
        con.close()
    out = dbt(db, tmp_path, *select, fail=True)
    assert f"FAIL 1 {test}" in out, out[-3000:]
    con = duckdb.connect(str(db))
    try:
        con.execute(f"delete from {fct} where charge_id = 'ch_x'")
        con.execute(f"create table main.rpt_copy as select * from {rpt}")
        # the view replaced by one that repeats a row: two rows of one key
        con.execute(f"create or replace view {rpt} as select * from main.rpt_copy "
                    f"union all (select * from main.rpt_copy limit 1)")  # fmt: skip
    finally:
        con.close()
    out = dbt(db, tmp_path, *select, fail=True)
    assert f"FAIL 2 {test}" in out, out[-3000:]


@pytest.mark.timeout(300)
def test_running_out_of_duckdb_memory_fails_saying_which_setting_to_raise(tmp_path: Path) -> None:
    """A first build of a long range can exceed DuckDB's memory limit. DuckDB's own message says
    `SET memory_limit`, which nobody running recon can type; the run must fail naming the
    environment variable that reaches dbt, keeping dbt's error, and leave the warehouse as it
    was for the re-run. A 1MB limit makes the first ranking run out deterministically."""
    import shutil

    import dagster as dg

    from recon_assets.defs.dbt_assets import (
        build_dbt_assets,
        dbt_project,
        dbt_resource,
        prepare_manifest,
    )
    from recon_assets.defs.partitions import daily_partitions
    from recon_assets.warehouse.duckdb_loader import out_of_memory_hint

    assert out_of_memory_hint("Database Error: syntax error at or near 'form'", "256MB") is None
    project_dir = tmp_path / "dbt_project"
    shutil.copytree(PROJECT_DIR, project_dir, ignore=shutil.ignore_patterns("target", "logs"))
    db = tmp_path / "warehouse.duckdb"
    write_raw(db, *flatten(cases()))
    prepare_manifest(project_dir, "local")
    assets = build_dbt_assets(
        partitions_def=daily_partitions(date(2023, 11, 1)),
        project_dir=project_dir,
        dbt_env={"RECON_DUCKDB_PATH": str(db), "RECON_DUCKDB_MEMORY_LIMIT": "1MB"},
        work_dir=tmp_path / "dbt-work",
    )
    result = dg.materialize(
        [assets],
        resources={"dbt": dbt_resource(dbt_project("local", project_dir))},
        partition_key="2024-03-08",
        raise_on_error=False,
    )
    assert not result.success
    [failure] = result.get_step_failure_events()
    data = failure.step_failure_data
    assert data.user_failure_data is not None, data.error
    text = data.user_failure_data.description or ""
    assert "DuckDB ran out of its memory limit (1MB)" in text
    assert "RECON_DUCKDB_MEMORY_LIMIT=1GB" in text
    assert "Out of Memory Error" in text  # dbt's own error is kept below the advice
    with duckdb.connect(str(db), read_only=True) as con:
        marts = con.execute(
            "select count(*) from information_schema.tables where table_schema = 'marts'"
        ).fetchone()
    assert marts == (0,)


@pytest.mark.timeout(300)
def test_a_day_total_that_overflows_stops_the_build_naming_the_day(tmp_path: Path) -> None:
    """Every item fits int64, but a day's matched USD total does not once the row the fact table
    keeps for that day (a charge this build does not rebuild) is added to the one it rebuilds.
    The build must fail naming the day's total, and the fact table and report stay as they
    were."""
    db = tmp_path / "warehouse.duckdb"
    t = utc(2024, 3, 5, 12)
    half = 2**62  # each fits int64; two of them (2**63) do not
    charges = [charge("ch_ok", t), charge("ch_big_1", t, amount=half)]
    entries = [ok(1, "ch_ok", t), ok(2, "ch_big_1", t, half)]
    write_raw(db, charges, entries)
    dbt(db, tmp_path, "build", "--target", "local")
    before = read_marts(db)
    later = t + timedelta(minutes=5)
    charges += [{**charge("ch_big_2", later, amount=half), "_loaded_at": LOADED_2}]
    entries += [{**ok(3, "ch_big_2", later, half), "_loaded_at": LOADED_2}]
    write_raw(db, charges, entries)
    out = dbt(db, tmp_path, "build", "--target", "local", fail=True)
    assert "amount does not fit int64 minor units: the matched USD total on 2024-03-05" in out
    after = read_marts(db)
    assert after.fct_full == before.fct_full
    assert after.rpt == before.rpt


@pytest.mark.timeout(300)
def test_not_null_columns_counts_the_rows_with_a_null_in_any_column(tmp_path: Path) -> None:
    """The project's null checks on the two history relations (`unique_key` on the break
    history's table, `not_null_columns` on the status changes' view) fail with the number of
    rows holding a null in the first or in the last column they name (a null key included), and
    pass rows without one. They cannot produce a null from valid
    history, so a view over each is put in its place with hand-made rows added (DuckDB's
    `union all by name` leaves the other columns null)."""
    db = tmp_path / "warehouse.duckdb"
    t = utc(2024, 3, 5, 12)
    write_raw(db, [charge("ch_ok", t)], [ok(1, "ch_ok", t)])
    dbt(db, tmp_path, "build", "--target", "local")
    checks = (
        "--select",
        "rpt_break_history",
        "rpt_status_changes",
        "--exclude",
        "test_name:unique",
    )
    dbt(db, tmp_path, "test", "--target", "local", *checks)

    seen, now = "timestamptz '2024-03-06 00:00:00+00'", "timestamptz '2024-03-07 00:00:00+00'"
    con = duckdb.connect(str(db))
    try:
        for view, rows in {
            "rpt_break_history": [
                f"select null as recon_key, {seen} as first_seen, 1 as days_open",  # first column
                f"select 'k_last' as recon_key, {seen} as first_seen, null as days_open",  # last
                f"select 'k_fine' as recon_key, {seen} as first_seen, 2 as days_open",
            ],
            "rpt_status_changes": [
                "select 'k_a' as recon_key, null as changed_at",  # last column
                f"select 'k_b' as recon_key, {now} as changed_at",
            ],
        }.items():
            (kind,) = con.execute(
                "select table_type from information_schema.tables "
                "where table_schema = 'marts' and table_name = ?",
                [view],
            ).fetchone()
            con.execute(
                f"alter {'view' if kind == 'VIEW' else 'table'} marts.{view} rename to {view}_built"
            )
            added = " union all by name ".join(f"({r})" for r in rows)
            con.execute(
                f"create view marts.{view} as "
                f"select * from marts.{view}_built union all by name {added}"
            )
    finally:
        con.close()
    out = dbt(db, tmp_path, "test", "--target", "local", *checks, fail=True)
    assert "FAIL 2 unique_key_rpt_break_history_recon_key__first_seen__days_open" in out, out[
        -3000:
    ]
    assert "FAIL 1 not_null_columns_rpt_status_changes" in out, out[-3000:]


@pytest.mark.timeout(300)
def test_the_prod_manifest_is_prepared_without_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image build prepares the prod manifest with no Snowflake credentials: only the
    database, which every table's name holds. The placeholders for the connection settings
    never reach the manifest (nor this process's environment)."""
    import shutil

    from recon_assets.config import ConfigError
    from recon_assets.defs.dbt_assets import PARSE_ONLY_SNOWFLAKE_VARS, prepare_manifest

    project_dir = tmp_path / "dbt_project"
    shutil.copytree(PROJECT_DIR, project_dir, ignore=shutil.ignore_patterns("target", "logs"))
    for name in (*PARSE_ONLY_SNOWFLAKE_VARS, "SNOWFLAKE_DATABASE", "SNOWFLAKE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="SNOWFLAKE_DATABASE"):
        prepare_manifest(project_dir, "prod")
    monkeypatch.setenv("SNOWFLAKE_DATABASE", "FINANCE_DB")
    text = prepare_manifest(project_dir, "prod").read_text()
    manifest = json.loads(text)
    fct = manifest["nodes"]["model.recon.fct_charge_reconciliation"]
    assert (fct["database"], fct["schema"]) == ("FINANCE_DB", "marts")
    assert manifest["metadata"]["adapter_type"] == "snowflake"
    assert "unset-at-parse" not in text
    assert not any(os.environ.get(v) for v in PARSE_ONLY_SNOWFLAKE_VARS)


@pytest.mark.timeout(300)
def test_parse_prod_target_without_a_connection(tmp_path: Path) -> None:
    """`dbt parse --target prod` needs only the env vars the profile reads, no Snowflake."""
    env = {
        "SNOWFLAKE_ACCOUNT": "dummy-account",
        "SNOWFLAKE_USER": "dummy",
        "SNOWFLAKE_PASSWORD": "dummy",
        "SNOWFLAKE_ROLE": "dummy",
        "SNOWFLAKE_WAREHOUSE": "dummy",
        "SNOWFLAKE_DATABASE": "dummy",
    }
    run_dbt(tmp_path, "parse", "--target", "prod", env=env)
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    sources = {v["name"]: v for v in manifest["sources"].values()}
    assert sources["stripe_charges"]["meta"]["dagster"]["asset_key"] == ["raw", "stripe_charges"]
    assert sources["ledger_entries"]["meta"]["dagster"]["asset_key"] == ["raw", "ledger_entries"]
    assert sources["load_log"]["meta"]["dagster"]["asset_key"] == ["raw", "load_log"]
    assert sources["stripe_charge_lookups"]["meta"]["dagster"]["asset_key"] == [
        "raw",
        "stripe_charge_lookups",
    ]
    marts = {
        n["name"]: n["config"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["config"]["schema"] == "marts"
    }
    for name in (
        "fct_charge_reconciliation",
        "fct_refund_reconciliation",
        "fct_fee_reconciliation",
        "fct_payout_reconciliation",
        "fct_dispute_reconciliation",
    ):
        fct = marts.pop(name)
        assert fct["materialized"] == "incremental"
        assert fct["incremental_strategy"] == "delete+insert"
        assert fct["unique_key"] == "recon_key"
        assert fct["tmp_relation_type"] == "transient"
    assert sources["stripe_refunds"]["meta"]["dagster"]["asset_key"] == ["raw", "stripe_refunds"]
    history = marts.pop("fct_reconciliation_history")
    assert history["materialized"] == "incremental"
    assert history["unique_key"] == "history_key"
    assert history["full_refresh"] is False  # a --full-refresh never drops the history
    # the report views read the tables: they change with them; the break history is a table
    # built once a build (each reader evaluated the view again)
    marts_keys = {
        k: v["unique_key"] for k, v in marts.items() if v["materialized"] == "incremental"
    }
    assert {k: v["materialized"] for k, v in marts.items()} == {
        "rpt_daily_reconciliation": "view",
        "rpt_reconciliation_days": "view",
        "rpt_status_changes": "view",
        "rpt_break_history": "table",
        "rpt_balance_tieout": "incremental",  # by day (int_recon__tieout_days)
        "rpt_payout_composition": "incremental",  # by payout
    }
    assert marts_keys == {"rpt_balance_tieout": "reporting_date",
                          "rpt_payout_composition": "payout_id"}  # fmt: skip


@pytest.mark.timeout(300)
def test_dagster_dbt_assets_build_a_partition_range(tmp_path: Path) -> None:
    """The Dagster wiring: keys, upstream raw assets, group/owners/kinds, tests as checks, and one
    single-run materialization of a partition range re-stating exactly those days."""
    import shutil

    import dagster as dg

    from recon_assets.defs.dbt_assets import (
        build_dbt_assets,
        dbt_project,
        dbt_resource,
        prepare_manifest,
    )
    from recon_assets.defs.partitions import daily_partitions

    project_dir = tmp_path / "dbt_project"  # a copy: parse artifacts stay out of the repo
    shutil.copytree(PROJECT_DIR, project_dir, ignore=shutil.ignore_patterns("target", "logs"))
    db = tmp_path / "warehouse.duckdb"
    cs = cases()
    write_raw(db, *flatten(cs))

    manifest = prepare_manifest(project_dir, "local")
    assert manifest == project_dir / "target" / "local" / "manifest.json"
    work = tmp_path / "dbt-work"
    runs = work / "runs"
    for i in range(4):  # leftovers of earlier (or killed) runs, oldest first
        (runs / f"old-{i}").mkdir(parents=True)
        os.utime(runs / f"old-{i}", (1_700_000_000 + i, 1_700_000_000 + i))
    assets = build_dbt_assets(
        partitions_def=daily_partitions(date(2023, 11, 1)),
        target="local",
        project_dir=project_dir,
        dbt_env={"RECON_DUCKDB_PATH": str(db)},
        work_dir=work,
        keep_runs=3,
    )
    specs = {k.to_user_string(): s for k, s in assets.specs_by_key.items()}
    assert set(specs) == {
        "staging/stg_stripe__charges",
        "staging/stg_stripe__refunds",
        "staging/stg_stripe__balance_transactions",
        "staging/stg_stripe__payouts",
        "staging/stg_stripe__payout_transactions",
        "staging/stg_stripe__disputes",
        "staging/stg_ledger__entries",
        "staging/stg_recon__load_log",
        "staging/stg_stripe__charge_lookups",
        "staging/stg_ledger__dropped_refs",
        "intermediate/int_stripe__charges_in_build",
        "intermediate/int_stripe__refunds_in_build",
        "intermediate/int_stripe__balance_transactions_in_build",
        "intermediate/int_stripe__payouts_in_build",
        "intermediate/int_ledger__entry_ids_in_build",
        "intermediate/int_ledger__entries_in_build",
        "intermediate/int_ledger__reversals_in_build",
        "intermediate/int_ledger__net_entries_in_build",
        "intermediate/int_ledger__entries_by_item",
        "intermediate/int_recon__ledger_coverage",
        "intermediate/int_recon__charges",
        "intermediate/int_recon__refunds",
        "intermediate/int_recon__refund_items",
        "intermediate/int_recon__fees",
        "intermediate/int_recon__fee_items",
        "intermediate/int_recon__payouts",
        "intermediate/int_recon__payout_items",
        "intermediate/int_recon__disputes",
        "intermediate/int_recon__dispute_items",
        "intermediate/int_recon__balance_moves",
        "intermediate/int_recon__break_versions",
        "intermediate/int_recon__tieout_days_before",
        "intermediate/int_recon__tieout_days",
        "intermediate/int_recon__orphan_ledger_entries",
        "intermediate/int_recon__items",
        "intermediate/int_recon__touched_charges",
        "marts/fct_charge_reconciliation",
        "marts/fct_refund_reconciliation",
        "marts/fct_fee_reconciliation",
        "marts/rpt_balance_tieout",
        "marts/fct_payout_reconciliation",
        "marts/fct_dispute_reconciliation",
        "marts/rpt_payout_composition",
        "marts/rpt_daily_reconciliation",
        "marts/rpt_reconciliation_days",
        "marts/fct_reconciliation_history",
        "marts/rpt_status_changes",
        "marts/rpt_break_history",
    }
    for spec in specs.values():
        assert spec.group_name == "reconciliation"
        assert spec.owners == ["team:analytics-engineering", "team:finance-ops"]
        assert spec.kinds == {"dbt", "duckdb"}
    deps = {d.asset_key.to_user_string() for d in specs["staging/stg_stripe__charges"].deps}
    assert deps == {"raw/stripe_charges"}
    deps = {d.asset_key.to_user_string() for d in specs["staging/stg_ledger__entries"].deps}
    assert deps == {"raw/ledger_entries"}
    checks = {(c.asset_key.to_user_string(), c.name) for c in assets.check_specs}
    assert any(
        k == "marts/fct_charge_reconciliation" and n.startswith("accepted_values_")
        for k, n in checks
    )
    assert (
        "marts/fct_charge_reconciliation",
        "unique_fct_charge_reconciliation_recon_key",
    ) in checks

    def build(first: date, end: date) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [assets],
            resources={"dbt": dbt_resource(dbt_project("local", project_dir))},
            tags={  # partition keys are inclusive in Dagster
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": end.isoformat(),
            },
        )

    earlier = build(date(2024, 3, 8), date(2024, 3, 8))
    assert earlier.success
    parsed = work / "target-local" / "partial_parse.msgpack"
    parsed_at = parsed.stat().st_mtime_ns
    result = build(date(2024, 3, 9), date(2024, 3, 11))
    assert result.success
    # the window and the run id reached dbt without --vars and without this process's
    # environment: the second run, on other days, reused the first one's parse (dbt writes
    # partial_parse.msgpack again after any parse, partial or full, and not when it skips)
    assert "RECON_DBT_RUN_VARS" not in os.environ and "RECON_DUCKDB_PATH" not in os.environ
    assert parsed.stat().st_mtime_ns == parsed_at
    # the per-run log ops read: each model's result as text, not dbt's SQL at debug
    run_log = (runs / result.run_id / "dbt.log").read_text()
    assert "OK created sql incremental model marts.fct_charge_reconciliation" in run_log
    assert not run_log.lstrip().startswith("{") and "SQLQuery" not in run_log
    assert "\x1b[" not in run_log  # no terminal colours in a file
    assert "select" not in run_log.lower()
    with duckdb.connect(str(db), read_only=True) as con:
        changed_by = set(
            con.sql(
                "select distinct reporting_date, changed_by_run"
                " from marts.fct_reconciliation_history"
            ).fetchall()
        )
    assert (date(2024, 3, 8), earlier.run_id) in changed_by  # the first build writes every day
    # dbt's artifacts went to one stable target folder in the work dir and the logs to one
    # folder per run, none into the code folder, and only the newest runs are kept
    assert (work / "target-local" / "run_results.json").exists()
    assert (work / "target-local" / "partial_parse.msgpack").exists()
    # one model at a time: DuckDB's memory limit is one budget for every query in the database,
    # and two whole-history rankings side by side ran out of it in a first backfill
    run_results = json.loads((work / "target-local" / "run_results.json").read_text())
    nodes = [r for r in run_results["results"] if not r["unique_id"].startswith("operation.")]
    assert {r["thread_id"] for r in nodes} == {"Thread-1 (worker)"}  # hooks run on "main"
    assert sorted(p.name for p in runs.iterdir()) == sorted(
        [earlier.run_id, result.run_id, "old-3"]
    )
    assert not list((project_dir / "target").glob("recon_dbt_models-*"))
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    materialized = {
        (e.asset_key.to_user_string(), e.partition)
        for e in result.get_asset_materialization_events()
        if e.asset_key is not None
    }
    assert ("marts/fct_charge_reconciliation", "2024-03-10") in materialized
    assert len(materialized) == len(specs) * 3

    # The window's days match (the first build of a new table covered every day).
    got = read_marts(db)
    window = {date(2024, 3, 9) + timedelta(i) for i in range(3)}
    want = expected_fct(cs)
    assert [r for r in got.fct if r[0] in window] == [r for r in want if r[0] in window]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("dbt_vars", "message"),
    [
        ({"min_reporting_date": "2024-03-10"}, "go together"),
        (
            {"min_reporting_date": "2024-03-10", "max_reporting_date_exclusive": "2024-03-10"},
            "must be after",
        ),
        ({"as_of": "2024-03-13T04:00:00"}, "explicit offset"),
    ],
)
def test_bad_vars_fail_the_build_loudly(
    tmp_path: Path, dbt_vars: dict[str, str], message: str
) -> None:
    """A half-given or empty window, or a zone-less as_of, must stop dbt, not silently widen,
    shrink or shift the re-stated days. (Compiling the two models needs no warehouse data.)"""
    db = tmp_path / "warehouse.duckdb"
    write_raw(db, [], [])
    out = run_dbt(
        tmp_path,
        "compile",
        "--target",
        "local",
        "--select",
        "int_recon__charges int_recon__touched_charges fct_charge_reconciliation",
        "--vars",
        json.dumps(dbt_vars),
        env={"RECON_DUCKDB_PATH": str(db)},
        fail=True,
    )
    assert message in out


LEDGER_VERSION_ORDER = ["_synced_at", "updated_at", "_loaded_at"]
"""The order `ledger_entries_latest` ranks an entry's versions by (macros/latest_versions.sql)."""


@pytest.fixture(scope="module")
def latest_versions_sql(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """`latest_versions` compiled by dbt for the two ways it is written: DuckDB's (arg_max of
    the row id) and the default, Snowflake's (a window), both run here on DuckDB."""
    work = tmp_path_factory.mktemp("latest-versions")
    db = work / "versions.duckdb"
    out: dict[str, str] = {}
    for name, macro in [
        ("duckdb", "recon.latest_versions"),
        ("default", "recon.default__latest_versions"),
    ]:
        for where in ["", LATEST_WHERE]:
            inline = (
                f"select id, amount_minor from {{{{ {macro}(source('raw', 'ledger_entries'), "
                f"'id', {LEDGER_VERSION_ORDER!r}, '', {where!r}) }}}}"
            )
            key = f"{name}, latest_where" if where else name
            out[key] = dbt(db, work, "compile", "--quiet", "--inline", inline)
    return out


LATEST_WHERE = "updated_at is null or _loaded_at is null"
"""A `latest_where` on the order columns, so every one of a key's exactly tied latest versions
meets it or none does, and the expected rows are one reading of the contract."""


_instants = st.sampled_from([None, *(SYNCED + timedelta(hours=h) for h in range(3))])


@settings(max_examples=120, deadline=None)
@given(
    versions=st.lists(
        st.lists(st.tuples(_instants, _instants, _instants), min_size=1, max_size=4),
        min_size=1,
        max_size=6,
    )
)
def test_the_latest_version_is_the_greatest_in_order_a_null_the_lowest(
    latest_versions_sql: dict[str, str],
    versions: list[list[tuple[datetime | None, datetime | None, datetime | None]]],
) -> None:
    """Each id keeps exactly one row, one of those whose order columns are greatest (compared in
    order, a NULL lower than any value: a window's `desc nulls last`). Few distinct instants,
    so ties on the first columns, and exact ties, are common. With a `latest_where`, an id
    appears only when its latest version meets it: an older version that meets it must not
    stand in. Run on both implementations: they must agree with this reading of the contract,
    not merely with each other."""
    con = duckdb.connect()
    try:
        con.execute("attach ':memory:' as versions")
        con.execute("create schema versions.raw")
        con.execute(
            "create table versions.raw.ledger_entries (id bigint, amount_minor bigint, "
            + ", ".join(f"{c} timestamptz" for c in LEDGER_VERSION_ORDER)
            + ")"
        )
        best: dict[int, set[int]] = {}
        kept: set[int] = set()  # the ids whose latest version meets LATEST_WHERE
        serial = 0
        for entry_id, entry_versions in enumerate(versions):
            ranked: dict[tuple, set[int]] = defaultdict(set)
            for order in entry_versions:
                serial += 1
                con.execute(
                    "insert into versions.raw.ledger_entries values (?, ?, ?, ?, ?)",
                    [entry_id, serial, *order],
                )
                ranked[tuple((x is not None, x) for x in order)].add(serial)
            top = max(ranked)
            best[entry_id] = ranked[top]
            _synced, (updated_set, _), (loaded_set, _) = top
            if not updated_set or not loaded_set:
                kept.add(entry_id)
        for name, sql in latest_versions_sql.items():
            picked = con.execute(sql).fetchall()
            expected = kept if name.endswith("latest_where") else set(best)
            assert sorted(i for i, _ in picked) == sorted(expected), name
            for entry_id, row in picked:
                assert row in best[entry_id], (name, entry_id, row, best[entry_id])
    finally:
        con.close()


@pytest.mark.timeout(300)
def test_refund_rules_each_status_then_a_refund_that_fails_later(tmp_path: Path) -> None:
    """Every row of the refunds' rules table on DuckDB, with the charges' machinery: a refund is
    an item on the US-Eastern day it was created, its ledger entry names it and carries minus
    its amount; orphan refund entries go by what the look-up said; the day is final only when
    its refunds are. Then a refund fails a week later and a correction reverses a duplicate:
    each reaches its own day through the key-based rebuild of a run that never covers it."""
    db, work = tmp_path / "warehouse.duckdb", tmp_path / "work"
    t = utc(2024, 3, 5, 15)  # 10:00 EST, Mar 5
    day = date(2024, 3, 5)

    def booked(eid: int, rid: str, amount: int = -500, *, hours: float = 2,
               currency: str = "USD") -> dict:  # fmt: skip
        return entry(eid, rid, t + timedelta(hours=hours), amount, currency, entry_type="refund")

    refunds = [
        refund("re_pending", t, status="pending"),
        refund("re_action", t, status="requires_action"),
        refund("re_failed", t, status="failed"),
        refund("re_failed_booked", t, status="failed"),
        refund("re_canceled_fixed", t, status="canceled"),
        refund("re_missing", t),
        refund("re_recent", utc(2024, 3, 11, 15)),
        refund("re_dup", t),
        refund("re_currency", t),
        refund("re_sign", t),
        refund("re_late", t),
        refund("re_ok", t),
        refund("re_yen", t, amount=1500, currency="jpy"),
    ]
    dup_extra = booked(806, "re_dup", hours=3)
    canceled = booked(803, "re_canceled_fixed")
    entries = [
        booked(801, "re_pending"),
        booked(802, "re_failed_booked"),
        canceled,
        entry(804, None, t + timedelta(days=1), 500, entry_type="reversal", reversal_of=803),
        booked(805, "re_dup"),
        dup_extra,
        booked(807, "re_currency", currency="EUR"),
        booked(808, "re_sign", 500),  # booked as money in: a wrong sign is an amount mismatch
        booked(809, "re_late", hours=72 + 1),
        booked(810, "re_ok"),
        booked(811, "re_yen", -1500, currency="JPY"),
        entry(812, "re_ghost", utc(2024, 3, 6, 12), -900, entry_type="refund"),
        entry(813, "re_unknown", utc(2024, 3, 7, 12), -300, entry_type="refund"),
    ]
    lookups = [("re_ghost", "not_found")]
    write_raw(db, [], entries, refunds=refunds, lookups=lookups)
    dbt(db, work, "build", "--target", "local")

    def refund_rows() -> dict[str, tuple]:
        con = duckdb.connect(str(db), read_only=True)
        try:
            rows = con.execute(
                "select refund_id, reporting_date, recon_status, currency, stripe_amount, "
                "ledger_amount, amount_diff, ledger_entry_ids from marts.fct_refund_reconciliation"
            ).fetchall()
            return {r[0]: r[1:] for r in rows}
        finally:
            con.close()

    got = refund_rows()
    assert got == {
        "re_pending": (day, "pending_in_stripe", "USD", 500, -500, 0, "801"),
        "re_action": (day, "pending_in_stripe", "USD", 500, None, 500, None),
        "re_failed": (day, "not_booked", "USD", 500, None, 500, None),
        "re_failed_booked": (day, "unexpected_ledger_entry", "USD", 500, -500, 0, "802"),
        "re_canceled_fixed": (day, "not_booked", "USD", 500, None, 500, "803,804"),
        "re_missing": (day, "missing_in_ledger", "USD", 500, None, 500, None),
        "re_recent": (date(2024, 3, 11), "pending_in_ledger", "USD", 500, None, 500, None),
        "re_dup": (day, "duplicate_in_ledger", "USD", 500, -1000, -500, "805,806"),
        "re_currency": (day, "currency_mismatch", "USD", 500, -500, 0, "807"),
        "re_sign": (day, "amount_mismatch", "USD", 500, 500, 1000, "808"),
        "re_late": (day, "late_posting", "USD", 500, -500, 0, "809"),
        "re_ok": (day, "matched", "USD", 500, -500, 0, "810"),
        "re_yen": (day, "matched", "JPY", 1500, -1500, 0, "811"),  # never divided by 100
        "re_ghost": (date(2024, 3, 6), "missing_in_stripe", "USD", None, -900, -900, "812"),
        "re_unknown": (date(2024, 3, 7), "pending_stripe_lookup", "USD", None, -300, -300, "813"),
    }
    con = duckdb.connect(str(db), read_only=True)
    try:
        rpt = con.execute(
            "select recon_status, item_count, stripe_amount, ledger_amount, is_break "
            "from marts.rpt_daily_reconciliation where reporting_date = ? and item_type = 'refund' "
            "and currency = 'USD'",
            [day],
        ).fetchall()
    finally:
        con.close()
    assert ("duplicate_in_ledger", 1, 500, -1000, True) in rpt
    assert ("pending_in_stripe", 2, 1000, -500, False) in rpt
    # a day with a refund still pending in Stripe is not final, even with no charge at all
    status, reason = read_days(db)[day]
    assert status == "preliminary" and "2 pending in Stripe" in reason
    assert read_days(db)[date(2024, 3, 7)][0] == "preliminary"  # awaiting a look-up

    # -- later: re_ok fails a week after it succeeded (re-pulled by id), ops reverse re_dup's
    # extra entry; the run covers Mar 12 only, and both reach Mar 5
    late = datetime(2024, 3, 13, 18, tzinfo=UTC)
    refunds2 = [*refunds,
                {**refund("re_ok", t, status="failed", synced=RESYNCED), "_loaded_at": late}]  # fmt: skip
    entries2 = [*entries, {**entry(814, None, utc(2024, 3, 12, 14), 500, entry_type="reversal",
                                   reversal_of=806), "_loaded_at": late}]  # fmt: skip
    log = [(ds, d, LOADED_1) for ds in STRIPE_DAYS for d in loaded_days()] + [
        ("ledger_entries", d, LOADED_1) for d in loaded_days() if d != GAP_DAY
    ]
    write_raw(db, [], entries2, refunds=refunds2, lookups=lookups,
              load_log=[*log, ("ledger_entries", date(2024, 3, 12), late)])  # fmt: skip
    dbt(db, work, "build", "--target", "local", "--vars",
        window_vars(date(2024, 3, 12), date(2024, 3, 13)))  # fmt: skip
    after = refund_rows()
    assert after["re_ok"] == (day, "unexpected_ledger_entry", "USD", 500, -500, 0, "810")
    assert after["re_dup"] == (day, "matched", "USD", 500, -500, 0, "805,806,814")
    assert {k: v for k, v in after.items() if k not in ("re_ok", "re_dup")} == {
        k: v for k, v in got.items() if k not in ("re_ok", "re_dup")
    }
    breaks = read_break_history(db)
    assert breaks["refund:re_dup"][:3] == (False, "corrected_in_ledger", "matched")
    assert breaks["refund:re_ok"][:3] == (True, None, "unexpected_ledger_entry")


def test_fee_rules_and_the_balance_tieout_name_every_cent(tmp_path: Path) -> None:
    """Every fee rule on DuckDB (an item per object Stripe took a fee on, on its transaction's
    day, the ledger's `fee` entry naming the object with minus the fee), then the day's balance
    tie-out: on a true ledger every cent of the difference is explained by open items and
    timing, and unexplained is 0; money no item accounts for (a transaction of no item, a
    matched charge whose transaction says another amount) is unexplained, keeps the day
    preliminary and names itself."""
    db, work = tmp_path / "warehouse.duckdb", tmp_path / "work"
    t = utc(2024, 3, 5, 15)  # 10:00 EST, Mar 5
    day = date(2024, 3, 5)
    names = ["ok", "missing", "dup", "currency", "wrong", "late", "yen", "awaited", "nofee"]
    charges = [charge(f"ch_{n}", t, currency="jpy" if n == "yen" else "usd") for n in names]
    txns = [
        txn(f"txn_ch_{n}", f"ch_{n}", t, 1000, 59, currency="jpy" if n == "yen" else "usd")
        for n in names
        if n not in ("awaited", "nofee")
    ] + [txn("txn_ch_nofee", "ch_nofee", t, 1000, 0)]

    def fee(eid: int, cid: str, amount: int = -59, *, hours: float = 2, cur: str = "USD") -> dict:
        return entry(eid, cid, t + timedelta(hours=hours), amount, cur, entry_type="fee")

    entries = [
        ok(900 + i, f"ch_{n}", t, currency="JPY" if n == "yen" else "USD")
        for i, n in enumerate(names)
    ] + [
        fee(1, "ch_ok"),
        fee(2, "ch_dup"),
        fee(3, "ch_dup", hours=3),
        fee(4, "ch_currency", cur="EUR"),
        fee(5, "ch_wrong", -89),  # an old rate card: the fixed part twice
        fee(6, "ch_late", hours=72 + 1),
        fee(7, "ch_yen", cur="JPY"),
        fee(8, "ch_awaited"),  # its charge's transaction is on a day not loaded yet
        fee(9, "ch_nofee"),  # Stripe took no fee on it
        fee(10, "ch_gone", -40),  # names a charge Stripe answered 404 for
    ]
    write_raw(db, charges, entries, txns=txns, lookups=[("ch_gone", "not_found")])
    dbt(db, work, "build", "--target", "local")

    con = duckdb.connect(str(db), read_only=True)
    try:
        fees = {
            r[0]: r[1:]
            for r in con.execute(
                "select coalesce(balance_transaction_id, source_id), reporting_date, recon_status,"
                " stripe_amount, ledger_amount, amount_diff, ledger_entry_ids "
                "from marts.fct_fee_reconciliation"
            ).fetchall()
        }
        tieout = con.execute(
            "select currency, stripe_net, ledger_net, difference, explained_open, "
            "explained_timing, unexplained from marts.rpt_balance_tieout where reporting_date = ?",
            [day],
        ).fetchall()
        days = dict(con.execute(
            "select reporting_date, day_status_reason from marts.rpt_reconciliation_days"
        ).fetchall())  # fmt: skip
    finally:
        con.close()
    assert fees == {
        "txn_ch_ok": (day, "matched", 59, -59, 0, "1"),
        "txn_ch_missing": (day, "missing_in_ledger", 59, None, 59, None),
        "txn_ch_dup": (day, "duplicate_in_ledger", 59, -118, -59, "2,3"),
        "txn_ch_currency": (day, "currency_mismatch", 59, -59, 0, "4"),
        "txn_ch_wrong": (day, "amount_mismatch", 59, -89, -30, "5"),
        "txn_ch_late": (day, "late_posting", 59, -59, 0, "6"),
        "txn_ch_yen": (day, "matched", 59, -59, 0, "7"),  # yen: never divided by 100
        "ch_awaited": (day, "pending_stripe_lookup", None, -59, -59, "8"),
        "ch_nofee": (day, "unexpected_ledger_entry", None, -59, -59, "9"),
        "ch_gone": (day, "missing_in_stripe", None, -40, -40, "10"),
    }
    # the tie-out: Stripe moved 8 charges' net (each 1000 - fee) in USD and one in JPY; the
    # ledger booked the charges and fees it booked; the open fees, the awaited charge (its
    # money in a transaction not loaded) and the orphans explain all of it
    usd = {r[0]: r[1:] for r in tieout}["USD"]
    stripe_net = 6 * (1000 - 59) + 1000
    # 8 USD bookings; USD fees 1, 2, 3, 5, 8, 9, 10 posted that day (6 is late: Mar 8; 4 is EUR)
    ledger_net = 8 * 1000 - 59 * 5 - 89 - 40
    assert usd[0] == stripe_net and usd[1] == ledger_net
    assert usd[2] == ledger_net - stripe_net and usd[2] == usd[3] + usd[4] + usd[5]
    assert usd[5] == 0 and "does not tie out" not in (days[day] or "")

    # money of no item, and a matched charge whose transaction says another amount: both are
    # unexplained, named in the day's status, and the rest stays explained
    txns2 = [*txns, txn("txn_adjust", "adj_1", t, -250, type_="adjustment")]
    txns2 = [x if x["id"] != "txn_ch_ok" else txn("txn_ch_ok", "ch_ok", t, 990, 59) for x in txns2]
    write_raw(db, charges, entries, txns=txns2, lookups=[("ch_gone", "not_found")])
    dbt(db, work, "build", "--target", "local", "--full-refresh")
    con = duckdb.connect(str(db), read_only=True)
    try:
        (unexplained,) = con.execute(
            "select unexplained from marts.rpt_balance_tieout "
            "where reporting_date = ? and currency = 'USD'", [day]
        ).fetchone()  # fmt: skip
        (reason,) = con.execute(
            "select day_status_reason from marts.rpt_reconciliation_days where reporting_date = ?",
            [day],
        ).fetchone()  # fmt: skip
    finally:
        con.close()
    assert unexplained == 250 + 10  # ledger - Stripe: the adjustment took 250, ch_ok 10 less
    assert "the Stripe balance does not tie out (unexplained in 1 currencies)" in reason


def payout(pid: str, arrival: date, *, status: str = "paid", amount: int = 5000,
           currency: str = "usd") -> dict:  # fmt: skip
    """A payout created at 02:00 UTC the business day before it arrives (00:00 UTC of the
    bank's date), as Stripe's automatic ones are."""
    arrives = datetime(arrival.year, arrival.month, arrival.day, tzinfo=UTC)
    return {
        "id": pid, "created": arrives - timedelta(hours=22), "arrival_date": arrives,
        "status": status, "amount": amount, "currency": currency, "automatic": True,
        "method": "standard", "balance_transaction": f"txn_{pid}",
        "failure_balance_transaction": f"txn_f_{pid}" if status == "failed" else None,
        "failure_code": "account_closed" if status == "failed" else None,
        "failure_message": None, "description": "STRIPE PAYOUT", "metadata": None,
        "_partition_date": arrival, "_synced_at": SYNCED, "_run_id": "run_test",
    }  # fmt: skip


@pytest.mark.timeout(300)
def test_payout_rules_composition_and_the_tieout(tmp_path: Path) -> None:
    """Every payout rule on DuckDB: an item on its arrival date (the UTC date Stripe sends,
    never the US-Eastern evening before), the ledger's `payout` entry naming it with minus its
    amount; in transit is pending in Stripe, failed is not booked (or an unexpected entry when
    the booking was not reversed). What each paid payout carried must sum to its amount, or its
    day is not final; the payouts' own transactions are items of the tie-out, which stays
    fully explained."""
    db, work = tmp_path / "warehouse.duckdb", tmp_path / "work"
    day = date(2024, 3, 5)  # arrives 00:00 UTC: 19:00 EST on Mar 4
    at = datetime(2024, 3, 5, 15, tzinfo=UTC)  # booked 10:00 EST on the arrival date
    names = ["ok", "missing", "wrong", "sign", "dup", "late", "failed", "kept"]
    payouts = [payout(f"po_{n}", day, status="failed" if n in ("failed", "kept") else "paid")
               for n in names]  # fmt: skip
    payouts += [
        payout("po_yen", day, amount=123_456, currency="jpy"),
        payout("po_transit", date(2024, 3, 12), status="in_transit"),
    ]

    def booked(eid: int, pid: str, amount: int = -5000, *, hours: float = 0,
               cur: str = "USD") -> dict:  # fmt: skip
        return entry(eid, pid, at + timedelta(hours=hours), amount, cur, entry_type="payout")

    failed, kept = booked(6, "po_failed"), booked(7, "po_kept")
    entries = [
        booked(1, "po_ok"),
        booked(2, "po_wrong", -4999),
        booked(3, "po_sign", 5000),  # money into the balance: the wrong sign
        booked(4, "po_dup"),
        booked(5, "po_dup", hours=1),
        booked(8, "po_late", hours=3 * 24 + 1),
        failed,
        reversal(9, failed, at + timedelta(days=1)),  # the bank returned it: reversed
        kept,  # returned, and the booking stands
        booked(10, "po_yen", -123_456, cur="JPY"),
        booked(11, "po_transit"),  # booked before it arrived: still Stripe's to decide
        booked(12, "po_ghost", -700),  # a payout Stripe answered 404 for
    ]
    txns, carried = [], []
    for p in payouts:
        own = txn(p["balance_transaction"], p["id"], p["created"], -p["amount"], type_="payout",
                  currency=p["currency"])  # fmt: skip
        txns.append(own)
        if p["id"] == "po_failed" or p["id"] == "po_kept":
            txns.append(txn(p["failure_balance_transaction"], p["id"], at - timedelta(hours=8),
                            p["amount"], type_="payout_failure", currency=p["currency"]))  # fmt: skip
        if p["status"] != "paid":
            continue
        # what it carried: a charge and a refund whose net is its amount, but po_missing's
        # listing came back short (our pull of it is incomplete)
        gross = p["amount"] + 800 + 30
        rows = [
            txn(f"txn_c_{p['id']}", f"ch_{p['id']}", at - timedelta(days=3), gross, 30,
                currency=p["currency"]),
            txn(f"txn_r_{p['id']}", f"re_{p['id']}", at - timedelta(days=3), -800, type_="refund",
                currency=p["currency"]),
            own,
        ]  # fmt: skip
        if p["id"] == "po_missing":
            rows = rows[:1] + rows[2:]
        carried += [{**r, "payout": p["id"], "_partition_date": day} for r in rows]
    write_raw(db, [], entries, txns=txns, payouts=payouts, carried=carried,
              lookups=[("po_ghost", "not_found")])  # fmt: skip
    dbt(db, work, "build", "--target", "local")

    con = duckdb.connect(str(db), read_only=True)
    try:
        got = {
            r[0]: r[1:]
            for r in con.execute(
                "select payout_id, reporting_date, recon_status, stripe_amount, ledger_amount, "
                "amount_diff, ledger_entry_ids from marts.fct_payout_reconciliation"
            ).fetchall()
        }
        composition = dict(con.execute(
            "select payout_id, (is_complete, carried_net, charges, refunds, fees_amount) "
            "from marts.rpt_payout_composition"
        ).fetchall())  # fmt: skip
        tieout = con.execute(
            "select reporting_date, currency, stripe_net, difference, explained_open, "
            "explained_timing, unexplained from marts.rpt_balance_tieout"
        ).fetchall()
        days = dict(con.execute(
            "select reporting_date, day_status_reason from marts.rpt_reconciliation_days"
        ).fetchall())  # fmt: skip
        daily = con.execute(
            "select recon_status, item_count from marts.rpt_daily_reconciliation "
            "where item_type = 'payout' and reporting_date = ? and currency = 'USD'", [day]
        ).fetchall()  # fmt: skip
    finally:
        con.close()
    d12 = date(2024, 3, 12)
    assert got == {
        "po_ok": (day, "matched", 5000, -5000, 0, "1"),
        "po_missing": (day, "missing_in_ledger", 5000, None, 5000, None),
        "po_wrong": (day, "amount_mismatch", 5000, -4999, 1, "2"),
        "po_sign": (day, "amount_mismatch", 5000, 5000, 10000, "3"),
        "po_dup": (day, "duplicate_in_ledger", 5000, -10000, -5000, "4,5"),
        "po_late": (day, "late_posting", 5000, -5000, 0, "8"),
        "po_failed": (day, "not_booked", 5000, None, 5000, "6,9"),
        "po_kept": (day, "unexpected_ledger_entry", 5000, -5000, 0, "7"),
        "po_yen": (day, "matched", 123_456, -123_456, 0, "10"),  # never divided by 100
        "po_transit": (d12, "pending_in_stripe", 5000, -5000, 0, "11"),
        "po_ghost": (et_day(at), "missing_in_stripe", None, -700, -700, "12"),
    }
    assert dict(daily)["amount_mismatch"] == 2 and dict(daily)["matched"] == 1
    assert composition["po_ok"] == (True, 5000, 1, 1, 30)
    assert composition["po_yen"] == (True, 123_456, 1, 1, 30)
    assert composition["po_missing"] == (False, 5000 + 830 - 30, 1, 0, 30)
    assert composition["po_failed"][0] and composition["po_transit"][0]  # nothing to check
    assert "1 paid payouts whose transactions do not sum to their amount" in days[day]
    # each payout's own transaction moved the balance on its US-Eastern day (Mar 3, 21:00):
    # the tie-out takes it as the payout item's money, and every cent is explained
    assert tieout and all(r[6] == 0 for r in tieout), tieout
    usd_mar3 = next(r for r in tieout if r[0] == date(2024, 3, 3) and r[1] == "USD")
    assert usd_mar3[2] == -5000 * 8
    for r in tieout:
        assert r[3] == r[4] + r[5] + r[6]


def dispute(did: str, opened: datetime, *, status: str = "needs_response", amount: int = 4000,
            currency: str = "usd") -> dict:  # fmt: skip
    return {
        "id": did, "created": opened, "status": status, "charge": "ch_" + did[3:],
        "payment_intent": None, "currency": currency, "amount": amount, "reason": "fraudulent",
        "is_charge_refundable": False, "metadata": None, "_partition_date": et_day(opened),
        "_synced_at": SYNCED, "_run_id": "run_test",
    }  # fmt: skip


def test_dispute_rules_each_movement_by_its_sign(tmp_path: Path) -> None:
    """Every dispute rule on DuckDB: one item per dispute balance transaction, on its own
    US-Eastern day; the ledger's `dispute` entries naming the dispute, signed as the money
    moved, are the withdrawal's when negative and the reinstatement's when positive; the fee of
    the withdrawal is a fee item keyed by the dispute. A reinstatement booked for a dispute
    that is not won is unexpected; one of a won dispute whose transaction's day is not loaded
    waits (pending in Stripe); a dispute Stripe answered 404 for is missing in Stripe. The
    tie-out takes every movement as its item's money and stays explained."""
    db, work = tmp_path / "warehouse.duckdb", tmp_path / "work"
    opened = datetime(2024, 3, 4, 15, tzinfo=UTC)  # 10:00 EST, Mar 4
    won_at = opened + timedelta(days=30)  # Apr 3, 11:00 EDT
    later = datetime(2024, 3, 9, 15, tzinfo=UTC)
    names = ["ok", "missing", "wrong", "dup", "late", "won", "lostbooked", "yen", "waits"]
    disputes = [
        dispute(f"dp_{n}", opened, amount=4000 if n != "yen" else 7000,
                status="won" if n in ("won", "waits") else "lost" if n == "lostbooked"
                else "under_review", currency="jpy" if n == "yen" else "usd")
        for n in names
    ]  # fmt: skip
    txns = []
    for d in disputes:
        fee = 2000 if d["currency"] == "jpy" else 1500
        w = txn(f"txn_dw_{d['id']}", d["id"], opened, -d["amount"], fee, type_="adjustment",
                currency=d["currency"])  # fmt: skip
        txns.append({**w, "reporting_category": "dispute"})
    # one Stripe converted into the balance's currency (an exchange rate on its transaction)
    disputes.append(dispute("dp_fx", opened, status="under_review", currency="eur"))
    fx = txn("txn_dw_dp_fx", "dp_fx", opened, -3700, 1400, type_="adjustment", currency="eur")
    txns.append({**fx, "reporting_category": "dispute", "exchange_rate": 0.925})
    # the won dispute's money came back 30 days later (a loaded day); dp_waits' is on a day
    # whose transactions are not loaded yet
    r = txn("txn_dr_dp_won", "dp_won", won_at, 4000, type_="adjustment")
    txns.append({**r, "reporting_category": "dispute_reversal"})

    def booked(eid: int, did: str, amount: int, at: datetime = opened, *, hours: float = 1,
               cur: str = "USD", entry_type: str = "dispute") -> dict:  # fmt: skip
        return entry(eid, did, at + timedelta(hours=hours), amount, cur, entry_type=entry_type)

    entries = [
        booked(1, "dp_ok", -4000), booked(2, "dp_ok", -1500, entry_type="fee"),
        booked(3, "dp_wrong", -5500),  # the withdrawal booked net of the dispute fee
        booked(4, "dp_dup", -4000), booked(5, "dp_dup", -4000, hours=2),
        booked(6, "dp_late", -4000, hours=3 * 24 + 2),
        booked(7, "dp_won", -4000), booked(8, "dp_won", 4000, won_at),
        booked(9, "dp_lostbooked", -4000), booked(10, "dp_lostbooked", 4000, later),
        booked(11, "dp_yen", -7000, cur="JPY"), booked(12, "dp_yen", -2000, cur="JPY",
                                                        entry_type="fee"),
        booked(13, "dp_waits", -4000), booked(14, "dp_waits", 4000, later),
        booked(15, "dp_ghost", -900),  # a dispute Stripe answered 404 for
        booked(16, "dp_fx", -4000, cur="EUR"), booked(17, "dp_fx", -1500, cur="EUR",
                                                       entry_type="fee"),
    ]  # fmt: skip
    loaded = loaded_days(last=date(2024, 4, 5))
    log = [(ds, d, LOADED_1) for ds in STRIPE_DAYS for d in loaded if d != later.date()] + [
        ("ledger_entries", d, LOADED_1) for d in loaded
    ]
    txns = [t for t in txns if t["_partition_date"] != later.date()]
    write_raw(db, [], entries, txns=txns, disputes=disputes, load_log=log,
              lookups=[("dp_ghost", "not_found")])  # fmt: skip
    dbt(db, work, "build", "--target", "local")

    con = duckdb.connect(str(db), read_only=True)
    try:
        got = {
            (r[0], r[1]): r[2:]
            for r in con.execute(
                "select dispute_id, dispute_leg, reporting_date, recon_status, stripe_amount, "
                "ledger_amount, amount_diff, ledger_entry_ids from marts.fct_dispute_reconciliation"
            ).fetchall()
        }
        fees = dict(con.execute(
            "select source_id, (recon_status, stripe_amount, ledger_amount) "
            "from marts.fct_fee_reconciliation "
            "where source_id in ('dp_ok', 'dp_yen', 'dp_dup', 'dp_fx')"
        ).fetchall())  # fmt: skip
        tieout = con.execute(
            "select reporting_date, currency, stripe_net, difference, explained_open, "
            "explained_timing, unexplained from marts.rpt_balance_tieout"
        ).fetchall()
        daily = dict(con.execute(
            "select recon_status, item_count from marts.rpt_daily_reconciliation "
            "where item_type = 'dispute' and reporting_date = ? and currency = 'USD'",
            [opened.date()],
        ).fetchall())  # fmt: skip
    finally:
        con.close()
    d0, d30, dl = opened.date(), et_day(won_at), later.date()
    assert got == {
        ("dp_ok", "withdrawal"): (d0, "matched", 4000, -4000, 0, "1"),
        ("dp_missing", "withdrawal"): (d0, "missing_in_ledger", 4000, None, 4000, None),
        ("dp_wrong", "withdrawal"): (d0, "amount_mismatch", 4000, -5500, -1500, "3"),
        ("dp_dup", "withdrawal"): (d0, "duplicate_in_ledger", 4000, -8000, -4000, "4,5"),
        ("dp_late", "withdrawal"): (d0, "late_posting", 4000, -4000, 0, "6"),
        ("dp_won", "withdrawal"): (d0, "matched", 4000, -4000, 0, "7"),
        ("dp_won", "reinstatement"): (d30, "matched", -4000, 4000, 0, "8"),
        ("dp_lostbooked", "withdrawal"): (d0, "matched", 4000, -4000, 0, "9"),
        ("dp_lostbooked", "reinstatement"): (dl, "unexpected_ledger_entry", None, 4000, 4000,
                                             "10"),
        ("dp_yen", "withdrawal"): (d0, "matched", 7000, -7000, 0, "11"),  # never / 100
        ("dp_waits", "withdrawal"): (d0, "matched", 4000, -4000, 0, "13"),
        ("dp_waits", "reinstatement"): (dl, "pending_in_stripe", None, 4000, 4000, "14"),
        ("dp_ghost", "withdrawal"): (d0, "missing_in_stripe", None, -900, -900, "15"),
        # converted: reported, never converted nor compared
        ("dp_fx", "withdrawal"): (d0, "currency_conversion", 3700, -4000, -300, "16"),
    }  # fmt: skip
    assert fees["dp_ok"] == ("matched", 1500, -1500)
    assert fees["dp_yen"] == ("matched", 2000, -2000)
    assert fees["dp_dup"][0] == "missing_in_ledger"
    assert fees["dp_fx"] == ("currency_conversion", 1400, -1500)
    assert daily["matched"] == 4 and daily["amount_mismatch"] == 1
    assert tieout and all(r[6] == 0 for r in tieout), tieout
    for r in tieout:
        assert r[3] == r[4] + r[5] + r[6]
    usd_d0 = next(r for r in tieout if r[0] == d0 and r[1] == "USD")
    assert usd_d0[2] == -(4000 + 1500) * 8


@pytest.mark.timeout(300)
def test_unique_key_fails_on_a_duplicate_a_null_key_and_a_null_in_its_columns(
    tmp_path: Path,
) -> None:
    """`unique_key` is `unique`, `not_null` and `not_null_columns` in one test (one node, one
    Dagster check): it passes a clean table and fails, one row each, on a key held twice, a
    null key, and a null in one of the columns it names."""
    db = tmp_path / "warehouse.duckdb"
    t1 = utc(2024, 3, 5, 17)
    write_raw(db, [charge("ch_a", t1)], [ok(1, "ch_a", t1)])
    out = dbt(db, tmp_path, "build", "--target", "local")
    touched = "unique_key_int_recon__touched_charges_charge_id"
    history = "unique_key_rpt_break_history_recon_key__first_seen__days_open"
    assert f"PASS {touched}" in out and f"PASS {history}" in out, out[-3000:]

    def tampered(*statements: str, model: str) -> str:
        con = duckdb.connect(str(db))
        try:
            con.execute("begin")
            for s in statements:
                con.execute(s)
            con.execute("commit")
        finally:
            con.close()
        return dbt(db, tmp_path, "test", "--target", "local", "--select", model, fail=True)

    t = "intermediate.int_recon__touched_charges"
    assert con_rows(db, f"select charge_id from {t}") == [("ch_a",)]
    out = tampered(
        f"insert into {t} by name select 'ch_a' as charge_id", model="int_recon__touched_charges"
    )
    assert f"FAIL 1 {touched}" in out, out[-3000:]
    out = tampered(
        f"delete from {t}",
        f"insert into {t} by name select 'ch_a' as charge_id",
        f"insert into {t} by name select null as charge_id",
        model="int_recon__touched_charges",
    )
    assert f"FAIL 1 {touched}" in out, out[-3000:]
    h = "marts.rpt_break_history"
    out = tampered(
        f"insert into {h} by name select 'charge:ch_z' as recon_key, "
        "timestamptz '2024-03-05 17:00:00+00' as first_seen",  # days_open null
        model="rpt_break_history",
    )
    assert f"FAIL 1 {history}" in out, out[-3000:]


def con_rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
