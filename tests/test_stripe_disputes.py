"""Disputes on the Stripe side: the emulator's against Stripe's published example and its own
invariants (a dispute withdraws what its charge captured plus a dispute fee, and a won one gives
the amount back 30 days later), its events, and the one pull of disputes by the day they were
opened."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon_assets.currencies import is_zero_decimal
from recon_assets.local.stripe_emulator import ChargeGenerator
from recon_assets.local.stripe_emulator.balance import BalanceBook
from recon_assets.local.stripe_emulator.config import ChargeChange
from recon_assets.local.stripe_emulator.disputes import DECIDED_AFTER, DisputeBook, dispute_fee
from recon_assets.local.stripe_emulator.events import EventLog
from recon_assets.local.stripe_emulator.refunds import RefundBook
from recon_assets.stage.store import LocalStageStore
from recon_assets.stripe.pull import pull
from recon_assets.stripe.sources import DISPUTES
from recon_assets.timewindows import Window, business_day_of, day_window
from tests.stripe_fixtures import FROZEN_NOW, client_for, emulator_config, running_emulator

PUBLISHED = json.loads((Path(__file__).parent / "data" / "stripe_dispute_fixture.json").read_text())
"""Stripe's own example Dispute (stripe/openapi fixtures3.json), kept here."""


def _json_type(v: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}[type(v)]  # fmt: skip


def test_disputes_have_every_field_of_stripes_published_one() -> None:
    with running_emulator(charges_per_day=300) as emu:
        first = day_window(date(2024, 3, 6)).start
        w = Window(first, first + 7 * 86400)  # a few a day at 300 charges: a week has some
        page = client_for(emu).list_page(w, None, DISPUTES)
    assert page.items
    for d in page.items:
        assert set(d) == set(PUBLISHED), set(d) ^ set(PUBLISHED)
        for k, v in PUBLISHED.items():
            if v is not None and d[k] is not None:
                assert _json_type(d[k]) == _json_type(v), k
        assert w.contains(d["created"]) and d["id"].startswith("dp_")
        assert d["charge"] == "ch_" + d["id"][3:]


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), day=st.integers(5, 300))
def test_a_dispute_withdraws_the_amount_and_a_fee_and_a_won_one_gives_the_amount_back(
    seed: int, day: int
) -> None:
    """On any day of any account: each dispute's charge was captured and is disputed; the
    withdrawal (minus what the charge captured, with the dispute fee in the charge's currency)
    is created when the dispute is opened; a won dispute's reinstatement (the amount, no fee)
    when it is decided, 30 days later, and a lost one has none; both are the balance's
    transactions, listed on their day and found by id."""
    gen = ChargeGenerator(emulator_config(seed=seed, charges_per_day=300))
    balance = BalanceBook(gen, RefundBook(gen))
    book = balance.disputes
    w = day_window(date(2024, 1, 1) + timedelta(days=day))
    opened = book.opened_in(w.start, w.start + 7 * 86400, FROZEN_NOW)
    assert opened  # under one charge in a hundred, but a week of 300 a day has some
    outcomes = set()
    for d in opened:
        charge = gen.get(d.charge_id, now=FROZEN_NOW)
        assert charge is not None and charge["disputed"] and charge["captured"]
        assert d.amount == charge["amount_captured"] and d.currency == charge["currency"]
        txns = d.transactions(FROZEN_NOW)
        fee = dispute_fee(d.currency)
        assert fee == (2000 if is_zero_decimal(d.currency) else 1500)
        assert (txns[0].amount, txns[0].fee, txns[0].net) == (-d.amount, fee, -d.amount - fee)
        assert txns[0].reporting_category == "dispute" and txns[0].created == d.created
        status = d.status(FROZEN_NOW)
        outcomes.add(status)
        assert d.decided_at == d.created + DECIDED_AFTER
        if status == "won":
            assert [t.reporting_category for t in txns] == ["dispute", "dispute_reversal"]
            assert (txns[1].amount, txns[1].fee, txns[1].created) == (d.amount, 0, d.decided_at)
        else:
            assert status == "lost" and len(txns) == 1
        assert d.status(d.created) == "needs_response"
        assert d.status(d.decided_at - 1) == "under_review"
        for t in txns:
            assert t in balance.in_window(t.created, t.created + 1, FROZEN_NOW)
            assert balance.get(t.id, FROZEN_NOW) == t
            assert book.get(d.id, FROZEN_NOW) == d
    assert outcomes <= {"won", "lost"}


