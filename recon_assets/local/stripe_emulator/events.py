"""Stripe's Events API over the emulated account: every change its charges go through, as events.

The account's events are not stored: they are the seeded changes of its charges
(`charges.seeded_changes`, the very bits that decide what a charge looks like at a given `now`)
plus the hand-made `ChargeChange`s. An event created at `t` carries the charge rendered at `t`,
so its object is the charge as it was then; a dispute event carries the charge's Dispute as it was
then (disputes.py), as Stripe's do. Only events created within the last 30 days (of the emulator's clock) are
listed, whatever the filter asks, which is what a pipeline that was down for longer must notice
on its own.
"""

from __future__ import annotations

import fnmatch
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from recon_assets.local.stripe_emulator.charges import (
    MAX_SEEDED_DELAY,
    ChargeGenerator,
    change_event_type,
)
from recon_assets.local.stripe_emulator.config import API_VERSION, EVENT_RETENTION_S
from recon_assets.local.stripe_emulator.disputes import DisputeBook
from recon_assets.local.stripe_emulator.ids import ALNUM_TABLE
from recon_assets.local.stripe_emulator.payouts import PayoutBook
from recon_assets.local.stripe_emulator.refunds import RefundBook

EVENTS_URL = "/v1/events"


@dataclass(frozen=True)
class Event:
    created: int
    id: str
    type: str
    position: int
    """The charge's position in the account (`ChargeGenerator`)."""
    refund: int = -1
    """For an event that carries a Refund: the refund's index among its charge's."""
    payout: str = ""
    """For an event that carries a Payout: its id (`position` is then -1)."""


def type_filter(type_: str | None, types: list[str]) -> Callable[[str], bool]:
    """Stripe's `type` (one name, `*` wildcards allowed) and `types[]` (exact names), ANDed."""
    wanted = set(types)

    def keep(name: str) -> bool:
        if type_ is not None and not fnmatch.fnmatchcase(name, type_):
            return False
        return not wanted or name in wanted

    return keep


@dataclass(frozen=True)
class Listing:
    """One filter's events at one instant, newest first, and where each id sits in them."""

    events: list[Event]
    index: dict[str, int] = field(repr=False)


LISTINGS_KEPT = 4
"""Listings kept for the pages that follow (a reader pages through one listing at a time)."""


