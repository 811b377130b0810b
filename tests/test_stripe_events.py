"""Stripe's Events API: the emulator lists exactly the changes its charges go through, as Stripe
does (filters, paging, 30-day retention), and the client side turns events into the latest state
of each charge and a cursor that never skips silently."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon_assets.local.stripe_emulator import ChargeGenerator, EmulatorConfig, StripeEmulator
from recon_assets.local.stripe_emulator.config import EVENT_RETENTION_S, ChargeChange
from recon_assets.local.stripe_emulator.events import EventLog, type_filter
from recon_assets.stage.manifest import KeyedManifest
from recon_assets.stage.store import LocalStageStore
from recon_assets.stripe.client import STRIPE_API_VERSION, ChargesClient
from recon_assets.stripe.events import (
    CHARGE_EVENT_TYPES,
    STRIPE_EVENT_RETENTION_S,
    EventsOrderError,
    EventsRetentionError,
    Latest,
    NewestStates,
    backfill_days,
    plan_read,
    read_charge_events,
    sync_charge_events,
)
from recon_assets.stripe.ratelimit import RateLimiter
from recon_assets.timewindows import day_window

NOW = int(datetime(2024, 3, 20, 12, tzinfo=UTC).timestamp())
FIELDS = ("status", "captured", "amount_captured", "amount_refunded", "disputed", "description")


def cfg(**kw: object) -> EmulatorConfig:
    base: dict = dict(seed=7, charges_per_day=400, start_date=date(2024, 2, 1),
                      end_date=date(2024, 3, 25), now=NOW)  # fmt: skip
    base.update(kw)
    return EmulatorConfig(**base)


DISPUTE_OWN = frozenset(
    {"charge.dispute.funds_withdrawn", "charge.dispute.closed", "charge.dispute.funds_reinstated"}
)


def expected_change(type_: str, old: dict, new: dict) -> bool:
    """Does the charge's change between just before and at the event fit the event's type?"""
    if type_ == "charge.succeeded":
        return old["status"] == "pending" and new["status"] == "succeeded"
    if type_ == "charge.failed":
        return old["status"] == "pending" and new["status"] == "failed"
    if type_ == "charge.captured":
        return not old["captured"] and new["captured"] and new["amount_captured"] > 0
    if type_ == "charge.refunded":
        return new["amount_refunded"] > old["amount_refunded"]
    if type_ == "charge.dispute.created":
        return not old["disputed"] and new["disputed"]
    if type_ == "charge.updated":
        return old["description"] != new["description"]
    return False


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), start_day=st.integers(0, 40), hours=st.integers(1, 96))
def test_events_are_exactly_the_changes_of_the_account(
    seed: int, start_day: int, hours: int
) -> None:
    """Every event's charge changed at that instant as its type says; every charge that changed
    between two instants has an event in between."""
    c = cfg(seed=seed)
    gen = ChargeGenerator(c)
    log = EventLog(gen)
    t0 = day_window(date(2024, 2, 1) + timedelta(days=start_day)).start
    t1 = t0 + hours * 3600
    every = log.list(t0, t1 + 1, t1 + 1, lambda _: True)
    # those that change the charge (a dispute's withdrawal, decision and reinstatement change
    # the Dispute, not its charge: tests/test_stripe_disputes.py)
    events = [e for e in every if e.refund < 0 and e.type not in DISPUTE_OWN]
    by_charge: dict[int, list] = {}
    for e in events:
        old = gen.get(gen.charge_id(e.position), now=e.created - 1)
        new = gen.get(gen.charge_id(e.position), now=e.created)
        assert old is not None and new is not None
        assert expected_change(e.type, old, new), (e, old, new)
        by_charge.setdefault(e.position, []).append(e)
    # charges created up to 73 h before t0 can change in [t0, t1]
    lo = t0 - 80 * 3600
    for g in range(gen.timeline.lower(lo), gen.timeline.lower(t1)):
        cid = gen.charge_id(g)
        a, b = gen.get(cid, now=max(t0 - 1, gen.created_at(g))), gen.get(cid, now=t1)
        assert a is not None and b is not None
        if any(a[f] != b[f] for f in FIELDS) and gen.created_at(g) < t0:
            assert g in by_charge, (cid, a, b)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), start_day=st.integers(0, 40), hours=st.integers(1, 96))
def test_refund_events_are_exactly_the_changes_of_the_refunds(
    seed: int, start_day: int, hours: int
) -> None:
    """Each refund event's refund changed at that instant as its type says (created, settled,
    failed), and its charge's amount_refunded agrees with the charge's refunds at every
    instant: a refund and its charge never disagree."""
    gen = ChargeGenerator(cfg(seed=seed))
    log = EventLog(gen)
    book = log.refunds
    t0 = day_window(date(2024, 2, 1) + timedelta(days=start_day)).start
    t1 = t0 + hours * 3600
    events = [e for e in log.list(t0, t1 + 1, t1 + 1, lambda _: True) if e.refund >= 0]
    assert all(e.type in ("refund.created", "refund.updated", "refund.failed",
                          "charge.refund.updated") for e in events)  # fmt: skip

    def state(g: int, n: int, now: int) -> str | None:
        r = next((r for r in book.of_charge(g, now) if r.n == n), None)
        return None if r is None else r.status(now)

    for e in events:
        before, at = (
            state(e.position, e.refund, e.created - 1),
            state(e.position, e.refund, e.created),
        )
        if e.type == "refund.created":
            assert before is None and at is not None, e
        elif e.type == "refund.updated":
            assert (before, at) == ("pending", "succeeded"), e
        elif e.type == "refund.failed":
            assert before != "failed" and at == "failed", e
    for g in {e.position for e in events}:
        charge = gen.get(gen.charge_id(g), now=t1)
        assert charge is not None
        live = sum(r.amount for r in book.of_charge(g, t1) if r.status(t1) != "failed")
        assert charge["amount_refunded"] == live


def test_a_listing_is_kept_for_its_pages_and_follows_the_clock_and_the_filter() -> None:
    """The server pages through one kept listing (deriving it per page made paging quadratic);
    a kept listing is only ever reused for the same bounds, instant and filter."""
    log = EventLog(ChargeGenerator(cfg()))
    since = NOW - 3 * 86400
    first = log.listing(since, None, NOW, None, [])
    assert first.events == log.list(since, None, NOW, lambda _: True)
    assert len(first.events) > 20
    assert all(first.events[i].id == eid for eid, i in first.index.items())
    assert log.listing(since, None, NOW, None, []) is first
    # a later instant lists the events created since, newest first, ahead of the kept ones
    later = NOW + 6 * 3600
    moved = log.listing(since, None, later, None, [])
    assert moved.events == log.list(since, None, later, lambda _: True)
    assert len(moved.events) > len(first.events) and moved.events[-1] == first.events[-1]
    # another filter is another listing
    refunds = log.listing(since, None, NOW, None, ["charge.refunded"])
    assert refunds.events and {e.type for e in refunds.events} == {"charge.refunded"}
    assert log.listing(since, None, NOW, "charge.refund*", []).events != first.events


def test_paging_filters_and_retention_over_http() -> None:
    old_cid = None
    gen = ChargeGenerator(cfg())
    w = day_window(date(2024, 2, 10))
    old_cid = next(iter(gen.iter_charges(w.start, w.end)))["id"]
    recent = next(iter(gen.iter_charges(NOW - 86400, NOW - 3600)))["id"]
    changes = (
        ChargeChange(old_cid, w.end + 3600, "refund"),  # 38 days ago: past the retention
        ChargeChange(recent, NOW - 600, "update", description="re-described"),
    )
    with StripeEmulator(cfg(changes=changes), host="127.0.0.1", port=0) as emu:
        sdk = stripe.StripeClient(cfg().api_key, base_addresses={"api": emu.base_url})

        def listing(**params: object) -> dict:
            return sdk.raw_request("get", "/v1/events", **params).data

        everything = []
        after = None
        while True:
            page = listing(limit=7, **({"starting_after": after} if after else {}))
            everything += page["data"]
            if not page["has_more"]:
                break
            after = page["data"][-1]["id"]
        assert len(everything) > 20
        keys = [(e["created"], e["id"]) for e in everything]
        assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
        assert min(e["created"] for e in everything) >= NOW - EVENT_RETENTION_S
        assert old_cid not in {e["data"]["object"].get("id") for e in everything}
        # ending_before: the page just newer than a cursor, newest first
        mid = everything[10]["id"]
        newer = listing(limit=3, ending_before=mid)["data"]
        assert [e["id"] for e in newer] == [e["id"] for e in everything[7:10]]
        # filters
        updated = listing(type="charge.updated")["data"]
        assert [e["data"]["object"]["id"] for e in updated] == [recent]
        assert updated[0]["data"]["object"]["description"] == "re-described"
        disputes = listing(type="charge.dispute.*", limit=100)["data"]
        assert all(e["data"]["object"]["object"] == "dispute" for e in disputes)
        two = listing(types=["charge.refunded", "charge.captured"], limit=100)["data"]
        assert {e["type"] for e in two} <= {"charge.refunded", "charge.captured"}
        # an unknown cursor is Stripe's 400, not an empty page
        with pytest.raises(stripe.InvalidRequestError):
            listing(starting_after="evt_nope")


def _merged(batches: list[dict[str, Latest]]) -> dict[str, Latest]:
    """Every batch's ids by kind, asserting that no id was handed on twice."""
    out: dict[str, Latest] = {}
    for b in batches:
        for kind, latest in b.items():
            into = out.setdefault(kind, {})
            assert not set(into) & set(latest), "an id handed on in two batches"
            into.update(latest)
    return out