def test_a_hand_made_dispute_is_decided_when_its_close_says_and_its_events_say_so() -> None:
    """A `dispute` change opens it, a `dispute_close` decides it: its events are the funds
    withdrawn when it opens, and closed with the funds reinstated when it is won, each
    carrying the Dispute as it stood then."""
    base = emulator_config(charges_per_day=50)
    gen0 = ChargeGenerator(base)
    cid = next(
        c["id"] for c in gen0.iter_charges(day_window(date(2024, 5, 1)).start,
                                           day_window(date(2024, 5, 1)).end, FROZEN_NOW)
        if c["status"] == "succeeded" and c["captured"] and not c["disputed"]
    )  # fmt: skip
    opened = day_window(date(2024, 5, 3)).start + 3600
    won = opened + 30 * 86400
    cfg = emulator_config(charges_per_day=50, changes=(
        ChargeChange(cid, opened, "dispute"), ChargeChange(cid, won, "dispute_close", outcome="won"),
    ))  # fmt: skip
    gen = ChargeGenerator(cfg)
    book = DisputeBook(gen)
    g = gen.position_of(cid)
    assert g is not None
    assert book.of_charge(g, opened - 1) is None
    d = book.of_charge(g, FROZEN_NOW)
    assert d is not None and d.status(won - 1) == "under_review" and d.status(won) == "won"
    log = EventLog(gen, disputes=book)
    # each read as a pipeline reads it then (Stripe lists 30 days of events)
    events = [
        e
        for at in (opened, won)
        for e in log.list(at, at + 1, at + 1, lambda t: t.startswith("charge.dispute."))
        if e.position == g
    ]
    assert sorted((e.created, e.type) for e in events) == [
        (opened, "charge.dispute.created"), (opened, "charge.dispute.funds_withdrawn"),
        (won, "charge.dispute.closed"), (won, "charge.dispute.funds_reinstated"),
    ]  # fmt: skip
    for e in events:
        obj = json.loads(log.render(e))["data"]["object"]
        assert obj["object"] == "dispute" and obj["id"] == d.id and obj["charge"] == cid
        assert obj["status"] == ("won" if e.created == won else "needs_response")
        assert len(obj["balance_transactions"]) == (2 if e.created == won else 1)
    with pytest.raises(ValueError, match="won or lost"):
        ChargeChange(cid, won, "dispute_close")


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(day=st.integers(10, 300))
def test_the_pull_stages_the_disputes_of_each_day(
    day: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Disputes are pulled by the US-Eastern day they were opened, through the one pull, and
    staged on it with what reconciliation reads."""
    d = date(2024, 1, 1) + timedelta(days=day)
    days = [d, d + timedelta(1), d + timedelta(2)]
    store = LocalStageStore(tmp_path_factory.mktemp("stage"))
    with running_emulator(charges_per_day=300) as emu:
        book = DisputeBook(ChargeGenerator(emu.cfg))
        want = {
            x.id: x
            for day_ in days
            for x in book.opened_in(day_window(day_).start, day_window(day_).end, FROZEN_NOW)
        }
        result = pull(DISPUTES, client_for(emu), store, days, "run1", windows_per_day=1,
                      concurrency=2)  # fmt: skip
    assert {f.day for f in result.files} == set(days)
    assert result.fetched == result.staged == len(want) and result.quarantined == 0
    rows = [r for f in result.files for r in pq.read_table(store.root / f.key).to_pylist()]
    assert {
        r["id"]: (r["amount"], r["currency"], r["status"], r["charge"], r["_partition_date"])
        for r in rows
    } == {
        i: (x.amount, x.currency, x.status(FROZEN_NOW), x.charge_id, business_day_of(x.created))
        for i, x in want.items()
    }  # fmt: skip
