"""Balance transactions on the Stripe side: the emulator's against Stripe's published example,
each charge and refund consistent with its transactions, and the one pull (through the
balance transactions' spec) against the emulator's own listing."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon_assets.local.stripe_emulator import ChargeGenerator
from recon_assets.local.stripe_emulator.balance import (
    BalanceBook,
    available_on,
    refund_txn_id,
    stripe_fee,
)
from recon_assets.local.stripe_emulator.config import ChargeChange
from recon_assets.local.stripe_emulator.payouts import PayoutBook
from recon_assets.local.stripe_emulator.refunds import RefundBook
from recon_assets.stage.store import LocalStageStore
from recon_assets.stripe.pull import pull
from recon_assets.stripe.sources import BALANCE_TRANSACTIONS
from recon_assets.timewindows import day_window
from tests.stripe_fixtures import FROZEN_NOW, client_for, emulator_config, running_emulator

PUBLISHED = json.loads(
    (Path(__file__).parent / "data" / "stripe_balance_transaction_fixture.json").read_text()
)
"""Stripe's own example BalanceTransaction (stripe/openapi fixtures3.json), kept here."""


def _json_type(v: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}[type(v)]  # fmt: skip


def test_balance_transactions_have_every_field_of_stripes_published_one() -> None:
    with running_emulator() as emu:
        page = client_for(emu).list_page(day_window(date(2024, 3, 5)), None, BALANCE_TRANSACTIONS)
    assert page.items
    types = Counter(t["type"] for t in page.items)
    assert types["charge"] > 0
    for t in page.items:
        assert set(t) == set(PUBLISHED), set(t) ^ set(PUBLISHED)
        for k, v in PUBLISHED.items():
            if v is not None and t[k] is not None:
                assert _json_type(t[k]) == _json_type(v), k
        assert t["net"] == t["amount"] - t["fee"]
        assert t["fee"] == sum(f["amount"] for f in t["fee_details"])
        assert t["exchange_rate"] is None  # multi-currency settlement: nothing converted


def test_the_fee_schedule_is_exact_in_integers_and_zero_decimal_currencies() -> None:
    # 2.9 % + 30 rounded up, computed without floats: 1000 * 0.029 is 29.000000000000004
    assert stripe_fee(1000, "usd") == 29 + 30
    assert stripe_fee(1001, "usd") == 30 + 30
    assert stripe_fee(10_000, "jpy") == 360  # 3.6 %, never a `/100`
    assert stripe_fee(1, "krw") == 1 and stripe_fee(0, "usd") == 0
    # available two business days later, at 00:00 UTC: Friday -> Tuesday
    fri = int(datetime(2024, 3, 8, 23, 0, tzinfo=UTC).timestamp())
    assert available_on(fri) == int(datetime(2024, 3, 12, tzinfo=UTC).timestamp())


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), day=st.integers(0, 200))
def test_every_settled_charge_and_refund_has_its_transactions(seed: int, day: int) -> None:
    """Over a day and the three after it (captures and refunds land up to 73 h later), each
    charge that is captured and succeeded has exactly one `charge` transaction of its captured
    amount and Stripe's fee, created at its capture; each refund has a `refund` transaction of
    minus its amount; a charge that is not settled has none."""
    gen = ChargeGenerator(emulator_config(seed=seed, charges_per_day=400))
    refunds = RefundBook(gen)
    book = BalanceBook(gen, refunds)
    w = day_window(date(2024, 1, 1) + timedelta(days=day))
    now = w.end + 5 * 86400
    txns = book.in_window(w.start, w.end + 4 * 86400, now)
    assert len({t.id for t in txns}) == len(txns)
    by_source = Counter(t.source for t in txns)
    charge_txn = {t.source: t for t in txns if t.type == "charge"}
    for c in gen.iter_charges(w.start, w.end, now=now):
        t = charge_txn.get(c["id"])
        if c["status"] == "succeeded" and c["captured"]:
            assert t is not None, c["id"]
            assert (t.amount, t.fee, t.currency) == (
                c["amount_captured"], stripe_fee(c["amount_captured"], c["currency"]), c["currency"]
            )  # fmt: skip
            assert t.created >= c["created"] and t.id == c["balance_transaction"]
            g = gen.position_of(c["id"], now)
            assert g is not None
            for r in refunds.of_charge(g, now):
                rid = refunds.id_of(r)
                got = [x for x in txns if x.source == rid]
                assert [(x.id, x.amount, x.fee) for x in got] == [
                    (refund_txn_id(rid), -r.amount, 0)
                ]
        else:
            assert t is None and by_source[c["id"]] == 0, c["id"]