def test_latest_state_per_charge_and_when_to_retrieve() -> None:
    gen = ChargeGenerator(cfg())
    a, b = (c["id"] for c in list(gen.iter_charges(NOW - 2 * 86400, NOW - 86400))[:2])
    changes = (
        ChargeChange(a, NOW - 5000, "refund", amount=50),
        ChargeChange(a, NOW - 4000, "update", description="later"),
        ChargeChange(b, NOW - 3000, "refund", amount=10),  # two events of b in one second
        ChargeChange(b, NOW - 3000, "dispute"),
    )
    with StripeEmulator(cfg(changes=changes), host="127.0.0.1", port=0) as emu:
        client = ChargesClient(cfg().api_key, api_base=emu.base_url, rate_limiter=RateLimiter(1e6))
        whole, one = NewestStates(batch=10**9), NewestStates(batch=1)
        # two days of events: several pages, so the read can hand on before its end
        at_once = list(read_charge_events(client, NOW - 2 * 86400, whole))
        by_one = list(read_charge_events(client, NOW - 2 * 86400, one))
    assert len(at_once) == 1 and len(by_one) > 1  # the read is handed on in batches
    got = _merged(by_one)
    assert got == _merged(at_once)
    assert one.events == whole.events == sum(one.types.values())
    created, obj = got["charge"][a]
    assert created == NOW - 4000 and obj["description"] == "later"  # the newest event's object
    assert obj["amount_refunded"] == 50
    assert got["charge"][b] == (NOW - 3000, None)  # ambiguous order in one second: retrieve
    assert got["dispute"] and got["refund"]  # their own objects, by id


