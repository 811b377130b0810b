"""Balance transactions of the emulated account: `GET /v1/balance_transactions` (list).

Like refunds, they are not stored: each is derived from the object that moved the money, so a
transaction can never disagree with its charge or refund.
- A charge has one `charge` transaction once it is captured and succeeded, created at the
  capture (at the charge's own `created` for most; 1..72 h later for a late capture or a pending
  charge that settles): `amount` = `amount_captured`, `fee` by `stripe_fee`, `net` = amount - fee.
- A refund has one `refund` transaction when it is created (pending refunds move the balance
  too): `amount` = minus the refund, no fee; a failed refund adds a `refund_failure` that gives
  the money back, created when it failed.
`available_on` is 00:00 UTC two business days after the transaction's UTC date; `status` is
`available` from then, `pending` before. The account settles in each charge's currency, so
`exchange_rate` is always null here.

A dispute (disputes.py) withdraws its amount and a dispute fee (`adjustment`, reporting category
`dispute`) and, if won, gives the amount back (`dispute_reversal`); payouts sweep them like the
rest. A payout (payouts.py) adds its own `payout` transaction (minus its amount) and, if it fails, a
`payout_failure` that gives the money back.

Ids: a charge's transaction is the id its charge names (`balance_transaction`, 24 characters);
a refund's is `txn_` + the refund id's 25 characters, its failure's `txn_f` + those; a payout's
`txn_po` + the payout id's 24, its failure's `txn_pf` + those; a dispute's `txn_dw` (withdrawal)
and `txn_dr` (reinstatement) + the dispute id's 24: they never collide.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from recon_assets.currencies import is_zero_decimal
from recon_assets.local.stripe_emulator.charges import MAX_SEEDED_DELAY, ChargeGenerator
from recon_assets.local.stripe_emulator.refunds import RefundBook, split_refund_id

if TYPE_CHECKING:
    from recon_assets.local.stripe_emulator.disputes import DisputeBook
    from recon_assets.local.stripe_emulator.payouts import PayoutBook

BALANCE_TRANSACTIONS_URL = "/v1/balance_transactions"
DAY = 86400


def stripe_fee(amount: int, currency: str) -> int:
    """The emulated account's card pricing, in the charge's minor units, rounded up: 2.9 % + 30
    for two-decimal currencies, 3.6 % (no fixed part) for zero-decimal ones. Integer arithmetic:
    `math.ceil(1000 * 0.029)` is 30, not 29."""
    if amount <= 0:
        return 0
    if is_zero_decimal(currency):
        return (amount * 36 + 999) // 1000
    return (amount * 29 + 999) // 1000 + 30


def available_on(created: int) -> int:
    """00:00 UTC of the second business day (Monday to Friday) after `created`'s UTC date."""
    d = datetime.fromtimestamp(created, UTC).date()
    left = 2
    while left:
        d += timedelta(days=1)
        if d.weekday() < 5:
            left -= 1
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def refund_txn_id(refund_id: str) -> str:
    return "txn_" + refund_id[3:]


def refund_failure_txn_id(refund_id: str) -> str:
    return "txn_f" + refund_id[3:]


class _ChargeMoney(msgspec.Struct):
    """The fields of a rendered charge that its transaction is made of: decoding only these is
    a fifth of `json.loads` of the whole charge, most of what deriving a day's transactions
    cost (every payout's amount derives the days it sweeps)."""

    id: str
    status: str
    captured: bool
    balance_transaction: str | None
    amount_captured: int
    currency: str
    description: str | None = None


_MONEY = msgspec.json.Decoder(_ChargeMoney)


@dataclass(frozen=True)
class BalanceTransaction:
    id: str
    type: str
    reporting_category: str
    source: str
    created: int
    amount: int
    fee: int
    currency: str
    description: str | None
    fee_description: str = "Stripe processing fees"

    @property
    def net(self) -> int:
        return self.amount - self.fee

    @property
    def available_on(self) -> int:
        return available_on(self.created)

    def render(self, now: int) -> str:
        """Every field of Stripe's published BalanceTransaction, as it stands at `now`."""
        fee_details = (
            [{"amount": self.fee, "application": None, "currency": self.currency,
              "description": self.fee_description, "type": "stripe_fee"}]
            if self.fee else []
        )  # fmt: skip
        return json.dumps(
            {
                "id": self.id,
                "object": "balance_transaction",
                "amount": self.amount,
                "available_on": self.available_on,
                "balance_type": "payments",
                "created": self.created,
                "currency": self.currency,
                "description": self.description,
                "exchange_rate": None,
                "fee": self.fee,
                "fee_details": fee_details,
                "net": self.net,
                "reporting_category": self.reporting_category,
                "source": self.source,
                "status": "available" if now >= self.available_on else "pending",
                "type": self.type,
            },
            separators=(",", ":"),
        )


