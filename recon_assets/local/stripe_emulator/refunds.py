"""Refund objects of the emulated account: `GET /v1/refunds` (list, by id) and their events.

Refunds are not stored: each is derived from its charge, so a refund and the charge's
`amount_refunded` can never disagree. A charge's refund 0 is its seeded refund (the seeded life
of `charges.seeded_changes`: 5 % of captured charges, half in full, 1..72 h after `created`); its
refunds 1, 2, ... are hand-made `refund` changes, and a `refund_fail` change fails the latest
one (`charges.apply_changes` replays them, the same replay that sets the charge's amount). One
seeded refund in eight is `pending` for 1..72 hours before it succeeds, as bank refunds are.

A refund id is `re_` + its charge's 24 id characters + the refund's index in base 62, so a
look-up by id needs no table and an id of another account is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from recon_assets.local.stripe_emulator.charges import (
    HOUR,
    MAX_SEEDED_DELAY,
    ChargeGenerator,
    HandRefund,
    apply_changes,
)
from recon_assets.local.stripe_emulator.ids import ALPHABET, BODY_LEN, CHARGE_PREFIX

REFUNDS_URL = "/v1/refunds"
REFUND_PREFIX = "re_"
_P_PENDING_REFUND = 32
"""Of 256: one seeded refund in eight is pending before it succeeds."""
_PENDING_SPAN = 71 * HOUR + 1


@dataclass(frozen=True)
class Refund:
    """One refund's whole life: created, amount, and when it settles or fails (None: never)."""

    charge_position: int
    n: int
    created: int
    amount: int
    succeeded_at: int | None
    failed_at: int | None

    def status(self, now: int) -> str:
        if self.failed_at is not None and now >= self.failed_at:
            return "failed"
        if self.succeeded_at is not None and now >= self.succeeded_at:
            return "succeeded"
        return "pending"


def refund_id(charge_id: str, n: int) -> str:
    return REFUND_PREFIX + charge_id[len(CHARGE_PREFIX) :] + ALPHABET[n]


def split_refund_id(rid: str) -> tuple[str, int] | None:
    """(charge id, refund index) of a well-formed refund id, or None."""
    if not isinstance(rid, str) or len(rid) != len(REFUND_PREFIX) + BODY_LEN + 1:
        return None
    if not rid.startswith(REFUND_PREFIX) or rid[-1] not in ALPHABET:
        return None
    return CHARGE_PREFIX + rid[len(REFUND_PREFIX) : -1], ALPHABET.index(rid[-1])