@st.composite
def newest_first_events(draw: st.DrawFn) -> list[dict]:
    """Charge and refund events over a few ids, newest first, with many in one second."""
    n = draw(st.integers(0, 60))
    steps = draw(st.lists(st.sampled_from([0, 0, 1, 2]), min_size=n, max_size=n))
    out, t = [], 10_000
    for i, step in enumerate(steps):
        t -= step
        kind = draw(st.sampled_from(["charge", "refund"]))
        cid = f"ch_{draw(st.integers(0, 6))}"
        obj = (
            {"object": "charge", "id": cid, "n": i}
            if kind == "charge"
            else {"object": "refund", "id": f"re_{draw(st.integers(0, 3))}", "charge": cid}
        )
        pinned = draw(st.booleans()) or kind == "refund"
        version = STRIPE_API_VERSION if pinned else "2020-08-27"
        out.append({"id": f"evt_{i}", "created": t, "type": f"{kind}.updated",
                    "api_version": version, "data": {"object": obj}})  # fmt: skip
    return out


@settings(max_examples=150, deadline=None)
@given(events=newest_first_events(), batch=st.integers(1, 8), page=st.integers(1, 7))
def test_batches_settle_exactly_what_the_whole_read_would(
    events: list[dict], batch: int, page: int
) -> None:
    """Handed on in batches of any size, read in pages of any size: each id once, at the state
    the whole read gives (the newest event's object; None for a tie in its newest second), and
    after each batch nothing is held back but the ids of the oldest second read."""
    whole = NewestStates(batch=10**9)
    for ev in events:
        whole.observe(ev)
    expected = whole.take(everything=True)
    states, batches = NewestStates(batch=batch), []
    for i in range(0, len(events), page):
        for ev in events[i : i + page]:
            states.observe(ev)
        if i + page < len(events) and states.held_back >= batch:
            batches.append(states.take())
            # all that stays is of the oldest second read: a later event may still tie it
            held = [c for v in states.pending.values() for c, _ in v.values()]
            assert set(held) <= {states.oldest} and len(held) == states.held_back
    batches.append(states.take(everything=True))
    assert _merged(batches) == {k: v for k, v in expected.items() if v}
    assert states.held_back == 0


