"""Disputes of the emulated account: `GET /v1/disputes` (list, by id), their balance
transactions and their events.

A charge is disputed by its seeded life (`charges.seeded_changes`: 0.8 % of captured charges,
1..72 h after `created` or its capture) or by a hand-made `dispute` change. The dispute
withdraws the disputed amount (the charge's `amount_captured` then) plus a dispute fee from
the balance at once: one `adjustment` transaction, reporting category `dispute`, `amount` =
minus the amount, `fee` = the dispute fee. It `needs_response` for 7 days, is `under_review`
after, and is decided 30 days after it was opened (a hand-made `dispute_close` change decides
it when the change says, `outcome` won or lost): three in eight are `won`, and a won dispute
gives the amount back with a second `adjustment` (reporting category `dispute_reversal`, no
fee). The fee is not returned, as Stripe's is not.

Disputes are not stored: each is derived from its charge. A dispute's id is `dp_` + its
charge's 24 id characters (a charge has at most one dispute here), so a look-up by id needs no
table; its transactions are `txn_dw` / `txn_dr` + those 24 characters.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from recon_assets.currencies import is_zero_decimal
from recon_assets.local.stripe_emulator.balance import BalanceTransaction
from recon_assets.local.stripe_emulator.charges import (
    HOUR,
    MAX_SEEDED_DELAY,
    ChargeGenerator,
)
from recon_assets.local.stripe_emulator.ids import BODY_LEN, CHARGE_PREFIX

DISPUTES_URL = "/v1/disputes"
DISPUTE_PREFIX = "dp_"
DAY = 86400
DECIDED_AFTER = 30 * DAY
"""A seeded dispute is decided this long after it was opened."""
_RESPONSE_WINDOW = 7 * DAY
_P_WON = 96
"""Of 256: three seeded disputes in eight are won."""


def dispute_fee(currency: str) -> int:
    """The emulated account's dispute fee in `currency`'s minor units: 15.00, or 2,000 of a
    zero-decimal currency (Stripe charges a fixed fee per dispute, in the settlement currency)."""
    return 2000 if is_zero_decimal(currency) else 1500


def dispute_id(charge_id: str) -> str:
    return DISPUTE_PREFIX + charge_id[len(CHARGE_PREFIX) :]


@dataclass(frozen=True)
class Dispute:
    """One dispute's whole life; `decided_at` None: not decided (by the time asked about)."""

    charge_position: int
    charge_id: str
    payment_intent: str | None
    created: int
    amount: int
    currency: str
    decided_at: int | None
    won: bool

    @property
    def id(self) -> str:
        return dispute_id(self.charge_id)

    @property
    def body(self) -> str:
        return self.id[len(DISPUTE_PREFIX) :]

    def status(self, now: int) -> str:
        if self.decided_at is not None and now >= self.decided_at:
            return "won" if self.won else "lost"
        if now >= self.created + _RESPONSE_WINDOW:
            return "under_review"
        return "needs_response"

    def transactions(self, now: int) -> list[BalanceTransaction]:
        """Its balance transactions at `now`, oldest first: the withdrawal (minus the amount,
        with the dispute fee) and, once it is won, the reinstatement."""
        out = [
            BalanceTransaction(
                "txn_dw" + self.body, "adjustment", "dispute", self.id, self.created,
                -self.amount, dispute_fee(self.currency), self.currency,
                f"Chargeback withdrawal for {self.charge_id}", "Dispute fee",
            )
        ]  # fmt: skip
        if self.won and self.decided_at is not None and now >= self.decided_at:
            out.append(
                BalanceTransaction(
                    "txn_dr" + self.body, "adjustment", "dispute_reversal", self.id,
                    self.decided_at, self.amount, 0, self.currency,
                    f"Chargeback reversal for {self.charge_id}",
                )
            )  # fmt: skip
        return out

    def render(self, now: int) -> str:
        """Every field of Stripe's published Dispute, as it stands at `now`."""
        status = self.status(now)
        return json.dumps(
            {
                "id": self.id,
                "object": "dispute",
                "amount": self.amount,
                "balance_transactions": [json.loads(t.render(now)) for t in self.transactions(now)],
                "charge": self.charge_id,
                "created": self.created,
                "currency": self.currency,
                "enhanced_eligibility_types": [],
                "evidence": {"customer_email_address": None, "uncategorized_text": None},
                "evidence_details": {
                    "due_by": self.created + _RESPONSE_WINDOW,
                    "enhanced_eligibility": {},
                    "has_evidence": False,
                    "past_due": now >= self.created + _RESPONSE_WINDOW,
                    "submission_count": 0,
                },
                "is_charge_refundable": False,
                "livemode": False,
                "metadata": {},
                "payment_intent": self.payment_intent,
                "payment_method_details": {
                    "card": {
                        "brand": "visa",
                        "case_type": "chargeback",
                        "network": "visa",
                        "network_reason_code": "10.4",
                    },
                    "type": "card",
                },
                "reason": "fraudulent",
                "status": status,
            },
            separators=(",", ":"),
        )