class EventLog:
    """The account's events, derived on demand from its generator."""

    def __init__(
        self,
        gen: ChargeGenerator,
        refunds: RefundBook | None = None,
        payouts: PayoutBook | None = None,
        disputes: DisputeBook | None = None,
    ) -> None:
        self.gen = gen
        self.refunds = refunds or RefundBook(gen)
        self.disputes = disputes or DisputeBook(gen)
        """The account's disputes: every `charge.dispute.*` event carries one."""
        self.payouts = payouts
        """The account's payouts, whose events (created, paid, failed) carry the Payout."""
        self._seed = gen.cfg.seed
        self._listings: OrderedDict[tuple[object, ...], Listing] = OrderedDict()
        self._lock = threading.Lock()

    def listing(
        self, gte: int | None, lt: int | None, now: int, type_: str | None, types: Sequence[str]
    ) -> Listing:
        """`list` for one request's filter, kept for the requests that page through it.

        Deriving a listing costs time in proportion to every event in its range (a digest per
        event id, then a sort), so deriving it again for each page made paging through N events
        cost N^2 / page size: 30 k events of a 30-day first backfill took 70 s of the run, the
        emulator's own time. The account's events at a given instant never change (its changes
        are fixed when it is built), so a listing keyed by its bounds at that instant and its
        filter is the same listing on the next page; on a running clock the key moves each
        second, and a page of a later second derives its listing afresh, as before.
        """
        lo, hi = self._bounds(gte, lt, now)
        key = (lo, hi, type_, tuple(sorted(set(types))))
        with self._lock:
            got = self._listings.get(key)
            if got is not None:
                self._listings.move_to_end(key)
                return got
        events = self.list(gte, lt, now, type_filter(type_, list(types)))
        got = Listing(events, {e.id: i for i, e in enumerate(events)})
        with self._lock:
            self._listings[key] = got
            while len(self._listings) > LISTINGS_KEPT:
                self._listings.popitem(last=False)
        return got

    @staticmethod
    def _bounds(gte: int | None, lt: int | None, now: int) -> tuple[int, int]:
        """[lo, hi) of the events that exist at `now` with gte <= created < lt."""
        lo = max(gte if gte is not None else 0, now - EVENT_RETENTION_S)
        hi = min(lt if lt is not None else now + 1, now + 1)
        return lo, hi

    def event_id(self, position: int, type_: str, created: int, refund: int = -1) -> str:
        key = f"{self._seed}:{position}:{type_}:{created}" + (f":{refund}" if refund >= 0 else "")
        digest = hashlib.blake2b(key.encode(), digest_size=24, person=b"evt").digest()
        return "evt_3" + digest[:23].translate(ALNUM_TABLE).decode()

    def list(
        self, gte: int | None, lt: int | None, now: int, keep: Callable[[str], bool]
    ) -> list[Event]:
        """Events with gte <= created < lt that exist at `now` (created within the retention and
        not after `now`), newest first by (created, id)."""
        lo, hi = self._bounds(gte, lt, now)
        if hi <= lo:
            return []
        gen, tl = self.gen, self.gen.timeline
        out: list[Event] = []
        # only charges created in [lo - longest seeded delay, hi) can have seeded changes in range
        p0, p1 = tl.lower(lo - MAX_SEEDED_DELAY), tl.lower(hi)
        if p0 < p1:
            k0, k1 = tl.locate(p0)[0], tl.locate(p1 - 1)[0]
            for k in range(k0, k1 + 1):
                for t, type_, g in gen.day_changes(k):
                    if lo <= t < hi and keep(type_):
                        out.append(Event(t, self.event_id(g, type_, t), type_, g))
        for g, changes in gen.changes.items():
            for ch in changes:
                type_ = change_event_type(ch)
                # a refund failing and a dispute closing are their objects' own events (below)
                if ch.kind not in ("refund_fail", "dispute_close") and lo <= ch.at < hi \
                        and keep(type_):  # fmt: skip
                    out.append(Event(ch.at, self.event_id(g, type_, ch.at), type_, g))
        # the refunds' own events carry the Refund (a refund failing is only theirs)
        for t, type_, r in self.refunds.events(lo, hi):
            if keep(type_):
                eid = self.event_id(r.charge_position, type_, t, r.n)
                out.append(Event(t, eid, type_, r.charge_position, r.n))
        for t, type_, d in self.disputes.events(lo, hi):
            if keep(type_):
                out.append(Event(t, self.event_id(d.charge_position, type_, t), type_,
                                 d.charge_position))  # fmt: skip
        if self.payouts is not None:
            for t, type_, p in self.payouts.events(lo, hi):
                if keep(type_):
                    eid = self.event_id(-1, f"{type_}:{p.id}", t)
                    out.append(Event(t, eid, type_, -1, payout=p.id))
        out.sort(key=lambda e: (e.created, e.id), reverse=True)
        return out

    def render(self, event: Event) -> str:
        """The event's JSON: Stripe's envelope around the object as it was at `created`."""
        if event.payout:
            assert self.payouts is not None
            p = self.payouts.get(event.payout, event.created)
            assert p is not None
            text = p.render(event.created)
        elif event.refund >= 0:
            r = next(
                r for r in self.refunds.of_charge(event.position, event.created)
                if r.n == event.refund
            )  # fmt: skip
            text = self.refunds.render(r, event.created)
        elif event.type.startswith("charge.dispute."):
            d = self.disputes.of_charge(event.position, event.created)
            assert d is not None
            text = d.render(event.created)
        else:
            text = self.gen.render_span(event.position, event.position + 1, event.created)[0]
        return (
            f'{{"id":"{event.id}","object":"event","api_version":"{API_VERSION}",'
            f'"created":{event.created},"data":{{"object":{text}}},"livemode":false,'
            f'"pending_webhooks":0,"request":{{"id":null,"idempotency_key":null}},'
            f'"type":"{event.type}"}}'
        )
