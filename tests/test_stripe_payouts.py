"""Payouts on the Stripe side: the emulator's against Stripe's published example and its own
invariants (a payout carries exactly its amount, a failed one gives the money back), and the one
pull of payouts by arrival date and of each payout's transactions by parent."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon_assets.local.stripe_emulator import ChargeGenerator
from recon_assets.local.stripe_emulator.balance import BalanceBook
from recon_assets.local.stripe_emulator.payouts import PayoutBook, payouts_arriving
from recon_assets.local.stripe_emulator.refunds import RefundBook
from recon_assets.stage.store import LocalStageStore
from recon_assets.stripe.pull import pull
from recon_assets.stripe.sources import PAYOUT_TRANSACTIONS, PAYOUTS
from recon_assets.timewindows import Window, utc_date_of, utc_date_window
from tests.stripe_fixtures import FROZEN_NOW, client_for, emulator_config, running_emulator

PUBLISHED = json.loads((Path(__file__).parent / "data" / "stripe_payout_fixture.json").read_text())
"""Stripe's own example Payout (stripe/openapi fixtures3.json), kept here."""


def _json_type(v: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}[type(v)]  # fmt: skip


def _book(**kwargs: object) -> tuple[ChargeGenerator, BalanceBook, PayoutBook]:
    gen = ChargeGenerator(emulator_config(**kwargs))
    balance = BalanceBook(gen, RefundBook(gen))
    return gen, balance, PayoutBook(balance)


def test_payouts_have_every_field_of_stripes_published_one() -> None:
    with running_emulator(charges_per_day=300) as emu:
        w = utc_date_window(date(2024, 3, 6))
        page = client_for(emu).list_page(w, None, PAYOUTS)
    assert page.items
    for p in page.items:
        assert set(p) == set(PUBLISHED), set(p) ^ set(PUBLISHED)
        for k, v in PUBLISHED.items():
            if v is not None and p[k] is not None:
                assert _json_type(p[k]) == _json_type(v), k
        assert w.contains(p["arrival_date"]) and p["arrival_date"] % 86400 == 0
        assert p["created"] < p["arrival_date"] and p["amount"] > 0


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), day=st.integers(10, 300))
def test_a_payout_carries_exactly_its_amount_and_a_failed_one_gives_it_back(
    seed: int, day: int
) -> None:
    """Stripe's invariants, on any day of any account: a payout's amount is the net of the
    transactions it swept (those that became available on its day, in its currency), each
    transaction is swept by at most one payout, the payout's own transaction takes the amount
    out of the balance, and a failed payout's failure puts it back (net 0)."""
    _, balance, book = _book(seed=seed, charges_per_day=300)
    d = date(2024, 1, 1) + timedelta(days=day)
    payouts = [
        p for p in book.listing(None, None, None, FROZEN_NOW) if d <= p.day < d + timedelta(7)
    ]
    assert payouts  # one per currency on each business day
    swept_ids: Counter[str] = Counter()
    for p in payouts:
        swept = book.swept(p.day, p.currency, FROZEN_NOW)
        assert sum(t.net for t in swept) == p.amount > 0
        assert {t.currency for t in swept} == {p.currency}
        assert {t.available_on for t in swept} == {
            int(datetime(p.day.year, p.day.month, p.day.day, tzinfo=UTC).timestamp())
        }
        swept_ids.update(t.id for t in swept)
        own = p.transactions(FROZEN_NOW)
        assert own[0].type == "payout" and own[0].net == -p.amount
        if p.status(FROZEN_NOW) == "failed":
            assert [t.type for t in own] == ["payout", "payout_failure"]
            assert sum(t.net for t in own) == 0 and own[1].created > p.arrival_date
        else:
            assert [t.type for t in own] == ["payout"]
        # the payout's transactions are the balance's: listed on their day, found by id
        lo = own[0].created
        assert own[0] in balance.in_window(lo, lo + 1, FROZEN_NOW)
        assert balance.get(own[0].id, FROZEN_NOW) == own[0]
    assert max(swept_ids.values()) == 1


def test_a_payout_moves_from_pending_to_paid_and_one_in_some_fails_after_paid() -> None:
    _, _, book = _book(charges_per_day=300)
    payouts = book.listing(None, None, None, FROZEN_NOW)
    failed = [p for p in payouts if p.failed_at is not None]
    assert failed and len(failed) < len(payouts) / 10
    p = failed[0]
    assert p.status(p.created) == "pending"
    assert p.status(p.created + 3600) == "in_transit"
    assert p.status(p.arrival_date) == "paid"
    assert p.status(p.failed_at) == "failed" and p.failed_at > p.arrival_date
    # the seeder's view: the day's payouts as rendered, with when a failed one failed
    seen = payouts_arriving(book, utc_date_of(p.arrival_date), FROZEN_NOW)
    mine = next(x for x in seen if x["id"] == p.id)
    assert mine["status"] == "failed" and mine["_failed_at"] == p.failed_at
    assert mine["failure_balance_transaction"] == p.transactions(FROZEN_NOW)[1].id


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(day=st.integers(10, 300))
def test_the_pull_stages_the_payouts_of_each_arrival_date_and_what_each_carried(
    day: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Payouts are pulled by the bank's date (`arrival_date`, a UTC date, never a US-Eastern
    day) and staged on it; each payout's transactions are pulled through the same pull with the
    `payout` filter, staged on its day with its id, and carry exactly its amount."""
    d = date(2024, 1, 1) + timedelta(days=day)
    days = [d, d + timedelta(1), d + timedelta(2)]
    store = LocalStageStore(tmp_path_factory.mktemp("stage"))
    with running_emulator(charges_per_day=300) as emu:
        gen = ChargeGenerator(emu.cfg)
        book = PayoutBook(BalanceBook(gen, RefundBook(gen)))
        want = {
            p.id: p for x in days for p in book.listing(
                None, (utc_date_window(x).start, utc_date_window(x).end), None, FROZEN_NOW
            )
        }  # fmt: skip
        client = client_for(emu)
        result = pull(PAYOUTS, client, store, days, "run1", windows_per_day=1, concurrency=2)
        paid = {i: p for i, p in want.items() if p.status(FROZEN_NOW) == "paid"}
        parents = {
            x: [(i, Window(0, p.created + 1)) for i, p in paid.items() if utc_date_of(p.arrival_date) == x]
            for x in days
        }  # fmt: skip
        carried = pull(PAYOUT_TRANSACTIONS, client, store, days, "run2", windows_per_day=1,
                       concurrency=2, parents=parents)  # fmt: skip
    assert result.fetched == result.staged == len(want) and result.quarantined == 0
    rows = [r for f in result.files for r in pq.read_table(store.root / f.key).to_pylist()]
    assert {r["id"]: (r["amount"], r["currency"], r["_partition_date"]) for r in rows} == {
        i: (p.amount, p.currency, utc_date_of(p.arrival_date)) for i, p in want.items()
    }
    assert {f.day for f in carried.files} == set(days)  # a day with no paid payout: empty file
    txns = [r for f in carried.files for r in pq.read_table(store.root / f.key).to_pylist()]
    assert carried.quarantined == 0 and carried.fetched == len(txns)
    for pid, p in paid.items():
        mine = [t for t in txns if t["payout"] == pid]
        assert {t["_partition_date"] for t in mine} == {utc_date_of(p.arrival_date)}
        assert sum(t["net"] for t in mine if t["type"] != "payout") == p.amount
        assert [t["id"] for t in mine if t["type"] == "payout"] == ["txn_po" + p.body]