class DisputeBook:
    """The account's disputes, derived on demand from its charges."""

    def __init__(self, gen: ChargeGenerator) -> None:
        self.gen = gen
        self._seed = gen.cfg.seed
        self._times: dict[int, dict[int, int]] = {}
        self._seeded: dict[int, Dispute] = {}
        """Seeded disputes by charge position: fixed once opened (the amount is the charge's
        then, the decision seeded), so each is rendered from its charge once. Every window of
        transactions looks 30 days back for decisions: rendering them again per window was
        most of a nightly's emulated balance-transaction pull (1.7 -> 4.9 s)."""
        self._hand: dict[int, tuple[int, tuple[int, bool] | None]] = {}
        """Hand-made disputes: charge position -> (opened at, (decided at, won) or None)."""
        closes: dict[str, tuple[int, bool]] = {
            c.charge_id: (c.at, c.outcome == "won")
            for c in gen.cfg.changes
            if c.kind == "dispute_close"
        }
        for c in gen.cfg.changes:
            if c.kind == "dispute":
                g = gen.position_of(c.charge_id)
                if g is not None:
                    self._hand[g] = (c.at, closes.get(c.charge_id))

    def _seeded_times(self, k: int) -> dict[int, int]:
        """Day k's charges whose seeded life disputes them: position -> when (cached, few)."""
        got = self._times.get(k)
        if got is None:
            got = {
                g: t for t, kind, g in self.gen.day_changes(k) if kind == "charge.dispute.created"
            }
            if len(self._times) > 128:
                self._times.clear()
            self._times[k] = got
        return got

    def _won(self, charge_id: str) -> bool:
        h = hashlib.blake2b(f"{self._seed}:{charge_id}".encode(), digest_size=1, person=b"dp-won")
        return h.digest()[0] < _P_WON

    def _make(self, g: int, opened: int, decided: tuple[int, bool] | None) -> Dispute:
        c = json.loads(self.gen.render_span(g, g + 1, opened)[0])
        return Dispute(
            g, c["id"], c.get("payment_intent"), opened, int(c["amount_captured"]),
            c["currency"], None if decided is None else decided[0],
            False if decided is None else decided[1],
        )  # fmt: skip

    def of_charge(self, g: int, now: int) -> Dispute | None:
        """Charge g's dispute at `now` (opened at or before it), or None."""
        hand = self._hand.get(g)
        if hand is not None:
            opened, decided = hand
            return self._make(g, opened, decided) if opened <= now else None
        k, _ = self.gen.timeline.locate(g)
        t = self._seeded_times(k).get(g)
        if t is None or t > now:
            return None
        got = self._seeded.get(g)
        if got is None:
            got = self._make(g, t, (t + DECIDED_AFTER, self._won(self.gen.charge_id(g))))
            if len(self._seeded) > 100_000:
                self._seeded.clear()
            self._seeded[g] = got
        return got

    def get(self, did: str, now: int) -> Dispute | None:
        if not isinstance(did, str) or len(did) != len(DISPUTE_PREFIX) + BODY_LEN:
            return None
        if not did.startswith(DISPUTE_PREFIX):
            return None
        g = self.gen.position_of(CHARGE_PREFIX + did[len(DISPUTE_PREFIX) :], now)
        return None if g is None else self.of_charge(g, now)

    def opened_in(self, lo: int, hi: int, now: int) -> list[Dispute]:
        """Disputes opened in [lo, hi) that exist at `now`, newest first by (created, id)."""
        hi = min(hi, now + 1)
        out: list[Dispute] = []
        if hi <= lo:
            return out
        tl = self.gen.timeline
        p0, p1 = tl.lower(lo - MAX_SEEDED_DELAY - HOUR), tl.lower(hi)
        if p0 < p1:
            for k in range(tl.locate(p0)[0], tl.locate(p1 - 1)[0] + 1):
                for g, t in self._seeded_times(k).items():
                    if lo <= t < hi and g not in self._hand:
                        d = self.of_charge(g, now)
                        if d is not None:
                            out.append(d)
        for g, (opened, _) in self._hand.items():
            if lo <= opened < hi:
                d = self.of_charge(g, now)
                if d is not None:
                    out.append(d)
        out.sort(key=lambda d: (d.created, d.id), reverse=True)
        return out

    def _around(self, lo: int, hi: int, now: int) -> list[Dispute]:
        """Every dispute that can have a transaction or an event in [lo, hi): those opened in
        it, and those a decision in it closes (opened up to 30 days before, or hand-made)."""
        seen = {d.id: d for d in self.opened_in(lo - DECIDED_AFTER, hi, now)}
        for g in self._hand:
            d = self.of_charge(g, now)
            if d is not None:
                seen.setdefault(d.id, d)
        return list(seen.values())

    def transactions_in_window(self, lo: int, hi: int, now: int) -> list[BalanceTransaction]:
        """The disputes' transactions created in [lo, hi) at `now`."""
        return [
            t
            for d in self._around(lo, hi, now)
            for t in d.transactions(now)
            if lo <= t.created < hi
        ]

    def events(self, lo: int, hi: int) -> list[tuple[int, str, Dispute]]:
        """Dispute events created in [lo, hi) beyond `charge.dispute.created` (which the
        charge's own changes give): funds withdrawn when it opens; closed when it is decided,
        and funds reinstated when it is won. Each carries the dispute as of `hi`."""
        out: list[tuple[int, str, Dispute]] = []
        for d in self._around(lo, hi, hi - 1):
            if lo <= d.created < hi:
                out.append((d.created, "charge.dispute.funds_withdrawn", d))
            if d.decided_at is not None and lo <= d.decided_at < hi:
                out.append((d.decided_at, "charge.dispute.closed", d))
                if d.won:
                    out.append((d.decided_at, "charge.dispute.funds_reinstated", d))
        return out
