"""Payouts of the emulated account: `GET /v1/payouts` (list, by id), their balance
transactions and their events.

The account has Stripe's automatic daily schedule, in each currency it settles in (multi-currency
settlement: a charge's money stays in its currency): on each business day X, at 02:00 UTC, one
payout per currency sweeps every charge and refund transaction that becomes available that day
(`available_on` = X, `balance.available_on`). Its `amount` is the sum of their `net`, so the
payout equals its transactions, as Stripe's do; a day whose sum is not positive has no payout
(its transactions stay unswept: not emulated further). The payout is `pending` for an hour, then
`in_transit`, and `paid` from its `arrival_date`, the next business day (sent as 00:00 UTC of
that date). One payout in 32 fails six hours after it was shown paid (or when a hand-made
`payout_fail` change says): it is `failed`, and a `payout_failure` transaction gives its money
back to the balance.

Payouts are not stored: each is derived from the transactions it sweeps. Its id is `po_` + the
day X (4 base-62 digits of its ordinal) + its currency + 17 characters of a hash, so a look-up
by id needs no table and an id of another account is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from recon_assets.local.stripe_emulator.balance import (
    BalanceBook,
    BalanceTransaction,
    available_on,
)
from recon_assets.local.stripe_emulator.charges import CURRENCY_WEIGHTS, HOUR
from recon_assets.local.stripe_emulator.ids import ALNUM_TABLE, b62, unb62

PAYOUTS_URL = "/v1/payouts"
PAYOUT_PREFIX = "po_"
DAY = 86400
_CREATED_AT = 2 * HOUR
"""A day's payout is created at 02:00 UTC."""
_IN_TRANSIT_AFTER = HOUR
_FAILS_AFTER_PAID = 6 * HOUR
_P_FAIL = 8
"""Of 256: one payout in 32 fails after it was shown paid."""
_SWEEP_DAYS = 7
"""A transaction becomes available at most this many days after it was created."""