class RefundBook:
    """The account's refunds, derived on demand from its charges."""

    def __init__(self, gen: ChargeGenerator) -> None:
        self.gen = gen
        self._refund_times: dict[int, dict[int, int]] = {}

    def _seeded_times(self, k: int) -> dict[int, int]:
        """Day k's charges with a seeded refund: position -> when it is created (cached, few)."""
        got = self._refund_times.get(k)
        if got is None:
            got = {g: t for t, kind, g in self.gen.day_changes(k) if kind == "charge.refunded"}
            if len(self._refund_times) > 64:
                self._refund_times.clear()
            self._refund_times[k] = got
        return got

    def _seeded(self, g: int, t: int, now: int) -> Refund:
        """Charge g's seeded refund, created at t (a `charge.refunded` of its seeded life)."""
        k, i = self.gen.timeline.locate(g)
        h = int.from_bytes(self.gen._digest(k, i)[32:], "little")
        # the refunded amount is fixed once the refund exists: read it from the charge then
        raw = json.loads(self.gen._render_day(k, i, i + 1, max(now, t))[0])
        pending = ((h >> 200) & 0xFF) < _P_PENDING_REFUND
        settles = t + HOUR + ((h >> 208) & 0x3FFFF) % _PENDING_SPAN if pending else t
        return Refund(g, 0, t, int(raw["amount_refunded"]), settles, None)

    def of_charge(self, g: int, now: int) -> list[Refund]:
        """Every refund charge g has at `now` (created at or before it), by index."""
        k, i = self.gen.timeline.locate(g)
        out: dict[int, Refund] = {}
        t = self._seeded_times(k).get(g)
        if t is not None and t <= now:
            out[0] = self._seeded(g, t, now)
        changes = self.gen.changes.get(g)
        if changes:
            made: list[HandRefund] = []
            apply_changes(self.gen._render_day(k, i, i + 1, now)[0], changes, now, made)
            for r in made:
                if r.n == 0:
                    if 0 in out:
                        o = out[0]
                        out[0] = Refund(g, 0, o.created, o.amount, o.succeeded_at, r.failed_at)
                else:
                    out[r.n] = Refund(g, r.n, r.created, r.amount, r.created, r.failed_at)
        return [out[n] for n in sorted(out)]

    def in_window(self, lo: int, hi: int, now: int) -> list[Refund]:
        """Refunds created in [lo, hi) that exist at `now`, newest first by (created, id)."""
        hi = min(hi, now + 1)
        if hi <= lo:
            return []
        gen, tl = self.gen, self.gen.timeline
        out: list[Refund] = []
        seen: set[int] = set()
        p0, p1 = tl.lower(lo - MAX_SEEDED_DELAY), tl.lower(hi)
        if p0 < p1:
            k0, k1 = tl.locate(p0)[0], tl.locate(p1 - 1)[0]
            for k in range(k0, k1 + 1):
                for g, t in self._seeded_times(k).items():
                    if lo <= t < hi and g not in gen.changes:
                        out.append(self._seeded(g, t, now))
        for g in gen.changes:
            if g in seen or gen.created_at(g) >= hi:
                continue
            seen.add(g)
            out += [r for r in self.of_charge(g, now) if lo <= r.created < hi]
        out.sort(key=lambda r: (r.created, self.id_of(r)), reverse=True)
        return out

    def id_of(self, r: Refund) -> str:
        return refund_id(self.gen.charge_id(r.charge_position), r.n)

    def get(self, rid: str, now: int) -> Refund | None:
        parts = split_refund_id(rid)
        if parts is None:
            return None
        g = self.gen.position_of(parts[0], now)
        if g is None:
            return None
        return next((r for r in self.of_charge(g, now) if r.n == parts[1]), None)

    def render(self, r: Refund, now: int) -> str:
        """Every field of Stripe's published Refund object, as the refund stands at `now`."""
        charge = json.loads(self.gen.render_span(r.charge_position, r.charge_position + 1, now)[0])
        rid = self.id_of(r)
        status = r.status(now)
        body = {
            "id": rid,
            "object": "refund",
            "amount": r.amount,
            "balance_transaction": "txn_" + rid[3:],
            "charge": charge["id"],
            "created": r.created,
            "currency": charge["currency"],
            "customer": None,
            "customer_account": None,
            "destination_details": {"card": {"type": "refund"}, "type": "card"},
            "metadata": {},
            "payment_intent": charge.get("payment_intent"),
            "payment_method": charge.get("payment_method"),
            "reason": "requested_by_customer" if r.n else None,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": status,
            "transfer_reversal": None,
        }
        if status == "pending":
            body["pending_reason"] = "processing"
        if status == "failed":
            body["failure_balance_transaction"] = "txn_f" + rid[3:]
            body["failure_reason"] = "expired_or_canceled_card"
        return json.dumps(body, separators=(",", ":"))

    def events(self, lo: int, hi: int) -> list[tuple[int, str, Refund]]:
        """Refund events created in [lo, hi): `refund.created` when one is made, and
        `refund.updated` with `charge.refund.updated` when a pending one succeeds; a hand-made
        failure is `refund.failed` with `charge.refund.updated`. The refund is as of `hi`."""
        out: list[tuple[int, str, Refund]] = []
        gen, tl = self.gen, self.gen.timeline
        span = MAX_SEEDED_DELAY + HOUR + _PENDING_SPAN
        p0, p1 = tl.lower(lo - span), tl.lower(hi)
        candidates: set[int] = set(gen.changes)
        if p0 < p1:
            k0, k1 = tl.locate(p0)[0], tl.locate(p1 - 1)[0]
            for k in range(k0, k1 + 1):
                candidates |= set(self._seeded_times(k))
        for g in candidates:
            if gen.created_at(g) >= hi:
                continue
            for r in self.of_charge(g, hi - 1):
                if lo <= r.created < hi:
                    out.append((r.created, "refund.created", r))
                settled = r.succeeded_at
                if settled is not None and settled != r.created and lo <= settled < hi:
                    out += [(settled, "refund.updated", r),
                            (settled, "charge.refund.updated", r)]  # fmt: skip
                if r.failed_at is not None and lo <= r.failed_at < hi:
                    out += [(r.failed_at, "refund.failed", r),
                            (r.failed_at, "charge.refund.updated", r)]  # fmt: skip
        return out


def refunds_of_charge(book: RefundBook, charge_id: str, now: int) -> list[dict]:
    """A charge's refunds at `now` as Stripe renders them, for local tooling (the ledger
    seeder), each with two hints no API response has: `_settled_at` (when it succeeded, or
    None) and `_failed_at` (when it failed, or None)."""
    g = book.gen.position_of(charge_id, now)
    if g is None:
        return []
    out = []
    for r in book.of_charge(g, now):
        d = json.loads(book.render(r, now))
        d["_settled_at"] = (
            r.succeeded_at if r.succeeded_at is not None and r.succeeded_at <= now else None
        )
        d["_failed_at"] = r.failed_at if r.failed_at is not None and r.failed_at <= now else None
        out.append(d)
    return out
