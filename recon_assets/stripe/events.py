"""Late changes from Stripe's Events API: the charges that changed since the stored cursor, at
their latest state, staged for a load by id.

A day's charges keep changing after the day: bank debits settle days later, authorizations are
captured (in full or for less), refunds and disputes land weeks later. The nightly re-states a
few trailing days; everything older is reached through `GET /v1/events`, which Stripe keeps for
30 days. Each run reads the charge events created since the cursor (minus an overlap, since an
event can become listable a moment after a later one), keeps the newest state of each charge
the warehouse holds, and stages it; the load by id then makes the marts rebuild that charge on
its own day, whatever day the run covers. Events come newest first, so each id's state is
settled as soon as an older event has been read, and the read is looked up and staged in
batches: a first backfill's 30 days of events never sit in memory at once.

The newest state is the newest event's object when that is unambiguous (a charge, rendered in
our pinned API version, and no other event of that charge in the same second); otherwise the
charge is retrieved by id through the same client and limiter (a dispute or refund event carries
a Dispute or a Refund, not the charge).

The cursor lives in the warehouse (`raw.stripe_event_reads`, written in the load's transaction),
never only in memory. A cursor older than the retention means events were lost: the run fails
and names the days a single backfill run must re-pull (every charge created from the horizon
before the cursor through the oldest day events still cover); a run whose own range covers
those days is what that backfill is, and it restarts the cursor at the oldest event Stripe holds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from recon_assets.stage.manifest import EventsRead, KeyedManifest, write_keyed_manifest
from recon_assets.stage.store import StageStore
from recon_assets.stripe.client import STRIPE_API_VERSION, ChargesClient
from recon_assets.stripe.lookup import ByIdStage
from recon_assets.stripe.pull import DATASET
from recon_assets.stripe.sources import CHARGES, DISPUTES, PAYOUTS, REFUNDS, StripeSource
from recon_assets.timewindows import business_day_of, day_window

EVENTS_KIND = "events"
STRIPE_EVENT_RETENTION_S = 30 * 86400
"""Stripe lists events of the last 30 days only."""
CHARGE_EVENT_TYPES = (
    "charge.captured",
    "charge.expired",
    "charge.failed",
    "charge.refunded",
    "charge.succeeded",
    "charge.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "charge.refund.updated",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "payout.paid",
    "payout.failed",
    "payout.updated",
    "payout.canceled",
)
"""Every event that changes a field the reconciliation or the report reads, of a charge, a
refund, a dispute or a payout (at most 20 types per request)."""

OWN_ITEMS: dict[str, StripeSource] = {"refund": REFUNDS, "dispute": DISPUTES, "payout": PAYOUTS}
"""Objects an event can carry that are items of their own (by Stripe's `object` name): each is
re-pulled at its latest state, as the charges are, when the warehouse holds it."""


class EventsRetentionError(RuntimeError):
    """The cursor is older than Stripe keeps events: changes were lost; names the backfill."""


EVENTS_BATCH = 2_000
"""Objects an events read settles before it looks them up and stages them: what the run holds
of a read of any size (a first backfill reads every charge of 30 days)."""

Latest = dict[str, tuple[int, Any]]
"""Per id: its newest event's time and, when that event's object can be trusted as the
object's latest state, the object (else None: fetch it by id)."""


class EventsOrderError(RuntimeError):
    """Stripe listed an event after an older one: the list is not newest first, so which
    state is the latest cannot be told while reading."""


def _keep_newest(latest: Latest, key: str, created: int, obj: Any) -> None:
    """The newest event's object per key; two of one key in one second: their order is not the
    change order, so neither object is trusted (None: fetch it by id)."""
    seen = latest.get(key)
    if seen is None or created > seen[0]:
        latest[key] = (created, obj)
    elif created == seen[0]:
        latest[key] = (created, None)


def charge_id_of(event: Any) -> str | None:
    """The charge an event is about: its object (a charge), or the object's `charge`."""
    obj = event.get("data", {}).get("object") if isinstance(event, dict) else None
    if not isinstance(obj, dict):
        return None
    if obj.get("object") == "charge":
        cid = obj.get("id")
    else:
        cid = obj.get("charge")
        if isinstance(cid, dict):  # expanded
            cid = cid.get("id")
    return cid if isinstance(cid, str) and cid else None


CHARGE = "charge"


@dataclass
class NewestStates:
    """The newest event's object per charge (and per object of `OWN_ITEMS` an event carried,
    by Stripe's `object` name: a refund that settles or fails after its day, a payout paid and
    returned days after it arrived), from events read newest first, handed on in batches.

    Stripe lists events newest first, so once an event older than an id's newest one has been
    read, no later event can be newer than that id's or tie it: the id is settled and leaves
    memory with its batch. Only the ids themselves are kept after that, to skip their older
    events; the objects of a read of any size never are all in memory at once."""

    batch: int = EVENTS_BATCH
    events: int = 0
    newest: int | None = None
    oldest: int | None = None
    types: Counter[str] = field(default_factory=Counter)
    pending: dict[str, Latest] = field(default_factory=dict)
    settled: dict[str, set[str]] = field(default_factory=dict)

    @property
    def held_back(self) -> int:
        """Ids read and not handed on yet."""
        return sum(map(len, self.pending.values()))

    def observe(self, ev: Any) -> None:
        """One event of the read, in the list's order."""
        self.events += 1
        created = ev.get("created") if isinstance(ev, dict) else None
        if not isinstance(created, int):
            return
        if self.oldest is not None and created > self.oldest:
            raise EventsOrderError(
                f"Stripe listed event {ev.get('id')} (created {created}) after one created at "
                f"{self.oldest}: events must come newest first (GET /v1/events)"
            )
        self.oldest = created
        self.types[str(ev.get("type"))] += 1
        self.newest = created if self.newest is None else max(self.newest, created)
        obj = ev.get("data", {}).get("object")
        pinned = ev.get("api_version") == STRIPE_API_VERSION
        kind, oid = (obj.get("object"), obj.get("id")) if isinstance(obj, dict) else (None, None)
        if kind in OWN_ITEMS and isinstance(oid, str) and oid:
            self._add(str(kind), oid, created, obj if pinned else None)
        cid = charge_id_of(ev)
        if cid is not None:
            self._add(CHARGE, cid, created, obj if kind == CHARGE and pinned else None)

    def _add(self, kind: str, key: str, created: int, obj: Any) -> None:
        if key in self.settled.get(kind, ()):
            return  # an older event of an id whose newest was handed on
        _keep_newest(self.pending.setdefault(kind, {}), key, created, obj)

    def take(self, everything: bool = False) -> dict[str, Latest]:
        """The pending ids no later event can change (all of them at the read's end), by kind;
        they are settled from now on."""
        out: dict[str, Latest] = {}
        for kind, latest in self.pending.items():
            if everything or self.oldest is None:
                done = latest
                self.pending[kind] = {}
            else:
                done = {k: v for k, v in latest.items() if v[0] > self.oldest}
                for k in done:
                    del latest[k]
            if done:
                self.settled.setdefault(kind, set()).update(done)
                out[kind] = done
        return out


def read_charge_events(
    client: ChargesClient, since: int, states: NewestStates
) -> Iterator[dict[str, Latest]]:
    """Page through the charge events created at or after `since`, newest first, yielding the
    newest state of each id (by kind) in batches of about `states.batch` ids."""
    after: str | None = None
    while True:
        page = client.list_events(CHARGE_EVENT_TYPES, since, after)
        for ev in page.items:
            states.observe(ev)
        if not page.has_more or page.last_id is None:
            last = states.take(everything=True)
            if last:
                yield last
            return
        if states.held_back >= states.batch:
            settled = states.take()
            if settled:
                yield settled
        after = page.last_id


def backfill_days(cursor: int, stripe_now: int, horizon_days: int) -> tuple[date, date]:
    """The days whose charges may have changed in the events Stripe no longer holds: created
    from `horizon_days` before the cursor's day through the oldest day events still cover."""
    first = business_day_of(cursor) - timedelta(days=horizon_days)
    last = business_day_of(stripe_now - STRIPE_EVENT_RETENTION_S)
    return first, max(first, last)


def plan_read(
    cursor: int | None,
    earliest_loaded: date | None,
    stripe_now: int,
    run_days: Sequence[date],
    horizon_days: int,
) -> int:
    """Where this run's read starts (unix seconds), or `EventsRetentionError`.

    No cursor yet: from the first loaded day (or the run's first), at most 30 days back. A cursor
    older than the retention is accepted only by a run whose own range re-pulls every day
    `backfill_days` names; the read then starts at the oldest event Stripe still holds.
    """
    oldest_kept = stripe_now - STRIPE_EVENT_RETENTION_S
    if cursor is None:
        first = min(d for d in [earliest_loaded, *run_days] if d is not None)
        return max(day_window(first).start, oldest_kept)
    if cursor >= oldest_kept:
        return cursor
    first, last = backfill_days(cursor, stripe_now, horizon_days)
    if run_days and min(run_days) <= first and max(run_days) >= last:
        return oldest_kept
    since = datetime.fromtimestamp(cursor, UTC).isoformat()
    raise EventsRetentionError(
        f"Stripe events were last read up to {since}, more than 30 days ago (Stripe keeps "
        "events for 30 days), so changes to charges in between cannot be read any more. "
        f"Re-pull the days those charges may belong to: backfill {first.isoformat()} through "
        f"{last.isoformat()} as ONE run (in the UI: Materialize all, partition range "
        f"{first.isoformat()}...{last.isoformat()}; or `dagster asset materialize -m "
        f"recon_assets.definitions --select '*' --partition-range "
        f"{first.isoformat()}...{last.isoformat()}`); that run restarts the events cursor. "
        "The range starts RECON_DEEP_RESTATE_DAYS ({horizon_days}) days before the "
        "last read: the oldest a charge can be and still change."
    )


@dataclass(frozen=True)
class EventsResult:
    read_from: int
    read_until: int
    events: int
    types: dict[str, int]
    changed: int
    """Distinct charges the events named."""
    not_held: int
    """Of those, charges the warehouse does not hold (their day will be pulled whole)."""
    repulled: int
    """Charges staged at their latest state."""
    retrieved: int
    """Of those, fetched by id (the event's object was not the charge's latest state)."""
    not_found: int
    quarantined: int
    found_by_day: dict[date, int]
    manifest: KeyedManifest
    counters: dict[str, int]
    seconds: float
    own_manifests: tuple[KeyedManifest, ...] = ()
    """The refunds and payouts the events named that the warehouse holds, at their latest
    state (loaded by id before `manifest`, whose load moves the cursor)."""
    own_repulled: dict[str, int] = field(default_factory=dict)
    """Of those, how many were staged, by dataset."""


def _latest_held(
    client: ChargesClient,
    latest: Latest,
    held: Callable[[Sequence[str]], set[str]],
    source: StripeSource,
    pool: ThreadPoolExecutor,
) -> tuple[list[tuple[str, Any]], int]:
    """(id, latest state) of each object the events named that the warehouse holds, in id
    order: the newest event's object where it can be trusted, else `GET {source.path}/{id}`
    through the shared limiter; and how many were fetched so."""
    ids = sorted(latest)
    held_ids = held(ids) if ids else set()
    kept = [i for i in ids if i in held_ids]
    to_fetch = [i for i in kept if latest[i][1] is None]
    fetched = dict(
        zip(to_fetch, pool.map(lambda i: client.retrieve(i, source), to_fetch), strict=True)
    )
    return [(i, fetched[i] if i in fetched else latest[i][1]) for i in kept], len(to_fetch)


EVENT_SOURCES: dict[str, StripeSource] = {CHARGE: CHARGES, **OWN_ITEMS}


def sync_charge_events(
    client: ChargesClient,
    store: StageStore,
    run_id: str,
    *,
    cursor: int | None,
    earliest_loaded: date | None,
    run_days: Sequence[date],
    now_hint: int,
    held: Callable[[Sequence[str]], set[str]],
    horizon_days: int,
    overlap_s: int,
    concurrency: int,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    held_own: Callable[[StripeSource], Callable[[Sequence[str]], set[str]]] = (
        lambda source: lambda ids: set()
    ),
    batch: int = EVENTS_BATCH,
) -> EventsResult:
    """Read the events since the cursor, stage the latest state of every held charge they name,
    write the run's events manifest (with the read, for the loader to record).

    `now_hint` is a time Stripe's clock has certainly passed (the end of the run's range, at
    most the wall clock); the newest event read moves it further. `held(ids)` says which ids the
    warehouse holds, `held_own(source)` the same for a refund or payout. The read is settled,
    looked up and staged `batch` ids at a time, so its size never sets the run's memory.
    """
    started = time.perf_counter()
    since = plan_read(cursor, earliest_loaded, now_hint, run_days, horizon_days)
    read_from = max(0, since - overlap_s)
    states = NewestStates(batch=batch)
    synced = clock()
    stages = {CHARGE: ByIdStage(store, run_id, EVENTS_KIND, synced, keep_outcomes=False)}
    named: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    retrieved = 0
    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            for settled in read_charge_events(client, read_from, states):
                for kind, latest in settled.items():
                    source = EVENT_SOURCES[kind]
                    objects, n_fetched = _latest_held(
                        client, latest, held if kind == CHARGE else held_own(source), source,
                        pool,
                    )  # fmt: skip
                    named[kind] += len(latest)
                    kept[kind] += len(objects)
                    if kind == CHARGE:
                        retrieved += n_fetched
                    if objects:
                        if kind not in stages:
                            stages[kind] = ByIdStage(
                                store, run_id, EVENTS_KIND, synced, source, keep_outcomes=False
                            )
                        stages[kind].add(objects)
        stripe_now = max(now_hint, states.newest or 0)
        if stripe_now > now_hint:  # Stripe's clock is later than assumed: check again
            since = plan_read(cursor, earliest_loaded, stripe_now, run_days, horizon_days)
        staged = {kind: stage.commit() for kind, stage in stages.items()}
    except BaseException:
        for stage in stages.values():
            stage.abort()
        raise
    read_until = max(since, now_hint, (states.newest or 0) + 1)
    charges = staged.pop(CHARGE)
    # refunds, disputes and payouts: loaded before the charges, whose load moves the cursor
    own_manifests: list[KeyedManifest] = []
    own_found: dict[str, int] = {}
    for kind, source in OWN_ITEMS.items():
        own = staged.get(kind)
        if own is None:
            continue
        own_found[source.dataset] = own.counts["found"]
        m = KeyedManifest(
            source.dataset, run_id, EVENTS_KIND, own.files, written_at=synced.isoformat()
        )
        write_keyed_manifest(store, m)
        own_manifests.append(m)
    manifest = KeyedManifest(
        DATASET,
        run_id,
        EVENTS_KIND,
        charges.files,
        written_at=synced.isoformat(),
        events_read=EventsRead(read_from, read_until, states.events, charges.counts["found"]),
    )
    write_keyed_manifest(store, manifest)
    return EventsResult(
        read_from=read_from,
        read_until=read_until,
        events=states.events,
        types=dict(states.types),
        changed=named[CHARGE],
        not_held=named[CHARGE] - kept[CHARGE],
        repulled=charges.counts["found"],
        retrieved=retrieved,
        not_found=charges.counts["not_found"],
        quarantined=charges.counts["quarantined"],
        found_by_day=charges.found_by_day,
        manifest=manifest,
        counters=client.counters.as_dict(),
        seconds=time.perf_counter() - started,
        own_manifests=tuple(own_manifests),
        own_repulled=own_found,
    )