def test_an_event_older_first_is_refused() -> None:
    states = NewestStates()
    states.observe({"id": "evt_1", "created": 100, "type": "charge.updated", "data": {}})
    with pytest.raises(EventsOrderError, match="newest first"):
        states.observe({"id": "evt_2", "created": 101, "type": "charge.updated", "data": {}})


def test_event_types_fit_one_request_and_a_filter_matches_stripe() -> None:
    assert len(CHARGE_EVENT_TYPES) <= 20
    keep = type_filter("charge.dispute.*", [])
    assert keep("charge.dispute.created") and not keep("charge.refunded")
    assert type_filter(None, ["charge.refunded"])("charge.refunded")


DAY = 86400


def test_plan_read_never_skips_silently() -> None:
    now = int(datetime(2024, 6, 1, 12, tzinfo=UTC).timestamp())
    days = [date(2024, 5, 31)]
    # no cursor yet: from the first loaded day, at most 30 days back
    assert plan_read(None, date(2024, 5, 20), now, days, 120) == day_window(date(2024, 5, 20)).start
    assert plan_read(None, date(2023, 1, 1), now, days, 120) == now - STRIPE_EVENT_RETENTION_S
    # a cursor within the retention: from the cursor
    assert plan_read(now - 3 * DAY, None, now, days, 120) == now - 3 * DAY
    # older than the retention: refused, naming the backfill range
    cursor = now - 40 * DAY
    first, last = backfill_days(cursor, now, 120)
    assert first == date(2024, 4, 22) - timedelta(days=120)
    assert last == date(2024, 5, 2)
    with pytest.raises(EventsRetentionError) as err:
        plan_read(cursor, None, now, days, 120)
    assert f"backfill {first.isoformat()} through {last.isoformat()}" in str(err.value)
    assert "RECON_DEEP_RESTATE_DAYS" in str(err.value)
    # a run that re-pulls that whole range is the backfill: it reads from the oldest event kept
    covering = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    assert plan_read(cursor, None, now, covering, 120) == now - STRIPE_EVENT_RETENTION_S
    # ... and one that covers only part of it is still refused
    with pytest.raises(EventsRetentionError):
        plan_read(cursor, None, now, covering[1:], 120)


def _staged_rows(store: LocalStageStore, manifest: KeyedManifest) -> list[dict]:
    rows = [
        {k: v for k, v in row.items() if k not in ("_run_id", "_synced_at")}
        for f in manifest.files
        for row in pq.read_table(store.uri(f.key)).to_pylist()
    ]
    return sorted(rows, key=lambda r: r["id"])


def test_a_read_staged_batch_by_batch_is_the_read_staged_at_once(tmp_path: Path) -> None:
    """Three days of events (hundreds, several pages), settled, looked up and staged one id at a
    time or all at once: the same rows on the same days, the same counts, for charges and for
    the refunds, disputes and payouts the events carried; only a part of the charges held."""
    window = day_window(date(2024, 3, 17))
    run_days = [date(2024, 3, 17), date(2024, 3, 18), date(2024, 3, 19)]

    def held(ids: Sequence[str]) -> set[str]:
        return {i for i in ids if i[-1] in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}

    results = {}
    with StripeEmulator(cfg(charges_per_day=1500), host="127.0.0.1", port=0) as emu:
        for batch in (1, 10**9):
            store = LocalStageStore(tmp_path / str(batch))
            client = ChargesClient(
                cfg().api_key, api_base=emu.base_url, rate_limiter=RateLimiter(1e6)
            )
            results[batch] = (store, sync_charge_events(
                client, store, f"run-{batch}", cursor=window.start, earliest_loaded=None,
                run_days=run_days, now_hint=NOW, held=held, horizon_days=120, overlap_s=0,
                concurrency=4, held_own=lambda source: lambda ids: set(ids),
            ))  # fmt: skip
    (one_store, one), (all_store, whole) = results[1], results[10**9]
    assert whole.events > 500 and whole.retrieved > 0 and 0 < whole.not_held < whole.changed
    for name in ("events", "types", "changed", "not_held", "repulled", "retrieved", "found_by_day",
                 "own_repulled", "read_until"):  # fmt: skip
        assert getattr(one, name) == getattr(whole, name), name
    assert _staged_rows(one_store, one.manifest) == _staged_rows(all_store, whole.manifest)
    assert {m.dataset for m in whole.own_manifests} == {
        "stripe_refunds",
        "stripe_disputes",
        "stripe_payouts",
    }
    for a, b in zip(one.own_manifests, whole.own_manifests, strict=True):
        assert a.dataset == b.dataset and a.rows == b.rows > 0
        assert _staged_rows(one_store, a) == _staged_rows(all_store, b)
