"""Refunds on the Stripe side: the emulator's Refund objects against Stripe's published example,
the one pull (through the refunds' spec) against the emulator's own listing, look-ups by id, and
every refund consistent with its charge's `amount_refunded`."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon_assets.local.stripe_emulator import ChargeGenerator
from recon_assets.local.stripe_emulator.config import ChargeChange
from recon_assets.local.stripe_emulator.refunds import RefundBook
from recon_assets.stage.store import LocalStageStore
from recon_assets.stripe.pull import pull
from recon_assets.stripe.sources import REFUNDS
from recon_assets.timewindows import day_window
from tests.stripe_fixtures import FROZEN_NOW, client_for, emulator_config, running_emulator

PUBLISHED = json.loads((Path(__file__).parent / "data" / "stripe_refund_fixture.json").read_text())
"""Stripe's own example Refund (stripe/openapi fixtures3.json), kept beside the tests."""


def _json_type(v: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            type(None): "null"}[type(v)]  # fmt: skip


def test_refund_objects_have_every_field_of_stripes_published_refund() -> None:
    with running_emulator() as emu:
        client = client_for(emu)
        w = day_window(date(2024, 3, 5))
        page = client.list_page(w, None, REFUNDS)
        assert page.items, "the day has refunds"
        for r in page.items:
            assert set(PUBLISHED) <= set(r), set(PUBLISHED) - set(r)
            for k, v in PUBLISHED.items():
                if v is not None and r[k] is not None:
                    assert _json_type(r[k]) == _json_type(v), k
            assert r["object"] == "refund" and r["id"].startswith("re_")
            assert r["charge"].startswith("ch_") and r["amount"] > 0
        one = page.items[0]
        assert client.retrieve(one["id"], REFUNDS) == one
        assert client.retrieve("re_" + "x" * 25, REFUNDS) is None  # a 404


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(day=st.integers(0, 300), windows=st.integers(1, 3))
def test_the_pull_stages_exactly_the_days_refunds(day: int, windows: int, tmp_path_factory: pytest.TempPathFactory) -> None:  # fmt: skip
    """Through the charges' pull (paging, windows, validation, conserved counts), every refund
    created on the day is staged once, on that day, whatever the number of windows."""
    d = date(2024, 1, 1) + timedelta(days=day)
    store = LocalStageStore(tmp_path_factory.mktemp("stage"))
    with running_emulator(charges_per_day=3000) as emu:
        gen = ChargeGenerator(emu.cfg)
        w = day_window(d)
        want = {
            RefundBook(gen).id_of(r) for r in RefundBook(gen).in_window(w.start, w.end, FROZEN_NOW)
        }
        source = dataclasses.replace(REFUNDS, windows_per_day=windows)
        result = pull(source, client_for(emu), store, [d], "run1", windows_per_day=windows,
                      concurrency=2)  # fmt: skip
    assert result.fetched == result.staged == len(want) and result.quarantined == 0
    (f,) = result.files
    table = pq.read_table(store.root / f.key)
    assert sorted(table.column("id").to_pylist()) == sorted(want)
    assert set(table.column("_partition_date").to_pylist()) == {d}


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), day=st.integers(0, 200))
def test_a_charges_refunds_add_up_to_its_amount_refunded(seed: int, day: int) -> None:
    """At any instant, the refunds a charge has that did not fail add up to its
    amount_refunded, and each is created at or after the charge and never for more than was
    captured: a refund and its charge never disagree."""
    gen = ChargeGenerator(emulator_config(seed=seed, charges_per_day=800))
    book = RefundBook(gen)
    w = day_window(date(2024, 1, 1) + timedelta(days=day))
    now = w.end + 2 * 86400  # mid-life: some refunds still pending
    statuses: Counter[str] = Counter()
    for c in gen.iter_charges(w.start, w.end, now=now):
        g = gen.position_of(c["id"], now)
        assert g is not None
        refunds = book.of_charge(g, now)
        live = [r for r in refunds if r.status(now) != "failed"]
        assert sum(r.amount for r in live) == c["amount_refunded"]
        assert all(r.created >= c["created"] for r in refunds)
        assert sum(r.amount for r in live) <= c["amount_captured"]
        statuses.update(r.status(now) for r in refunds)
    assert statuses["succeeded"] > 0


def test_hand_made_refunds_add_up_and_a_failed_one_gives_the_money_back() -> None:
    base = emulator_config(charges_per_day=500)
    gen = ChargeGenerator(base)
    w = day_window(date(2024, 3, 5))
    c = next(c for c in gen.iter_charges(w.start, w.end)
             if c["status"] == "succeeded" and c["captured"] and not c["amount_refunded"]
             and c["amount_captured"] > 300)  # fmt: skip
    t1, t2, t3 = w.end + 86400, w.end + 2 * 86400, w.end + 9 * 86400
    cfg = emulator_config(charges_per_day=500, changes=(
        ChargeChange(c["id"], t1, "refund", amount=100),
        ChargeChange(c["id"], t2, "refund"),  # what is left
        ChargeChange(c["id"], t3, "refund_fail"),
    ))  # fmt: skip
    gen = ChargeGenerator(cfg)
    book = RefundBook(gen)
    g = gen.position_of(c["id"])
    assert g is not None
    assert gen.get(c["id"], now=t2)["amount_refunded"] == c["amount_captured"]  # type: ignore[index]
    assert gen.get(c["id"], now=t3)["amount_refunded"] == 100  # type: ignore[index]
    refunds = book.of_charge(g, t3)
    assert [(r.n, r.amount, r.status(t3)) for r in refunds] == [
        (1, 100, "succeeded"), (2, c["amount_captured"] - 100, "failed"),
    ]  # fmt: skip
    assert [r.status(t3 - 1) for r in refunds] == ["succeeded", "succeeded"]