def _midnight(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def _date_of(t: int) -> date:
    return datetime.fromtimestamp(t, UTC).date()


def _next_business_day(d: date) -> date:
    d += timedelta(days=1)
    while d.weekday() >= 5:
        d += timedelta(days=1)
    return d


@dataclass(frozen=True)
class Payout:
    """One payout's whole life; `failed_at` None: it never fails."""

    id: str
    day: date
    currency: str
    amount: int
    created: int
    arrival_date: int
    failed_at: int | None

    def status(self, now: int) -> str:
        if self.failed_at is not None and now >= self.failed_at:
            return "failed"
        if now >= self.arrival_date:
            return "paid"
        if now >= self.created + _IN_TRANSIT_AFTER:
            return "in_transit"
        return "pending"

    @property
    def body(self) -> str:
        return self.id[len(PAYOUT_PREFIX) :]

    def transactions(self, now: int) -> list[BalanceTransaction]:
        """Its own balance transactions at `now`: the payout (minus its amount, at its
        creation) and, once it failed, the failure that gives the money back."""
        out = [
            BalanceTransaction("txn_po" + self.body, "payout", "payout", self.id, self.created,
                               -self.amount, 0, self.currency, "STRIPE PAYOUT")
        ]  # fmt: skip
        if self.failed_at is not None and now >= self.failed_at:
            out.append(
                BalanceTransaction("txn_pf" + self.body, "payout_failure", "payout_reversal",
                                   self.id, self.failed_at, self.amount, 0, self.currency,
                                   "STRIPE PAYOUT FAILURE")
            )  # fmt: skip
        return out

    def render(self, now: int) -> str:
        """Every field of Stripe's published Payout, as it stands at `now`."""
        status = self.status(now)
        failed = status == "failed"
        return json.dumps(
            {
                "id": self.id,
                "object": "payout",
                "amount": self.amount,
                "application_fee": None,
                "application_fee_amount": None,
                "arrival_date": self.arrival_date,
                "automatic": True,
                "balance_transaction": "txn_po" + self.body,
                "created": self.created,
                "currency": self.currency,
                "description": "STRIPE PAYOUT",
                "destination": "ba_1ReconEmulatorBankAcct0",
                "failure_balance_transaction": "txn_pf" + self.body if failed else None,
                "failure_code": "account_closed" if failed else None,
                "failure_message": "The bank account has been closed." if failed else None,
                "livemode": False,
                "metadata": {},
                "method": "standard",
                "original_payout": None,
                "payout_method": None,
                "reconciliation_status": "completed",
                "reversed_by": None,
                "source_type": "card",
                "statement_descriptor": None,
                "status": status,
                "trace_id": {
                    "status": "supported" if status == "paid" else "pending",
                    "value": None,
                },
                "type": "bank_account",
            },
            separators=(",", ":"),
        )


class PayoutBook:
    """The account's payouts, derived on demand from its balance transactions."""

    def __init__(self, balance: BalanceBook) -> None:
        self.balance = balance
        gen = balance.gen
        self._seed = gen.cfg.seed
        self._first = gen.cfg.start_date
        self._last = gen.cfg.end_date + timedelta(days=_SWEEP_DAYS)
        self._swept: dict[date, dict[tuple[int, str], list[BalanceTransaction]]] = {}
        self._fails = {c.charge_id: c.at for c in gen.cfg.changes if c.kind == "payout_fail"}
        """Hand-made returns (`ChargeChange` of kind `payout_fail`): when the bank returns it."""
        self._made: dict[tuple[date, str], Payout | None] = {}
        """Payouts already made, by day and currency (None: that day's sum was not positive). A
        made payout never changes: it sweeps days that are over, and every transaction listing
        and payout listing asks for the same few again (each page of a day's transactions
        weighs the payouts around it)."""
        balance.payouts = self

    def _check(self, d: date, currency: str) -> str:
        h = hashlib.blake2b(
            f"{self._seed}:{d.toordinal()}:{currency}".encode(), digest_size=18, person=b"po"
        ).digest()
        return h.translate(ALNUM_TABLE).decode()

    def payout_id(self, d: date, currency: str) -> str:
        return PAYOUT_PREFIX + b62(d.toordinal(), 4) + currency + self._check(d, currency)[:17]

    def _by_availability(
        self, d: date, now: int
    ) -> dict[tuple[int, str], list[BalanceTransaction]]:
        """UTC day d's charge and refund transactions by (available_on, currency), once the
        day is over (it never changes after)."""
        got = self._swept.get(d)
        if got is None:
            got = {}
            for t in self.balance.money_in_window(_midnight(d), _midnight(d) + DAY, now):
                got.setdefault((t.available_on, t.currency), []).append(t)
            if len(self._swept) > 64:
                self._swept.clear()
            self._swept[d] = got
        return got

    def swept(self, d: date, currency: str, now: int) -> list[BalanceTransaction]:
        """The transactions the payout of day d in `currency` sweeps (available that day)."""
        at = _midnight(d)
        out: list[BalanceTransaction] = []
        for back in range(1, _SWEEP_DAYS + 1):
            day = d - timedelta(days=back)
            if available_on(_midnight(day)) != at:
                continue  # availability depends on the UTC date only: nothing of it is swept
            out += self._by_availability(day, now).get((at, currency), [])
        return out

    def _payout(self, d: date, currency: str, now: int) -> Payout | None:
        created = _midnight(d) + _CREATED_AT
        if d.weekday() >= 5 or created > now or not self._first <= d <= self._last:
            return None
        if (d, currency) in self._made:
            return self._made[d, currency]
        self._made[d, currency] = payout = self._make(d, currency, created, now)
        return payout

    def _make(self, d: date, currency: str, created: int, now: int) -> Payout | None:
        amount = sum(t.net for t in self.swept(d, currency, now))
        if amount <= 0:
            return None
        pid = self.payout_id(d, currency)
        arrival = _midnight(_next_business_day(d))
        fails = (
            hashlib.blake2b(pid.encode(), digest_size=1, person=b"po-fail").digest()[0] < _P_FAIL
        )
        failed_at = self._fails.get(pid, arrival + _FAILS_AFTER_PAID if fails else None)
        return Payout(pid, d, currency, amount, created, arrival, failed_at)

    def get(self, pid: str, now: int) -> Payout | None:
        if not isinstance(pid, str) or len(pid) != len(PAYOUT_PREFIX) + 24:
            return None
        body = pid[len(PAYOUT_PREFIX) :]
        currency = body[4:7]
        if currency not in CURRENCY_WEIGHTS or not body[:4].isalnum():
            return None
        try:
            d = date.fromordinal(unb62(body[:4]))
        except (KeyError, ValueError):
            return None
        if pid != self.payout_id(d, currency):
            return None
        return self._payout(d, currency, now)

    def days(self, now: int) -> Iterator[date]:
        # `now` may be far past any date (the seeder's "eventually"): the schedule ends first
        d, last = self._first, min(self._last, _date_of(min(now, _midnight(self._last))))
        while d <= last:
            yield d
            d += timedelta(days=1)

    def listing(
        self,
        created: tuple[int, int] | None,
        arrival: tuple[int, int] | None,
        status: str | None,
        now: int,
    ) -> list[Payout]:
        """Payouts that exist at `now` within the filters (half-open bounds), newest first."""
        out = []
        for d in self.days(now):
            c = _midnight(d) + _CREATED_AT
            if created is not None and not created[0] <= c < created[1]:
                continue
            if arrival is not None:
                a = _midnight(_next_business_day(d))
                if not arrival[0] <= a < arrival[1]:
                    continue
            for cur in CURRENCY_WEIGHTS:
                p = self._payout(d, cur, now)
                if p is not None and (status is None or p.status(now) == status):
                    out.append(p)
        out.sort(key=lambda p: (p.created, p.id), reverse=True)
        return out

    def _around(self, lo: int, hi: int, now: int) -> list[Payout]:
        """Every payout that can have a transaction or an event in [lo, hi) at `now`: those
        made from a few days before `lo` (a seeded failure comes six hours after arrival), and
        those a hand-made return names in it."""
        out = []
        first = datetime.fromtimestamp(lo - _FAILS_AFTER_PAID - 4 * DAY, UTC).date()
        d = max(first, self._first)
        last = min(_date_of(min(hi, _midnight(self._last))), self._last)
        while d <= last:
            for cur in CURRENCY_WEIGHTS:
                p = self._payout(d, cur, now)
                if p is not None:
                    out.append(p)
            d += timedelta(days=1)
        for pid, at in self._fails.items():
            if lo <= at < hi:
                p = self.get(pid, now)
                if p is not None and p.day < max(first, self._first):
                    out.append(p)
        return out

    def transactions_in_window(self, lo: int, hi: int, now: int) -> list[BalanceTransaction]:
        """The payouts' own transactions created in [lo, hi) at `now`."""
        return [
            t
            for p in self._around(lo, hi, now)
            for t in p.transactions(now)
            if lo <= t.created < hi
        ]

    def events(self, lo: int, hi: int) -> list[tuple[int, str, Payout]]:
        """Payout events created in [lo, hi), each with the payout as of `hi`: created,
        paid (at its arrival date), failed."""
        out: list[tuple[int, str, Payout]] = []
        for p in self._around(lo, hi, hi - 1):
            for t, kind in ((p.created, "payout.created"), (p.arrival_date, "payout.paid"),
                            (p.failed_at, "payout.failed")):  # fmt: skip
                if t is not None and lo <= t < hi:
                    out.append((t, kind, p))
        return out


def payouts_arriving(book: PayoutBook, day: date, now: int) -> list[dict]:
    """The payouts arriving on `day` (a UTC date) at `now` as Stripe renders them, for local
    tooling (the ledger seeder books each), with the emulator's `_failed_at` hint on a failed
    one (when the bank returned it)."""
    out = []
    for p in book.listing(None, (_midnight(day), _midnight(day) + DAY), None, now):
        d = json.loads(p.render(now))
        if d["status"] == "failed":
            d["_failed_at"] = p.failed_at
        out.append(d)
    return out