def test_a_late_capture_and_a_failed_refund_each_move_the_balance_when_they_happen() -> None:
    base = emulator_config(charges_per_day=500)
    gen = ChargeGenerator(base)
    w = day_window(date(2024, 3, 5))
    auth = next(c for c in gen.iter_charges(w.start, w.end, now=w.end)
                if c["status"] == "succeeded" and not c["captured"])  # fmt: skip
    paid = next(c for c in gen.iter_charges(w.start, w.end, now=w.end + 5 * 86400)
                if c["status"] == "succeeded" and c["captured"] and not c["amount_refunded"])  # fmt: skip
    t_cap, t_ref, t_fail = w.end + 6 * 86400, w.end + 7 * 86400, w.end + 9 * 86400
    cfg = emulator_config(charges_per_day=500, changes=(
        ChargeChange(auth["id"], t_cap, "capture"),
        ChargeChange(paid["id"], t_ref, "refund", amount=100),
        ChargeChange(paid["id"], t_fail, "refund_fail"),
    ))  # fmt: skip
    gen = ChargeGenerator(cfg)
    book = BalanceBook(gen, RefundBook(gen))
    now = t_fail + 86400
    on_capture_day = book.in_window(t_cap - 3600, t_cap + 3600, now)
    cap = [t for t in on_capture_day if t.source == auth["id"]]
    assert [(t.type, t.created) for t in cap] == [("charge", t_cap)]
    assert not [t for t in book.in_window(w.start, w.end, now) if t.source == auth["id"]]
    moved = [t for t in book.in_window(t_ref, t_fail + 1, now) if t.source.startswith("re_")
             and t.source[3:27] == paid["id"][3:]]  # fmt: skip
    assert sorted((t.type, t.amount, t.created) for t in moved) == [
        ("refund", -100, t_ref), ("refund_failure", 100, t_fail)
    ]  # fmt: skip
    assert sum(t.net for t in moved) == 0


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(day=st.integers(0, 300), windows=st.integers(1, 3))
def test_the_pull_stages_exactly_the_days_balance_transactions(day: int, windows: int, tmp_path_factory: pytest.TempPathFactory) -> None:  # fmt: skip
    """Through the charges' pull (paging, windows, validation, conserved counts), every balance
    transaction created on the day (the payouts' included) is staged once, on that day, with its
    fee and net."""
    d = date(2024, 1, 1) + timedelta(days=day)
    store = LocalStageStore(tmp_path_factory.mktemp("stage"))
    with running_emulator(charges_per_day=1500) as emu:
        gen = ChargeGenerator(emu.cfg)
        w = day_window(d)
        book = BalanceBook(gen, RefundBook(gen))
        PayoutBook(book)  # the account's payouts move its balance too
        want = {t.id: t for t in book.in_window(w.start, w.end, FROZEN_NOW)}
        source = dataclasses.replace(BALANCE_TRANSACTIONS, windows_per_day=windows)
        result = pull(source, client_for(emu), store, [d], "run1", windows_per_day=windows,
                      concurrency=2)  # fmt: skip
    assert result.fetched == result.staged == len(want) > 0 and result.quarantined == 0
    (f,) = result.files
    rows = pq.read_table(store.root / f.key).to_pylist()
    assert {r["id"]: (r["amount"], r["fee"], r["net"], r["source"]) for r in rows} == {
        i: (t.amount, t.fee, t.net, t.source) for i, t in want.items()
    }
    assert {r["_partition_date"] for r in rows} == {d}