class BalanceBook:
    """The account's balance transactions, derived on demand from its charges and refunds."""

    def __init__(self, gen: ChargeGenerator, refunds: RefundBook) -> None:
        self.gen = gen
        self.refunds = refunds
        self.payouts: PayoutBook | None = None
        """Set by the PayoutBook built on this book: its payouts' own transactions."""
        from recon_assets.local.stripe_emulator.disputes import DisputeBook  # it imports ours

        self.disputes: DisputeBook = DisputeBook(gen)
        """The account's disputes, whose withdrawals and reinstatements move the balance (and
        are swept by payouts like a charge's money)."""
        self._closed: dict[tuple[int, int], list[BalanceTransaction]] = {}
        """Listings of windows wholly in the past: no transaction can be created in them any
        more (only `status` moves, and it is rendered at the request's `now`), so each page of
        a paged window reuses one listing instead of deriving the window again."""
        self._listed: dict[tuple[int, int], list[BalanceTransaction]] = {}
        """The same for whole listings (with the payouts' own transactions): every page of a
        window past otherwise weighs the payouts around it and sorts the window again."""

    def _charge_txn(self, g: int, captured_at: int | None, now: int) -> BalanceTransaction | None:
        if captured_at is None or captured_at > now:
            return None
        return self._from_charge(_MONEY.decode(self.gen.render_span(g, g + 1, now)[0]), captured_at)

    @staticmethod
    def _from_charge(c: _ChargeMoney, captured_at: int) -> BalanceTransaction | None:
        if c.status != "succeeded" or not c.captured or not c.balance_transaction:
            return None
        amount = c.amount_captured
        return BalanceTransaction(
            c.balance_transaction, "charge", "charge", c.id, captured_at, amount,
            stripe_fee(amount, c.currency), c.currency, c.description,
        )  # fmt: skip

    def _refund_txns(self, rs: Iterable, now: int) -> list[BalanceTransaction]:
        out: list[BalanceTransaction] = []
        for r in rs:
            rid = self.refunds.id_of(r)
            cur = self._currency(r.charge_position, now)
            if r.created <= now:
                out.append(BalanceTransaction(refund_txn_id(rid), "refund", "refund", rid,
                                              r.created, -r.amount, 0, cur, "REFUND FOR CHARGE"))  # fmt: skip
            if r.failed_at is not None and r.failed_at <= now:
                out.append(BalanceTransaction(
                    refund_failure_txn_id(rid), "refund_failure", "refund_failure", rid,
                    r.failed_at, r.amount, 0, cur, "REFUND FAILURE"))  # fmt: skip
        return out

    def _currency(self, g: int, now: int) -> str:
        return _MONEY.decode(self.gen.render_span(g, g + 1, now)[0]).currency

    def in_window(self, lo: int, hi: int, now: int) -> list[BalanceTransaction]:
        """Transactions created in [lo, hi) that exist at `now`, newest first by (created, id):
        the charges' and refunds' and the payouts'."""
        money = self.money_in_window(lo, hi, now)
        if self.payouts is None:
            return money
        got = self._listed.get((lo, hi))
        if got is not None:
            return got
        out = money + self.payouts.transactions_in_window(lo, min(hi, now + 1), now)
        out.sort(key=lambda t: (t.created, t.id), reverse=True)
        if hi <= now:
            if len(self._listed) > 256:
                self._listed.clear()
            self._listed[(lo, hi)] = out
        return out

    def money_in_window(self, lo: int, hi: int, now: int) -> list[BalanceTransaction]:
        """The charges' and refunds' transactions created in [lo, hi) at `now`, newest first:
        what payouts sweep."""
        hi = min(hi, now + 1)
        if hi <= lo:
            return []
        got = self._closed.get((lo, hi))
        if got is not None:
            return got
        got = self._derive(lo, hi, now)
        if hi <= now:
            if len(self._closed) > 256:
                self._closed.clear()
            self._closed[(lo, hi)] = got
        return got

    def _derive(self, lo: int, hi: int, now: int) -> list[BalanceTransaction]:
        gen, tl = self.gen, self.gen.timeline
        out: list[BalanceTransaction] = []
        # captures of charges created before the window (late captures, settled pendings)
        late: dict[int, int] = {}
        p0, p1 = tl.lower(lo - MAX_SEEDED_DELAY), tl.lower(hi)
        if p0 < p1:
            for k in range(tl.locate(p0)[0], tl.locate(p1 - 1)[0] + 1):
                late.update(gen.capture_times(k))
        # charges created in the window: captured at creation unless `late` says otherwise
        a, b = gen.bounds(lo, hi, now)
        for g, text in zip(range(a, b), gen.render_span(a, b, now), strict=True):
            if g in gen.changes:
                continue
            at = late.get(g, gen.created_at(g))
            if lo <= at < hi and at <= now:
                txn = self._from_charge(_MONEY.decode(text), at)
                if txn is not None:
                    out.append(txn)
        for g, at in late.items():
            if g < a and g not in gen.changes and lo <= at < hi:
                txn = self._charge_txn(g, at, now)
                if txn is not None:
                    out.append(txn)
        for g in gen.changes:
            if gen.created_at(g) >= hi:
                continue
            txn = self._charge_txn(g, gen.capture_time(g, now), now)
            if txn is not None and lo <= txn.created < hi:
                out.append(txn)
        refunds = self.refunds.in_window(lo, hi, now)
        failed = [
            r
            for g in gen.changes
            if gen.created_at(g) < hi
            for r in self.refunds.of_charge(g, now)
            if r.failed_at is not None and lo <= r.failed_at < hi and not lo <= r.created < hi
        ]
        for t in self._refund_txns(refunds, now) + self._refund_txns(failed, now):
            if lo <= t.created < hi:
                out.append(t)
        out += self.disputes.transactions_in_window(lo, hi, now)
        out.sort(key=lambda t: (t.created, t.id), reverse=True)
        return out

    def get(self, txn_id: str, now: int) -> BalanceTransaction | None:
        """One transaction by id (`GET /v1/balance_transactions/{id}`), from the id alone: a
        charge's names its charge's day and index (the first 8 characters of the charge's id
        body), a refund's and its failure's carry the refund's id."""
        if not isinstance(txn_id, str) or not txn_id.startswith("txn_"):
            return None
        body = txn_id[4:]
        if len(body) == 24:  # a charge's
            found = self.gen.decode_id("ch_" + body[:8] + "0" * 16)
            if found is None:
                return None
            k = self.gen.timeline.day_index(found[0])
            if k is None or found[1] >= self.gen.timeline.counts[k]:
                return None
            g = self.gen.timeline.position(k, found[1])
            got = self.of_source(self.gen.charge_id(g), now)
        elif len(body) == 25:
            got = self.of_source("re_" + body, now)
        elif len(body) == 26 and body[0] == "f":
            got = self.of_source("re_" + body[1:], now)
        elif len(body) == 26 and body[:2] in ("po", "pf"):
            got = self.of_source("po_" + body[2:], now)
        elif len(body) == 26 and body[:2] in ("dw", "dr"):
            got = self.of_source("dp_" + body[2:], now)
        else:
            return None
        return next((t for t in got if t.id == txn_id), None)

    def of_source(self, source_id: str, now: int) -> list[BalanceTransaction]:
        """The transactions of one charge, refund, dispute or payout at `now`, oldest first."""
        if source_id.startswith("dp_"):
            d = self.disputes.get(source_id, now)
            return [] if d is None else d.transactions(now)
        if source_id.startswith("po_"):
            p = None if self.payouts is None else self.payouts.get(source_id, now)
            return [] if p is None else p.transactions(now)
        if source_id.startswith("re_"):
            parts = split_refund_id(source_id)
            if parts is None:
                return []
            r = self.refunds.get(source_id, now)
            return [] if r is None else self._refund_txns([r], now)
        g = self.gen.position_of(source_id, now)
        if g is None:
            return []
        txn = self._charge_txn(g, self.gen.capture_time(g, now), now)
        return [] if txn is None else [txn]


def balance_transactions_of(book: BalanceBook, source_id: str, now: int) -> list[dict]:
    """A charge's or refund's balance transactions at `now` as Stripe renders them, for local
    tooling (the ledger seeder books each fee from its transaction)."""
    return [json.loads(t.render(now)) for t in book.of_source(source_id, now)]
