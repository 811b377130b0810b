"""Seed the local ledger from the Stripe emulator's charges, with known breaks and their ground truth.

Why: the reconciliation is only testable if we know, for every charge, which `recon_status` it
must get. The seeder writes the entries a correct bookkeeping system would write for the
emulator's charges, injects each kind of break at a configured rate, and records the expected
status of every charge and orphan entry (DESIGN.md's rules table, first rule that applies) in
`seed.recon_ground_truth`, next to the ledger, and returns it.

The model, stated once:

- Charges come from a `ChargeSource`, `(gte_unix, lt_unix) -> Iterable[charge dict]`: the
  emulator's `ChargeGenerator(config).iter_charges`, or a plain function in unit tests. The
  ground truth is for the charges as that source shows them (the emulator's `now` decides which
  pending charges have resolved), so seed with the same `EmulatorConfig` the emulator serves.
- The ledger written for a charge day is its *eventual* ledger: every entry those charges will
  ever cause, including bookings posted days later. It depends only on (seed, day, rates, T), not
  on the range or on `as_of`, so seeding days one at a time or all at once gives the same rows,
  and re-seeding a day replaces exactly that day's rows.
- `as_of` is the end of the latest ledger day loaded (default: the next US-Eastern midnight after
  `last_day`). Only entries posted before it are visible to the reconciliation, so the ground
  truth is computed from those; a later `as_of` needs a re-seed (cheap) to recompute it.
- T is a duration of exactly `tolerance_days` x 24 h (as in the dbt models). The booking deadline
  is `created + T`: a charge without entries is `pending_in_ledger` while the deadline is after
  `as_of`, `missing_in_ledger` from then on; an entry is `late_posting` only if posted strictly
  after the deadline (posted exactly at it is in time).
- Breaks are injected on disjoint charges, so each charge carries at most one. Per day, a break
  with rate r over n eligible charges hits floor(r*n) or ceil(r*n) of them (seeded stochastic
  rounding), so the expected count is exactly r*n and every day gets its share.
- Entry ids are deterministic: `1e12 + days_since_2000 * 1e7 + n`, a range the table's identity
  sequence (starting at 1) never reaches, so re-seeds reproduce ids and never collide with rows
  added by hand.
"""

from __future__ import annotations

import json
import logging
import math
import random
import string
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from recon_assets.currencies import is_zero_decimal
from recon_assets.ledger.migrations import apply_migrations
from recon_assets.timewindows import business_day_of, day_start_utc, day_window, days_between

if TYPE_CHECKING:
    from recon_assets.local.stripe_emulator import EmulatorConfig

log = logging.getLogger(__name__)

ChargeSource = Callable[[int, int], Iterable[Mapping[str, Any]]]
"""`(gte_unix, lt_unix) -> charges with gte <= created < lt` (Stripe Charge dicts)."""

RefundSource = Callable[[str, int | None], list[Mapping[str, Any]]]
"""`(charge id, now_unix or None for the account's own clock) -> the charge's refunds then`
(Stripe Refund dicts, plus the emulator's `_settled_at` / `_failed_at` hints)."""

BalanceSource = Callable[[str, int | None], list[Mapping[str, Any]]]
"""`(charge or refund id, now_unix or None) -> its balance transactions then` (Stripe
BalanceTransaction dicts): each fee is booked from its transaction's `fee`."""

DisputeSource = Callable[[str, int | None], list[Mapping[str, Any]]]
"""`(charge id, now_unix or None) -> the charge's disputes then` (Stripe Dispute dicts, each with
its `balance_transactions`): each movement is booked as a `dispute` entry, its fee as a `fee`."""

PayoutSource = Callable[[date, int | None], list[Mapping[str, Any]]]
"""`(arrival date, now_unix or None) -> the payouts arriving on that (UTC) date then` (Stripe
Payout dicts): each is booked as a `payout` entry once it is paid."""

US = 1_000_000
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ID_EPOCH = date(2000, 1, 1)
ID_BASE = 10**12
IDS_PER_DAY = 10**7
SOURCE_SYSTEM = "recon-seeder"
CREATED_BY = "svc-ledger-seeder"
_CURRENCIES = ("USD", "EUR", "GBP", "CAD", "JPY", "KRW")
ADJUSTMENT_RATE = 0.001
"""Adjustment + reversal pairs per succeeded charge: entry types reconciliation must ignore."""

STATUSES = (
    "pending_in_stripe",
    "not_booked",
    "unexpected_ledger_entry",
    "pending_in_ledger",
    "missing_in_ledger",
    "duplicate_in_ledger",
    "currency_mismatch",
    "amount_mismatch",
    "late_posting",
    "matched",
    "missing_in_stripe",
)


@dataclass(frozen=True)
class BreakRates:
    """How often each break is injected, as a share of the charges it can apply to.

    Shares of succeeded+captured charges (disjoint, so they must sum to <= 1):
    `amount_mismatch`, `currency_mismatch`, `missing_in_ledger`, `duplicate_in_ledger`,
    `late_posting`, `within_tolerance` (posted late-ish but by the deadline: still `matched`).
    `missing_in_stripe`: orphan charge entries per succeeded+captured charge.
    `unexpected_ledger_entry`: share of failed or uncaptured charges that get booked anyway.
    `pending_with_entry`: share of pending charges booked early (still `pending_in_stripe`: the
    first rule wins).
    `corrected`: share of the injected duplicates, wrong amounts, bookings of unsettled charges
    and orphans that ops then correct as the ledger does, by reversal (`reversal_of`, minus the
    amount), one to four days after the break was posted; a wrong amount is also booked again,
    right. Each resolves to `matched` / `not_booked` / no item at all.
    `reversed_booking`: share of the other settled charges whose good booking is reversed with
    nothing booked again (money unbooked: `missing_in_ledger`).
    Refunds (each booked as a `refund` entry naming the refund, minus its amount, once it has
    succeeded; reversed after it fails): `refund_missing` (never booked),
    `refund_amount_mismatch` (booked with the wrong sign), `refund_duplicate` (booked twice),
    `refund_currency_mismatch`, `refund_late_posting` (after created + T), shares of the
    refunds; ops correct the amount and duplicate ones at the `corrected` rate.
    `refund_missing_in_stripe`: orphan refund entries per refund.
    Fees (each booked as a `fee` entry naming the charge Stripe took it on, minus the fee of
    its balance transaction, with the charge's booking and never before the transaction):
    `fee_missing` (not booked), `fee_amount_mismatch` (booked from an old rate card: a unit or
    the fixed 30 off), `fee_duplicate` (booked twice), shares of the fees of booked charges; ops
    correct the amount and duplicate ones at the `corrected` rate. A charge that is not booked
    (`missing_in_ledger`) has its fee not booked either.
    Payouts (each booked as a `payout` entry naming it, minus its amount, a little after it
    arrived; reversed a little after it failed): `payout_missing`, `payout_amount_mismatch`
    (a bank fee or a unit off), `payout_duplicate`, shares of the payouts (a few a day, so
    higher rates); `payout_failure_unreversed`: share of the failed payouts whose booking ops
    never reverse (`unexpected_ledger_entry`).
    Disputes (each movement, the withdrawal and the reinstatement of a won dispute, booked as a
    `dispute` entry naming the dispute, signed as the money moved, a little after its balance
    transaction; the dispute fee as a `fee` entry naming the dispute, with the fee breaks):
    `dispute_missing`, `dispute_amount_mismatch` (the withdrawal booked net of the dispute
    fee, or a unit off), `dispute_duplicate`, `dispute_late_posting` (after the movement + T),
    `dispute_currency_mismatch`, shares of the movements (a few a day).
    `dispute_missing_in_stripe`: orphan dispute entries (a withdrawal naming a dispute Stripe
    never had) per succeeded+captured charge, since disputes are too few a day to be a share of.
    """

    amount_mismatch: float = 0.004
    currency_mismatch: float = 0.002
    missing_in_ledger: float = 0.003
    duplicate_in_ledger: float = 0.002
    late_posting: float = 0.003
    within_tolerance: float = 0.02
    missing_in_stripe: float = 0.001
    unexpected_ledger_entry: float = 0.03
    pending_with_entry: float = 0.05
    corrected: float = 0.5
    reversed_booking: float = 0.001
    refund_missing: float = 0.01
    refund_amount_mismatch: float = 0.01
    refund_duplicate: float = 0.01
    refund_currency_mismatch: float = 0.005
    refund_late_posting: float = 0.005
    refund_missing_in_stripe: float = 0.005
    fee_missing: float = 0.002
    fee_amount_mismatch: float = 0.003
    fee_duplicate: float = 0.002
    payout_missing: float = 0.04
    payout_amount_mismatch: float = 0.04
    payout_duplicate: float = 0.03
    payout_failure_unreversed: float = 0.25
    dispute_missing: float = 0.05
    dispute_amount_mismatch: float = 0.05
    dispute_duplicate: float = 0.04
    dispute_late_posting: float = 0.04
    dispute_currency_mismatch: float = 0.03
    dispute_missing_in_stripe: float = 0.0005

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"BreakRates.{f.name} must be within [0, 1], got {v}")
        if sum(getattr(self, n) for n in _SC_BREAKS) > 1.0:
            raise ValueError(f"the shares of succeeded charges {_SC_BREAKS} sum to more than 1")

    @classmethod
    def none(cls) -> BreakRates:
        """No breaks at all: a perfect ledger (every settled charge matched)."""
        return cls(**{f.name: 0.0 for f in fields(cls)})


_REFUND_BREAKS = (
    "refund_missing", "refund_amount_mismatch", "refund_duplicate", "refund_currency_mismatch",
    "refund_late_posting",
)  # fmt: skip

_FEE_BREAKS = ("fee_missing", "fee_amount_mismatch", "fee_duplicate")

_PAYOUT_BREAKS = ("payout_missing", "payout_amount_mismatch", "payout_duplicate")

_DISPUTE_BREAKS = (
    "dispute_missing", "dispute_amount_mismatch", "dispute_duplicate", "dispute_late_posting",
    "dispute_currency_mismatch",
)  # fmt: skip

_SC_BREAKS = (
    "missing_in_ledger",
    "late_posting",
    "within_tolerance",
    "duplicate_in_ledger",
    "currency_mismatch",
    "amount_mismatch",
)


@dataclass(frozen=True)
class GroundTruthRow:
    """What the reconciliation must report for one charge or one orphan ledger entry.

    Same meaning as the columns of `marts.fct_charge_reconciliation`: `currency` is the charge's
    (upper-case) or, for `missing_in_stripe`, the entry's; `stripe_amount` is `amount_captured`
    (None for an orphan); `ledger_amount` the sum of the visible `charge` entries (None if none).
    """

    charge_id: str
    ledger_entry_ids: tuple[int, ...]
    reporting_date: date
    recon_status: str
    currency: str
    stripe_amount: int | None
    ledger_amount: int | None
    seed_day: date

    @property
    def item_type(self) -> str:
        """`fee` for a fee (its id is `fee:` + the object it was taken on), `refund` for a
        refund or an orphan refund entry (its id is a `re_...`), `dispute` for a dispute
        movement (`dp_...#withdrawal` or `#reinstatement`), `payout` for a payout (`po_...`),
        else `charge`: which fact table holds the row."""
        if self.charge_id.startswith("fee:"):
            return "fee"
        if self.charge_id.startswith("dp_"):
            return "dispute"
        if self.charge_id.startswith("po_"):
            return "payout"
        return "refund" if self.charge_id.startswith("re_") else "charge"

    @property
    def item_id(self) -> str:
        """The id the item's fact table keys it by (a fee's is the object's id)."""
        return self.charge_id.removeprefix("fee:")

    @property
    def ledger_entry_ids_text(self) -> str | None:
        """The ids as the dbt mart renders them: comma-separated, ascending; None if none."""
        return ",".join(map(str, self.ledger_entry_ids)) or None


@dataclass
class SeedResult:
    """What a seed wrote. `ground_truth` holds every row only when the caller kept it
    (`keep_truth`); `seed.recon_ground_truth` and `summary["ground_truth"]` (counts by status)
    always have them all."""

    ground_truth: list[GroundTruthRow]
    summary: dict[str, Any]
    as_of: datetime


@dataclass(slots=True)
class _Entry:
    id: int
    entry_type: str
    external_ref: str | None
    account: str
    amount_minor: int
    currency: str
    posted_us: int
    created_us: int
    description: str
    reversal_of: int | None = None


@dataclass
class _DayPlan:
    day: date
    charges: list[Mapping[str, Any]]
    entries: list[_Entry] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)
    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)
    orphans: list[_Entry] = field(default_factory=list)
    correctable: list[tuple[str, _Entry, Mapping[str, Any] | None]] = field(default_factory=list)
    """Injected breaks ops may correct: (kind, the entry to reverse, its charge)."""
    refunds: list[Mapping[str, Any]] = field(default_factory=list)
    """The refunds of the day's charges (eventually), each an item of its own."""
    refund_orphans: list[_Entry] = field(default_factory=list)
    dispute_orphans: list[_Entry] = field(default_factory=list)
    fees: list[Mapping[str, Any]] = field(default_factory=list)
    """The balance transactions with a fee of the day's booked charges, each a fee item."""
    payouts: list[Mapping[str, Any]] = field(default_factory=list)
    """The payouts arriving on the day (its date, as Stripe's `arrival_date`), each an item."""
    disputes: list[Mapping[str, Any]] = field(default_factory=list)
    """The dispute balance transactions of the day's charges (eventually), each an item."""


def _dt(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _us(t: datetime | int) -> int:
    if isinstance(t, int):
        return t * US
    if t.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return (t - EPOCH) // timedelta(microseconds=1)


def _stochastic_count(rng: random.Random, rate: float, n: int) -> tuple[int, tuple[int, int]]:
    exact = rate * n
    lo = math.floor(exact)
    k = lo + (1 if rng.random() < exact - lo else 0)
    return min(k, n), (lo, min(math.ceil(exact), n))


def _is_settled(c: Mapping[str, Any]) -> bool:
    return c.get("status") == "succeeded" and bool(c.get("captured"))


class _DayBuilder:
    """Everything one charge day causes in the ledger, drawn from one seeded RNG in fixed order."""

    def __init__(self, day: date, seed: int, rates: BreakRates, tolerance_us: int) -> None:
        self.day = day
        self.rng = random.Random(f"recon-ledger-seeder:{seed}:{day.isoformat()}")
        self.rates = rates
        self.t_us = tolerance_us
        self.next_id = ID_BASE + (day - ID_EPOCH).days * IDS_PER_DAY + 1
        if day < ID_EPOCH:
            raise ValueError(f"seed days start at {ID_EPOCH}")

    def _entry(self, entry_type: str, ref: str | None, account: str, amount: int, currency: str,
               posted_us: int, description: str, reversal_of: int | None = None) -> _Entry:  # fmt: skip
        e = _Entry(
            self.next_id,
            entry_type,
            ref,
            account,
            amount,
            currency,
            posted_us,
            posted_us + self.rng.randint(0, 120) * US,  # the row is written just after posting
            description,
            reversal_of,
        )
        self.next_id += 1
        if self.next_id >= ID_BASE + ((self.day - ID_EPOCH).days + 1) * IDS_PER_DAY:
            raise ValueError(f"more than {IDS_PER_DAY} entries for {self.day}")
        return e

    def _normal_delay_us(self) -> int:
        """Booking delay of a healthy bookkeeping run: minutes to hours, well inside T."""
        delay = 10 * 60 * US + int(self.rng.expovariate(1 / (6 * HOUR_US)))
        return min(delay, 36 * HOUR_US, self.t_us // 2)

    def build(
        self,
        charges: list[Mapping[str, Any]],
        refunds_of: Callable[[str], list[Mapping[str, Any]]] | None = None,
        txns_of: Callable[[str], list[Mapping[str, Any]]] | None = None,
        payouts: list[Mapping[str, Any]] | None = None,
        disputes_of: Callable[[str], list[Mapping[str, Any]]] | None = None,
    ) -> _DayPlan:
        rng, rates = self.rng, self.rates
        plan = _DayPlan(self.day, charges)
        settled = [c for c in charges if _is_settled(c)]
        pending = [c for c in charges if c.get("status") == "pending"]
        unsettled = [c for c in charges if c.get("status") != "pending" and not _is_settled(c)]

        # Disjoint picks among settled charges, one break each.
        order = list(range(len(settled)))
        rng.shuffle(order)
        kind_of: dict[int, str] = {}
        cursor = 0
        for kind in _SC_BREAKS:
            k, plan.bounds[kind] = _stochastic_count(rng, getattr(rates, kind), len(settled))
            k = min(k, len(order) - cursor)
            for idx in order[cursor : cursor + k]:
                kind_of[idx] = kind
            cursor += k
            plan.injected[kind] += k
        boundary_done = False

        for idx, c in enumerate(settled):
            kind = kind_of.get(idx)
            created_us = int(c["created"]) * US
            deadline_us = created_us + self.t_us
            cid, cur = str(c["id"]), str(c["currency"]).upper()
            amount = int(c["amount_captured"])
            posted = created_us + self._normal_delay_us()
            desc = f"Stripe charge {cid}"
            if kind == "missing_in_ledger":
                if txns_of is not None:  # nor is its fee: an item all the same
                    plan.fees += [t for t in txns_of(cid) if int(t["fee"])]
                continue
            if kind == "late_posting":
                posted = deadline_us + rng.randint(1, 2 * DAY_US)
            elif kind == "within_tolerance":
                # The first one of the day sits exactly on the deadline: the rule's edge.
                back = 0 if not boundary_done else rng.randint(0, 12 * HOUR_US)
                posted = max(created_us, deadline_us - back)
                boundary_done = True
            elif kind == "currency_mismatch":
                cur = rng.choice([x for x in _CURRENCIES if x != cur])
            elif kind == "amount_mismatch":
                amount = self._wrong_amount(c, cur)
            booking = self._entry("charge", cid, "stripe_clearing", amount, cur, posted, desc)
            plan.entries.append(booking)
            if kind == "amount_mismatch":
                plan.correctable.append((kind, booking, c))
            elif kind is None:
                plan.correctable.append(("good", booking, c))
            if kind == "duplicate_in_ledger":
                again = posted + rng.randint(60, 90 * 60) * US
                extra = self._entry(
                    "charge", cid, "stripe_clearing", amount, cur, again, desc + " (re-posted)"
                )
                plan.entries.append(extra)
                plan.correctable.append((kind, extra, c))
            if txns_of is not None:
                self._fee(plan, txns_of(cid), cur, posted)

        for kind, group in (
            ("unexpected_ledger_entry", unsettled),
            ("pending_with_entry", pending),
        ):
            k, plan.bounds[kind] = _stochastic_count(rng, getattr(rates, kind), len(group))
            plan.injected[kind] += k
            for c in rng.sample(group, k):
                created_us = int(c["created"]) * US
                booked = self._entry("charge", str(c["id"]), "stripe_clearing", int(c["amount"]),
                                     str(c["currency"]).upper(), created_us + self._normal_delay_us(),
                                     f"Stripe charge {c['id']} (booked at authorization)")  # fmt: skip
                plan.entries.append(booked)
                if kind == "unexpected_ledger_entry":
                    plan.correctable.append((kind, booked, c))

        # Orphans: charge entries whose external_ref no Stripe charge has (24 random characters
        # after "ch_": the emulator's ids have 23, so they can never collide).
        window = day_window(self.day)
        for ref in self._orphan_ids(plan, "missing_in_stripe", len(settled), "ch_", 24):
            model = rng.choice(settled) if settled else {"amount_captured": 1000, "currency": "usd"}
            posted = rng.randint(window.start * US, window.end * US - 1)
            e = self._entry("charge", ref, "stripe_clearing", int(model["amount_captured"]),
                            str(model["currency"]).upper(), posted, f"Stripe charge {ref}")  # fmt: skip
            plan.entries.append(e)
            plan.orphans.append(e)
            plan.correctable.append(("missing_in_stripe", e, None))

        # Adjustments and their reversals: noise of other entry types.
        k, _ = _stochastic_count(rng, ADJUSTMENT_RATE, len(settled))
        for _ in range(k):
            posted = rng.randint(window.start * US, window.end * US - 1)
            amount = rng.choice((-1, 1)) * rng.randint(100, 50_000)
            adj = self._entry(
                "adjustment", None, "suspense", amount, "USD", posted, "Manual adjustment"
            )
            rev = self._entry("reversal", None, "suspense", -amount, "USD",
                              posted + rng.randint(1, 48) * HOUR_US, f"Reversal of entry {adj.id}",
                              reversal_of=adj.id)  # fmt: skip
            plan.entries += [adj, rev]
        self._corrections(plan)
        if refunds_of is not None:
            self._refunds(plan, settled, refunds_of)
        if payouts is not None:
            self._payouts(plan, payouts)
        if disputes_of is not None:
            self._disputes(plan, settled, disputes_of)
        return plan

    def _disputes(
        self,
        plan: _DayPlan,
        settled: list[Mapping[str, Any]],
        disputes_of: Callable[[str], list[Mapping[str, Any]]],
    ) -> None:
        """Each dispute of the day's charges booked as bookkeeping does: each movement of its
        balance (the withdrawal, the reinstatement of a won one) a `dispute` entry naming the
        dispute, signed as the money moved, a little after Stripe moved it, and the dispute fee
        a `fee` entry naming the dispute (the fee breaks apply). Drawn after everything else,
        so every other entry keeps its id."""
        rng, rates = self.rng, self.rates
        for c in settled:
            for d in disputes_of(str(c["id"])):
                did = str(d["id"])
                for t in sorted(d["balance_transactions"], key=lambda t: int(t["created"])):
                    plan.disputes.append(t)
                    x, kind = rng.random(), None
                    for k in _DISPUTE_BREAKS:
                        x -= getattr(rates, k)
                        if x < 0:
                            kind = k
                            break
                    cur = str(t["currency"]).upper()
                    posted = int(t["created"]) * US + self._normal_delay_us()
                    if int(t["fee"]):
                        self._fee(plan, [t], cur, posted)
                    if kind == "dispute_late_posting":  # after its deadline, created + T
                        posted = int(t["created"]) * US + self.t_us + rng.randint(1, 2 * DAY_US)
                    elif kind == "dispute_currency_mismatch":
                        cur = rng.choice([x for x in _CURRENCIES if x != cur])
                    if kind is not None:
                        plan.injected[kind] += 1
                    if kind == "dispute_missing":
                        continue
                    amount = int(t["amount"])
                    if kind == "dispute_amount_mismatch":  # booked net of the fee, or a unit off
                        amount = int(t["net"]) if int(t["fee"]) else amount + rng.choice((1, -1))
                    plan.entries.append(self._entry("dispute", did, "disputes", amount, cur,
                                                    posted, f"Stripe dispute {did}"))  # fmt: skip
                    if kind == "dispute_duplicate":
                        plan.entries.append(self._entry(
                            "dispute", did, "disputes", amount, cur,
                            posted + rng.randint(60, 90 * 60) * US,
                            f"Stripe dispute {did} (re-posted)"))  # fmt: skip
        # Orphans: withdrawals booked against a dispute Stripe never had (25 random characters
        # after "dp_": the emulator's have 24, so they can never collide).
        window = day_window(self.day)
        for did in self._orphan_ids(plan, "dispute_missing_in_stripe", len(settled), "dp_", 25):
            model = rng.choice(settled)
            posted = rng.randint(window.start * US, window.end * US - 1)
            e = self._entry("dispute", did, "disputes", -int(model["amount_captured"]),
                            str(model["currency"]).upper(), posted, f"Stripe dispute {did}")  # fmt: skip
            plan.entries.append(e)
            plan.dispute_orphans.append(e)

    def _payouts(self, plan: _DayPlan, payouts: list[Mapping[str, Any]]) -> None:
        """Each payout arriving on the day booked as bookkeeping does: a `payout` entry naming
        it, minus its amount (money leaves the Stripe balance for the bank), a little after it
        arrived; reversed a little after the bank returned it (failed), except for the share
        ops never reverse. Drawn last, so every other entry keeps its id."""
        rng, rates = self.rng, self.rates
        for p in sorted(payouts, key=lambda p: str(p["id"])):
            plan.payouts.append(p)
            x, kind = rng.random(), None
            for k in _PAYOUT_BREAKS:
                x -= getattr(rates, k)
                if x < 0:
                    kind = k
                    break
            unreversed = rng.random() < rates.payout_failure_unreversed
            if p["status"] not in ("paid", "failed"):
                continue  # not arrived (or canceled before): nothing to book
            if kind is not None and p["status"] == "paid":  # a returned one's is no break
                plan.injected[kind] += 1
            if kind == "payout_missing":
                continue
            pid, cur = str(p["id"]), str(p["currency"]).upper()
            # booked once the bank shows it: in the US-Eastern business day of its date
            # (Stripe's arrival instant is 19:00 or 20:00 ET the evening before)
            arrives = datetime.fromtimestamp(int(p["arrival_date"]), UTC).date()
            posted = _us(day_start_utc(arrives)) + 9 * HOUR_US + self._normal_delay_us()
            amount = -int(p["amount"])
            if kind == "payout_amount_mismatch":  # a bank fee taken off, or a unit
                amount += rng.choice((1, -1, 1500, 2500))
            booked = [self._entry("payout", pid, "bank_in_transit", amount, cur, posted,
                                  f"Stripe payout {pid}")]  # fmt: skip
            if kind == "payout_duplicate":
                booked.append(self._entry("payout", pid, "bank_in_transit", amount, cur,
                                          posted + rng.randint(60, 90 * 60) * US,
                                          f"Stripe payout {pid} (re-posted)"))  # fmt: skip
            plan.entries += booked
            if p["status"] == "failed" and p.get("_failed_at") is not None:
                if unreversed:
                    plan.injected["payout_failure_unreversed"] += 1
                    continue
                when = int(p["_failed_at"]) * US + self._normal_delay_us()
                for e in booked:
                    plan.entries.append(self._entry(
                        "reversal", None, "bank_in_transit", -e.amount_minor, cur, when,
                        f"Reversal of entry {e.id} (payout failed)", reversal_of=e.id))  # fmt: skip

    def _fee(self, plan: _DayPlan, txns: list[Mapping[str, Any]], cur: str, posted: int) -> None:
        """A charge's fee booked as bookkeeping does: a `fee` entry naming the charge, minus the
        fee of its balance transaction, with the charge's booking (and never before Stripe took
        it), with the fee breaks injected and some of them corrected."""
        rng, rates = self.rng, self.rates
        for t in txns:
            fee = int(t["fee"])
            if not fee:
                continue
            plan.fees.append(t)
            x, kind = rng.random(), None
            for k in _FEE_BREAKS:
                x -= getattr(rates, k)
                if x < 0:
                    kind = k
                    break
            if kind is not None:
                plan.injected[kind] += 1
            if kind == "fee_missing":
                continue
            src = str(t["source"])
            when = max(posted, (int(t["created"]) + 60) * US)
            amount = -fee
            if kind == "fee_amount_mismatch":  # an old rate card: a unit, or the fixed part, off
                amount = -fee + rng.choice((-30, -1, 1, 30))
            booking = self._entry("fee", src, "stripe_fees", amount, cur, when,
                                  f"Stripe fee for {src}")  # fmt: skip
            plan.entries.append(booking)
            fix = kind is not None and rng.random() < rates.corrected
            if kind == "fee_duplicate":
                extra = self._entry("fee", src, "stripe_fees", amount, cur,
                                    when + rng.randint(60, 90 * 60) * US,
                                    f"Stripe fee for {src} (re-posted)")  # fmt: skip
                plan.entries.append(extra)
                if fix:
                    plan.entries.append(self._entry(
                        "reversal", None, "stripe_fees", -amount, cur,
                        extra.posted_us + rng.randint(24, 96) * HOUR_US,
                        f"Reversal of entry {extra.id}", reversal_of=extra.id))  # fmt: skip
            elif kind == "fee_amount_mismatch" and fix:
                at = when + rng.randint(24, 96) * HOUR_US
                plan.entries += [
                    self._entry("reversal", None, "stripe_fees", -amount, cur, at,
                                f"Reversal of entry {booking.id}", reversal_of=booking.id),
                    self._entry("fee", src, "stripe_fees", -fee, cur, at,
                                f"Stripe fee for {src} (corrected)"),
                ]  # fmt: skip
            if fix:
                plan.injected[f"corrected_{kind}"] += 1

    def _refunds(
        self,
        plan: _DayPlan,
        settled: list[Mapping[str, Any]],
        refunds_of: Callable[[str], list[Mapping[str, Any]]],
    ) -> None:
        """Each refund of the day's charges booked as bookkeeping does (a `refund` entry naming
        it, minus its amount, a little after it succeeded; reversed a little after it failed),
        with the refund breaks injected and some of them corrected. Drawn after everything else,
        so the charges' entries keep their ids."""
        rng, rates = self.rng, self.rates
        for c in settled:
            for r in refunds_of(str(c["id"])):
                plan.refunds.append(r)
                settled_at = r.get("_settled_at")
                if settled_at is None:
                    continue  # never succeeded: nothing to book
                x, kind = rng.random(), None
                for k in _REFUND_BREAKS:
                    x -= getattr(rates, k)
                    if x < 0:
                        kind = k
                        break
                cur, rid = str(r["currency"]).upper(), str(r["id"])
                posted = int(settled_at) * US + self._normal_delay_us()
                if kind == "refund_late_posting":
                    posted = int(r["created"]) * US + self.t_us + rng.randint(1, 2 * DAY_US)
                elif kind == "refund_currency_mismatch":
                    cur = rng.choice([x for x in _CURRENCIES if x != cur])
                if kind is not None:
                    plan.injected[kind] += 1
                if kind == "refund_missing":
                    continue
                amount = -int(r["amount"])
                if kind == "refund_amount_mismatch":
                    amount = -amount
                booking = self._entry("refund", rid, "refunds", amount, cur, posted,
                                      f"Stripe refund {rid}")  # fmt: skip
                plan.entries.append(booking)
                fix = kind is not None and rng.random() < rates.corrected
                if kind == "refund_duplicate":
                    extra = self._entry("refund", rid, "refunds", amount, cur,
                                        posted + rng.randint(60, 90 * 60) * US,
                                        f"Stripe refund {rid} (re-posted)")  # fmt: skip
                    plan.entries.append(extra)
                    if fix:
                        when = extra.posted_us + rng.randint(24, 96) * HOUR_US
                        plan.entries.append(self._entry(
                            "reversal", None, "refunds", -amount, cur, when,
                            f"Reversal of entry {extra.id}", reversal_of=extra.id))  # fmt: skip
                elif kind == "refund_amount_mismatch" and fix:
                    when = posted + rng.randint(24, 96) * HOUR_US
                    plan.entries += [
                        self._entry("reversal", None, "refunds", -amount, cur, when,
                                    f"Reversal of entry {booking.id}", reversal_of=booking.id),
                        self._entry("refund", rid, "refunds", -int(r["amount"]), cur, when,
                                    f"Stripe refund {rid} (corrected)"),
                    ]  # fmt: skip
                if fix:
                    plan.injected[f"corrected_{kind}"] += 1
                failed_at = r.get("_failed_at")
                if failed_at is not None:  # the money came back: the booking is reversed
                    when = int(failed_at) * US + self._normal_delay_us()
                    for e in [
                        e
                        for e in plan.entries
                        if e.external_ref == rid and e.entry_type == "refund"
                    ]:
                        plan.entries.append(self._entry(
                            "reversal", None, "refunds", -e.amount_minor, cur, when,
                            f"Reversal of entry {e.id} (refund failed)", reversal_of=e.id))  # fmt: skip
        window = day_window(self.day)
        for rid in self._orphan_ids(plan, "refund_missing_in_stripe", len(plan.refunds), "re_", 26):
            posted = rng.randint(window.start * US, window.end * US - 1)
            e = self._entry("refund", rid, "refunds", -rng.randint(100, 20_000), "USD", posted,
                            f"Stripe refund {rid}")  # fmt: skip
            plan.entries.append(e)
            plan.refund_orphans.append(e)

    def _orphan_ids(
        self, plan: _DayPlan, kind: str, eligible: int, prefix: str, length: int
    ) -> Iterator[str]:
        """Ids of the `kind` orphans to inject (a share of `eligible`), counted as injected:
        `prefix` and `length` random characters, one more than the emulator's ids of that
        object have, so an orphan's id can never be one Stripe knows. Each id is drawn as the
        caller asks for it, so the caller's own draws for an orphan keep their order."""
        k, plan.bounds[kind] = _stochastic_count(self.rng, getattr(self.rates, kind), eligible)
        plan.injected[kind] += k
        for _ in range(k):
            yield prefix + "".join(self.rng.choices(string.ascii_letters + string.digits, k=length))

    def _corrections(self, plan: _DayPlan) -> None:
        """Ops' corrections, drawn last so every entry before them keeps its id and amount:
        a reversal (minus the amount, `reversal_of` the entry, no external_ref: the ledger's
        own model) one to four days after the entry, and for a wrong amount the right booking
        next to it. A good booking reversed with nothing booked again is money unbooked."""
        rng, rates = self.rng, self.rates
        good = [(e, c) for kind, e, c in plan.correctable if kind == "good"]
        k, plan.bounds["reversed_booking"] = _stochastic_count(
            rng, rates.reversed_booking, len(good)
        )
        unbooked = {id(e) for e, _ in rng.sample(good, k)}
        plan.injected["reversed_booking"] += k
        for kind, e, c in plan.correctable:
            if kind == "good" and id(e) not in unbooked:
                continue
            if kind != "good" and not rng.random() < rates.corrected:
                continue
            when = e.posted_us + rng.randint(24, 96) * HOUR_US
            plan.entries.append(
                self._entry("reversal", None, e.account, -e.amount_minor, e.currency, when,
                            f"Reversal of entry {e.id}", reversal_of=e.id)
            )  # fmt: skip
            if kind == "amount_mismatch" and c is not None:
                plan.entries.append(
                    self._entry("charge", e.external_ref, e.account, int(c["amount_captured"]),
                                e.currency, when, f"Stripe charge {e.external_ref} (corrected)")
                )  # fmt: skip
            if kind != "good":
                plan.injected[f"corrected_{kind}"] += 1

    def _wrong_amount(self, c: Mapping[str, Any], currency: str) -> int:
        """A plausible wrong amount: the authorized instead of the captured amount, a yen amount
        divided by 100, or a small slip."""
        captured, authorized = int(c["amount_captured"]), int(c["amount"])
        if authorized != captured:
            return authorized
        if is_zero_decimal(currency) and captured // 100 > 0 and self.rng.random() < 0.5:
            return captured // 100
        slip = self.rng.choice((1, 5, 10, 100, 1000))
        wrong = captured + slip if self.rng.random() < 0.5 or captured <= slip else captured - slip
        return wrong


def classify_charge(
    charge: Mapping[str, Any],
    entries: list[_Entry] | list[Any],
    as_of_us: int,
    tolerance_us: int,
    first_posted_us: int | None = None,
) -> str:
    """DESIGN.md's rules table, first rule that applies, for one charge and its standing
    `charge` entries (visible, net of reversals; anything with `.amount_minor`, `.currency`,
    `.posted_us`). Timeliness is judged by the first booking, `first_posted_us` (reversed or
    not; default the standing entry's own posting)."""
    if charge.get("status") == "pending":
        return "pending_in_stripe"
    if not _is_settled(charge):
        return "unexpected_ledger_entry" if entries else "not_booked"
    deadline = int(charge["created"]) * US + tolerance_us
    if not entries:
        return "pending_in_ledger" if deadline > as_of_us else "missing_in_ledger"
    if len(entries) > 1:
        return "duplicate_in_ledger"
    (e,) = entries
    if e.currency != str(charge["currency"]).upper():
        return "currency_mismatch"
    if e.amount_minor != int(charge["amount_captured"]):
        return "amount_mismatch"
    if (e.posted_us if first_posted_us is None else first_posted_us) > deadline:
        return "late_posting"
    return "matched"


def classify_refund(
    refund: Mapping[str, Any],
    entries: list[_Entry] | list[Any],
    as_of_us: int,
    tolerance_us: int,
    first_posted_us: int | None = None,
) -> str:
    """The same rules for a refund: pending or requires_action is Stripe undecided, succeeded
    is settled, and its ledger entry carries minus its amount."""
    as_charge = {
        "status": {"pending": "pending", "requires_action": "pending"}.get(
            str(refund["status"]), "succeeded" if refund["status"] == "succeeded" else "failed"
        ),
        "captured": refund["status"] == "succeeded",
        "created": refund["created"],
        "currency": refund["currency"],
        "amount_captured": -int(refund["amount"]),
    }
    return classify_charge(as_charge, entries, as_of_us, tolerance_us, first_posted_us)


def _ground_truth(plan: _DayPlan, as_of_us: int, tolerance_us: int) -> list[GroundTruthRow]:
    """Every charge's and orphan's status from the entries visible at `as_of_us`, each net of
    its visible reversals (the seeder reverses whole entries: a reversed entry no longer
    stands, and is listed with its reversal)."""
    reversals: dict[int, list[_Entry]] = {}
    for e in plan.entries:
        if e.entry_type == "reversal" and e.reversal_of is not None and e.posted_us < as_of_us:
            reversals.setdefault(e.reversal_of, []).append(e)

    def stands(e: _Entry) -> bool:
        return e.amount_minor + sum(r.amount_minor for r in reversals.get(e.id, [])) != 0

    def with_reversals(es: Iterable[_Entry]) -> tuple[int, ...]:
        return tuple(
            sorted(i for e in es for i in (e.id, *(r.id for r in reversals.get(e.id, []))))
        )

    visible: dict[str, list[_Entry]] = {}
    for e in plan.entries:
        if e.entry_type == "charge" and e.posted_us < as_of_us:
            visible.setdefault(str(e.external_ref), []).append(e)
    rows = []
    for c in plan.charges:
        es = sorted(visible.get(str(c["id"]), []), key=lambda e: e.id)
        standing = [e for e in es if stands(e)]
        rows.append(
            GroundTruthRow(
                charge_id=str(c["id"]),
                ledger_entry_ids=with_reversals(es),
                reporting_date=business_day_of(int(c["created"])),
                recon_status=classify_charge(
                    c,
                    standing,
                    as_of_us,
                    tolerance_us,
                    min((e.posted_us for e in es), default=None),
                ),
                currency=str(c["currency"]).upper(),
                stripe_amount=int(c["amount_captured"])
                if c.get("amount_captured") is not None
                else None,
                ledger_amount=sum(e.amount_minor for e in standing) if standing else None,
                seed_day=plan.day,
            )
        )
    refund_entries: dict[str, list[_Entry]] = {}
    for e in plan.entries:
        if e.entry_type == "refund" and e.posted_us < as_of_us:
            refund_entries.setdefault(str(e.external_ref), []).append(e)
    for r in plan.refunds:
        if int(r["created"]) * US >= as_of_us:
            continue  # not made yet
        es = sorted(refund_entries.get(str(r["id"]), []), key=lambda e: e.id)
        standing = [e for e in es if stands(e)]
        rows.append(
            GroundTruthRow(
                charge_id=str(r["id"]),
                ledger_entry_ids=with_reversals(es),
                reporting_date=business_day_of(int(r["created"])),
                recon_status=classify_refund(
                    r,
                    standing,
                    as_of_us,
                    tolerance_us,
                    min((e.posted_us for e in es), default=None),
                ),
                currency=str(r["currency"]).upper(),
                stripe_amount=int(r["amount"]),
                ledger_amount=sum(e.amount_minor for e in standing) if standing else None,
                seed_day=plan.day,
            )
        )
    fee_entries: dict[str, list[_Entry]] = {}
    for e in plan.entries:
        if e.entry_type == "fee" and e.posted_us < as_of_us:
            fee_entries.setdefault(str(e.external_ref), []).append(e)
    for t in plan.fees:
        if int(t["created"]) * US >= as_of_us:
            continue  # Stripe has not taken it yet
        es = sorted(fee_entries.get(str(t["source"]), []), key=lambda e: e.id)
        standing = [e for e in es if stands(e)]
        as_charge = {"status": "succeeded", "captured": True, "created": t["created"],
                     "currency": t["currency"], "amount_captured": -int(t["fee"])}  # fmt: skip
        rows.append(
            GroundTruthRow(
                charge_id="fee:" + str(t["source"]),
                ledger_entry_ids=with_reversals(es),
                reporting_date=business_day_of(int(t["created"])),
                recon_status=classify_charge(
                    as_charge,
                    standing,
                    as_of_us,
                    tolerance_us,
                    min((e.posted_us for e in es), default=None),
                ),
                currency=str(t["currency"]).upper(),
                stripe_amount=int(t["fee"]),
                ledger_amount=sum(e.amount_minor for e in standing) if standing else None,
                seed_day=plan.day,
            )
        )
    payout_entries: dict[str, list[_Entry]] = {}
    for e in plan.entries:
        if e.entry_type == "payout" and e.posted_us < as_of_us:
            payout_entries.setdefault(str(e.external_ref), []).append(e)
    for p in plan.payouts:
        if int(p["created"]) * US >= as_of_us:
            continue  # not made yet
        es = sorted(payout_entries.get(str(p["id"]), []), key=lambda e: e.id)
        standing = [e for e in es if stands(e)]
        rows.append(
            GroundTruthRow(
                charge_id=str(p["id"]),
                ledger_entry_ids=with_reversals(es),
                reporting_date=datetime.fromtimestamp(int(p["arrival_date"]), UTC).date(),
                recon_status=classify_payout(
                    p,
                    standing,
                    as_of_us,
                    tolerance_us,
                    min((e.posted_us for e in es), default=None),
                ),
                currency=str(p["currency"]).upper(),
                stripe_amount=int(p["amount"]),
                ledger_amount=sum(e.amount_minor for e in standing) if standing else None,
                seed_day=plan.day,
            )
        )
    dispute_entries: dict[str, list[_Entry]] = {}
    for e in plan.entries:
        if e.entry_type == "dispute" and e.posted_us < as_of_us:
            leg = "withdrawal" if e.amount_minor < 0 else "reinstatement"
            dispute_entries.setdefault(f"{e.external_ref}#{leg}", []).append(e)
    for t in plan.disputes:
        if int(t["created"]) * US >= as_of_us:
            continue  # Stripe has not moved it yet
        key = f"{t['source']}#{'withdrawal' if int(t['amount']) < 0 else 'reinstatement'}"
        es = sorted(dispute_entries.get(key, []), key=lambda e: e.id)
        standing = [e for e in es if stands(e)]
        as_charge = {"status": "succeeded", "captured": True, "created": t["created"],
                     "currency": t["currency"], "amount_captured": int(t["amount"])}  # fmt: skip
        rows.append(
            GroundTruthRow(
                charge_id=key,
                ledger_entry_ids=with_reversals(es),
                reporting_date=business_day_of(int(t["created"])),
                recon_status=classify_charge(
                    as_charge,
                    standing,
                    as_of_us,
                    tolerance_us,
                    min((e.posted_us for e in es), default=None),
                ),
                currency=str(t["currency"]).upper(),
                stripe_amount=-int(t["amount"]),
                ledger_amount=sum(e.amount_minor for e in standing) if standing else None,
                seed_day=plan.day,
            )
        )
    for e in [*plan.orphans, *plan.refund_orphans, *plan.dispute_orphans]:
        if e.posted_us < as_of_us and stands(e):
            leg = "#withdrawal" if e.amount_minor < 0 else "#reinstatement"
            rows.append(
                GroundTruthRow(
                    charge_id=str(e.external_ref) + (leg if e.entry_type == "dispute" else ""),
                    ledger_entry_ids=(e.id,),
                    reporting_date=business_day_of(_dt(e.posted_us)),
                    recon_status="missing_in_stripe",
                    currency=e.currency,
                    stripe_amount=None,
                    ledger_amount=e.amount_minor,
                    seed_day=plan.day,
                )
            )
    return rows


_SEED_DDL = """
CREATE SCHEMA IF NOT EXISTS seed;
CREATE TABLE IF NOT EXISTS seed.recon_ground_truth (
    charge_id        text    NOT NULL PRIMARY KEY,
    ledger_entry_ids bigint[] NOT NULL,
    reporting_date   date    NOT NULL,
    recon_status     text    NOT NULL,
    currency         char(3) NOT NULL,
    stripe_amount    bigint,
    ledger_amount    bigint,
    seed_day         date    NOT NULL,
    as_of            timestamptz NOT NULL,
    tolerance_days   integer NOT NULL,
    seed             bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS recon_ground_truth_reporting_date_idx
    ON seed.recon_ground_truth (reporting_date);
"""
_SEED_LOCK_KEY = 0x7265636F6E5345  # "reconSE": one seeder at a time per database

_ENTRY_COLUMNS = (
    "id, entry_type, external_ref, account, amount_minor, currency, posted_at, created_at, "
    "updated_at, created_by, source_system, journal_id, reversal_of, description"
)


def seed_ledger(
    conn: psycopg.Connection,
    charges: ChargeSource,
    first_day: date,
    last_day: date,
    *,
    seed: int,
    rates: BreakRates | None = None,
    tolerance_days: int = 3,
    as_of: datetime | None = None,
    keep_truth: bool = True,
    refunds: RefundSource | None = None,
    balance: BalanceSource | None = None,
    payouts: PayoutSource | None = None,
    disputes: DisputeSource | None = None,
) -> SeedResult:
    """Replace the ledger entries and ground truth of charge days `[first_day, last_day]`.

    With `refunds`, each refund of the days' charges (as the account shows it now) is booked and
    is an item of the ground truth too (its `charge_id` is the refund's id). With `balance`,
    each booked charge's fee is booked from its balance transaction and is an item too (its
    `charge_id` is `fee:` + the charge's id). With `payouts`, each payout arriving on a day
    (its UTC date, the day's date) is booked and is an item too (`charge_id` its `po_...`). With
    `disputes`, each movement of a dispute of the days' charges is booked and is an item too
    (`charge_id` its `dp_...#withdrawal` or `#reinstatement`), its fee a fee item.

    One transaction: readers see the old or the new seed, never half of one. Entries go in with
    COPY, one day at a time (a day's charges are held in memory, never the range's). Applies the
    ledger migrations first. `conn` must not be inside a transaction.

    `keep_truth=False` returns no ground-truth rows (they are in `seed.recon_ground_truth`): the
    rows of 8 M charges held the seeding process at gigabytes, and `recon backfill` runs the
    whole Dagster run in that process afterwards, so its peak was the seeder's.
    """
    if last_day < first_day:
        raise ValueError("last_day is before first_day")
    if tolerance_days < 0:
        raise ValueError("tolerance_days must be >= 0")
    rates = rates or BreakRates()
    as_of = as_of or _dt(day_window(last_day).end * US)
    as_of_us, t_us = _us(as_of), tolerance_days * DAY_US
    days = list(days_between(first_day, last_day + timedelta(1)))
    apply_migrations(conn)

    truth: list[GroundTruthRow] = []
    statuses: Counter[str] = Counter()
    injected: Counter[str] = Counter()
    bounds: dict[str, list[int]] = {}
    entry_types: Counter[str] = Counter()
    eligible: Counter[str] = Counter()
    n_charges = 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SEED_LOCK_KEY,))
        conn.execute(_SEED_DDL)
        keys = [f"{SOURCE_SYSTEM}:{d.isoformat()}" for d in days]
        conn.execute(
            "DELETE FROM ledger_entries WHERE journal_id IN "
            "(SELECT id FROM ledger_journals WHERE batch_key = ANY(%s))",
            (keys,),
        )
        conn.execute(
            "DELETE FROM seed.recon_ground_truth WHERE seed_day BETWEEN %s AND %s",
            (first_day, last_day),
        )
        for day, key in zip(days, keys, strict=True):
            journal_id = _journal(conn, day, key)
            w = day_window(day)
            day_charges = sorted(
                (c for c in charges(w.start, w.end) if w.contains(int(c["created"]))),
                key=lambda c: (int(c["created"]), str(c["id"])),
            )
            plan = _DayBuilder(day, seed, rates, t_us).build(
                day_charges,
                None if refunds is None else (lambda cid: refunds(cid, None)),
                None if balance is None else (lambda cid: balance(cid, None)),
                None if payouts is None else payouts(day, None),
                None if disputes is None else (lambda cid: disputes(cid, None)),
            )
            _copy_entries(conn, plan.entries, journal_id)
            rows = _ground_truth(plan, as_of_us, t_us)
            _copy_truth(conn, rows, as_of, tolerance_days, seed)
            statuses.update(r.recon_status for r in rows)
            if keep_truth:
                truth += rows
            injected.update(plan.injected)
            for kind, (lo, hi) in plan.bounds.items():
                acc = bounds.setdefault(kind, [0, 0])
                acc[0], acc[1] = acc[0] + lo, acc[1] + hi
            entry_types.update(e.entry_type for e in plan.entries)
            n_charges += len(day_charges)
            eligible["succeeded_captured"] += sum(1 for c in day_charges if _is_settled(c))
            eligible["pending"] += sum(1 for c in day_charges if c.get("status") == "pending")
        eligible["failed_or_uncaptured"] = (
            n_charges - eligible["succeeded_captured"] - eligible["pending"]
        )
        conn.execute("ANALYZE ledger_entries")
    summary: dict[str, Any] = {
        "first_day": first_day.isoformat(),
        "last_day": last_day.isoformat(),
        "seed": seed,
        "as_of": as_of.astimezone(UTC).isoformat(),
        "tolerance_days": tolerance_days,
        "rates": asdict(rates),
        "charges": n_charges,
        "eligible": dict(eligible),
        "entries": sum(entry_types.values()),
        "entries_by_type": dict(sorted(entry_types.items())),
        "injected": {k: injected[k] for k in (*_SC_BREAKS, "missing_in_stripe",
                                               "unexpected_ledger_entry", "pending_with_entry",
                                               "reversed_booking", *_REFUND_BREAKS,
                                               *_FEE_BREAKS, *_PAYOUT_BREAKS,
                                               "refund_missing_in_stripe", *_DISPUTE_BREAKS,
                                               "dispute_missing_in_stripe",
                                               "payout_failure_unreversed")},
        "corrected": {k.removeprefix("corrected_"): n for k, n in sorted(injected.items())
                      if k.startswith("corrected_")},
        "injected_bounds": {k: tuple(v) for k, v in bounds.items()},
        "ground_truth": {s: statuses.get(s, 0) for s in STATUSES},
    }  # fmt: skip
    log.info(
        "seeded %s charges (%s..%s) into %s ledger entries; breaks injected: %s",
        n_charges, first_day, last_day, summary["entries"], summary["injected"],
    )  # fmt: skip
    return SeedResult(truth, summary, as_of)


def _journal(conn: psycopg.Connection, day: date, key: str) -> int:
    """The day's journal (one batch of bookings per charge day), created once."""
    (journal_id,) = conn.execute(
        "INSERT INTO ledger_journals (batch_key, source_system, description, created_by) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (batch_key) DO UPDATE "
        "SET description = EXCLUDED.description RETURNING id",
        (key, SOURCE_SYSTEM, f"Seeded bookings of the Stripe charges of {day}", CREATED_BY),
    ).fetchone()  # type: ignore[misc]
    return int(journal_id)


def _copy_entries(
    conn: psycopg.Connection,
    entries: Iterable[_Entry],
    journal_id: int,
    written_at: datetime | None = None,
) -> int:
    """COPY `entries` in; each row's `created_at`/`updated_at` is `written_at` when given (the
    time it is really written), else just after its posting (a history that predates recon)."""
    n = 0
    with conn.cursor() as cur, cur.copy(f"COPY ledger_entries ({_ENTRY_COLUMNS}) FROM STDIN") as cp:
        for e in entries:
            created = written_at or _dt(e.created_us)
            n += 1
            cp.write_row(
                (e.id, e.entry_type, e.external_ref, e.account, e.amount_minor, e.currency,
                 _dt(e.posted_us), created, created, CREATED_BY, SOURCE_SYSTEM, journal_id,
                 e.reversal_of, e.description)
            )  # fmt: skip
    return n


def _copy_truth(
    conn: psycopg.Connection, rows: list[GroundTruthRow], as_of: datetime, t_days: int, seed: int
) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY seed.recon_ground_truth (charge_id, ledger_entry_ids, reporting_date, recon_status, "
            "currency, stripe_amount, ledger_amount, seed_day, as_of, tolerance_days, seed) FROM STDIN"
        ) as cp,
    ):
        for r in rows:
            cp.write_row(
                (r.charge_id, list(r.ledger_entry_ids), r.reporting_date, r.recon_status,
                 r.currency, r.stripe_amount, r.ledger_amount, r.seed_day, as_of, t_days, seed)
            )  # fmt: skip


def load_ground_truth(
    conn: psycopg.Connection, first_day: date | None = None, last_day: date | None = None
) -> list[GroundTruthRow]:
    """The stored ground truth, optionally of reporting dates `[first_day, last_day]`, sorted."""
    rows = conn.execute(
        "SELECT charge_id, ledger_entry_ids, reporting_date, recon_status, currency::text, "
        "stripe_amount, ledger_amount, seed_day FROM seed.recon_ground_truth "
        "WHERE reporting_date >= coalesce(%s, '-infinity'::date) "
        "AND reporting_date <= coalesce(%s, 'infinity'::date) "
        "ORDER BY reporting_date, charge_id",
        (first_day, last_day),
    ).fetchall()
    return [GroundTruthRow(r[0], tuple(r[1]), r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows]


def seed_ledger_from_emulator(
    conn: psycopg.Connection,
    emulator: EmulatorConfig,
    first_day: date | None = None,
    last_day: date | None = None,
    *,
    rates: BreakRates | None = None,
    tolerance_days: int = 3,
    as_of: datetime | None = None,
    keep_truth: bool = True,
) -> SeedResult:
    """Seed from the emulator's own generator with the emulator's seed and clock.

    Defaults to the emulator's whole date range (`end_date` is exclusive). Pass the very config
    the emulator server runs with, or the ground truth describes a different account.
    """
    from recon_assets.local.stripe_emulator import ChargeGenerator  # only local mode needs it

    generator = ChargeGenerator(emulator)
    return seed_ledger(
        conn,
        generator.iter_charges,
        first_day or emulator.start_date,
        last_day or emulator.end_date - timedelta(1),
        seed=emulator.seed,
        rates=rates,
        tolerance_days=tolerance_days,
        as_of=as_of,
        keep_truth=keep_truth,
        refunds=account_refunds(generator),
        balance=account_balance(generator),
        payouts=account_payouts(generator),
        disputes=account_disputes(generator),
    )


def account_disputes(generator: Any) -> DisputeSource:
    """The emulator account's disputes of a charge (`disputes.DisputeBook`), at a given instant
    or at the account's own clock, as Stripe renders them (with their balance transactions)."""
    from recon_assets.local.stripe_emulator.disputes import DisputeBook

    book = DisputeBook(generator)

    def of(cid: str, now: int | None) -> list[Mapping[str, Any]]:
        at = generator.now() if now is None else now
        g = generator.position_of(cid, at)
        d = None if g is None else book.of_charge(g, at)
        return [] if d is None else [json.loads(d.render(at))]

    return of


def account_refunds(generator: Any) -> RefundSource:
    """The emulator account's refunds of a charge (`refunds.refunds_of_charge`), at a given
    instant or at the account's own clock (None)."""
    from recon_assets.local.stripe_emulator.refunds import RefundBook, refunds_of_charge

    book = RefundBook(generator)
    return lambda cid, now: refunds_of_charge(book, cid, generator.now() if now is None else now)


def account_balance(generator: Any) -> BalanceSource:
    """The emulator account's balance transactions of a charge or refund
    (`balance.balance_transactions_of`), at a given instant or at the account's own clock."""
    from recon_assets.local.stripe_emulator.balance import BalanceBook, balance_transactions_of
    from recon_assets.local.stripe_emulator.refunds import RefundBook

    book = BalanceBook(generator, RefundBook(generator))
    return lambda sid, now: balance_transactions_of(
        book, sid, generator.now() if now is None else now
    )


def account_payouts(generator: Any) -> PayoutSource:
    """The emulator account's payouts arriving on a date (`payouts.PayoutBook`), at a given
    instant or at the account's own clock, with the `_failed_at` hint of a failed one."""
    from recon_assets.local.stripe_emulator.balance import BalanceBook
    from recon_assets.local.stripe_emulator.payouts import PayoutBook, payouts_arriving
    from recon_assets.local.stripe_emulator.refunds import RefundBook

    book = PayoutBook(BalanceBook(generator, RefundBook(generator)))
    return lambda day, now: payouts_arriving(book, day, generator.now() if now is None else now)


# --- A ledger that grows with the clock -------------------------------------------------------

EVENTUALLY = 2**62
"""A clock past every change an emulator account will ever make (seeded or hand-made)."""

AccountSource = Callable[[int, int, int], Iterable[Mapping[str, Any]]]
"""`(gte_unix, lt_unix, now_unix) -> the charges created in [gte, lt) as they stand at now`:
the emulator's `ChargeGenerator.iter_charges`."""

_GROWTH_DDL = """
CREATE SCHEMA IF NOT EXISTS seed;
CREATE TABLE IF NOT EXISTS seed.ledger_account (
    one       boolean PRIMARY KEY DEFAULT true CHECK (one),
    account   jsonb   NOT NULL,
    first_written_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS seed.ledger_days (
    day             date        PRIMARY KEY,
    complete        boolean     NOT NULL,
    entries         bigint      NOT NULL,
    last_written_at timestamptz NOT NULL
);
"""


def classify_payout(
    payout: Mapping[str, Any],
    entries: list[_Entry] | list[Any],
    as_of_us: int,
    tolerance_us: int,
    first_posted_us: int | None = None,
) -> str:
    """The same rules for a payout: pending or in_transit is Stripe undecided, paid is
    settled, its day and deadline start at its arrival date, and its ledger entry carries
    minus its amount."""
    status = str(payout["status"])
    as_charge = {
        "status": "pending" if status in ("pending", "in_transit") else
                  "succeeded" if status == "paid" else "failed",
        "captured": status == "paid",
        "created": payout["arrival_date"],
        "currency": payout["currency"],
        "amount_captured": -int(payout["amount"]),
    }  # fmt: skip
    return classify_charge(as_charge, entries, as_of_us, tolerance_us, first_posted_us)


class SeedAccountMismatch(RuntimeError):
    """The ledger was grown for another emulator account: adding to it would mix two books."""


@dataclass(frozen=True)
class GrowResult:
    """What one `grow_ledger` call did, for a person: days it wrote to, days already complete."""

    days_written: int
    days_complete_before: int
    entries_written: int
    entries_total: int
    clock: datetime


def grow_ledger(
    conn: psycopg.Connection,
    account_charges: AccountSource,
    first_day: date,
    last_day: date,
    clock: datetime,
    *,
    seed: int,
    account: Mapping[str, Any],
    rates: BreakRates | None = None,
    tolerance_days: int = 3,
    refunds: RefundSource | None = None,
    balance: BalanceSource | None = None,
    payouts: PayoutSource | None = None,
    disputes: DisputeSource | None = None,
) -> GrowResult:
    """Bring the ledger of charge days `[first_day, last_day]` up to `clock`, as a real book of
    record grows: what has been booked by then is there, and nothing is ever rewritten.

    Why not `seed_ledger`: that one replaces its days, and a re-seeded day's bookings posted on
    a day recon had already extracted came back with their historical `updated_at`, which no
    real ledger has, so the late-changes read rightly never saw them (a backfill of the day
    before the demo's range showed 647 false `missing_in_ledger`). Here:
    - a day's entries are planned from its charges as they will *eventually* be (the account at
      `EVENTUALLY`), so the plan never changes as the clock moves and each entry keeps its id;
    - an entry is written once it is posted before `clock` and, when it names a charge that
      will settle, once that charge has settled by `clock` (bookkeeping books a capture, not an
      authorization: booked earlier, a charge captured a day later was an
      `unexpected_ledger_entry` meanwhile). Written later than its posting, it is a late entry,
      as in any ledger;
    - every row is stamped `created_at = updated_at = now()`, when it is really written, so an
      extract that ran before sees it as a late change; ids already there are never written
      again, and a day with every planned entry written is `complete` and never planned again.
    `account` identifies the emulator account (seed, charges per day, T, hand-made changes): a
    ledger grown for another one is refused (`SeedAccountMismatch`) rather than mixed.
    One transaction under the seeder's lock; migrations applied first.
    """
    if last_day < first_day:
        raise ValueError("last_day is before first_day")
    if clock.tzinfo is None:
        raise ValueError("clock must be timezone-aware")
    rates = rates or BreakRates()
    clock_us, t_us = _us(clock), tolerance_days * DAY_US
    clock_s = clock_us // US
    apply_migrations(conn)
    written_days = complete_before = written = 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SEED_LOCK_KEY,))
        conn.execute(_GROWTH_DDL)
        row = conn.execute("SELECT account FROM seed.ledger_account").fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO seed.ledger_account (account) VALUES (%s)", (Jsonb(dict(account)),)
            )
        elif row[0] != dict(account):
            raise SeedAccountMismatch(
                f"this ledger was grown for the emulator account {row[0]}, not {dict(account)}: "
                "use another RECON_HOME, or `recon stop` and delete its postgres folder"
            )
        (written_at,) = conn.execute("SELECT now()").fetchone()  # type: ignore[misc]
        complete = {
            d
            for (d,) in conn.execute(
                "SELECT day FROM seed.ledger_days WHERE complete AND day >= %s AND day < %s",
                (first_day, last_day + timedelta(1)),
            ).fetchall()
        }
        for day in days_between(first_day, last_day + timedelta(1)):
            w = day_window(day)
            if day in complete:
                complete_before += 1
                continue
            if w.start >= clock_s:
                continue  # no charge of the day exists yet
            eventual = sorted(
                (
                    c
                    for c in account_charges(w.start, w.end, EVENTUALLY)
                    if w.contains(int(c["created"]))
                ),
                key=lambda c: (int(c["created"]), str(c["id"])),
            )
            plan = _DayBuilder(day, seed, rates, t_us).build(
                eventual,
                None if refunds is None else (lambda cid: refunds(cid, EVENTUALLY)),
                None if balance is None else (lambda cid: balance(cid, EVENTUALLY)),
                None if payouts is None else payouts(day, EVENTUALLY),
                None if disputes is None else (lambda cid: disputes(cid, EVENTUALLY)),
            )
            settled_now = {
                str(c["id"]) for c in account_charges(w.start, w.end, clock_s) if _is_settled(c)
            }
            waiting = {str(c["id"]) for c in eventual if _is_settled(c)} - settled_now
            key = f"{SOURCE_SYSTEM}:{day.isoformat()}"
            journal_id = _journal(conn, day, key)
            there = {
                i
                for (i,) in conn.execute(
                    "SELECT id FROM ledger_entries WHERE journal_id = %s", (journal_id,)
                ).fetchall()
            }
            new, have = [], set(there)
            for e in plan.entries:  # in plan order: an entry before its reversal
                if e.id in there or e.posted_us >= clock_us or e.external_ref in waiting:
                    continue
                if e.reversal_of is not None and e.reversal_of not in have:
                    continue  # what it reverses is not booked yet
                new.append(e)
                have.add(e.id)
            n = _copy_entries(conn, new, journal_id, written_at)
            conn.execute(
                "INSERT INTO seed.ledger_days AS d (day, complete, entries, last_written_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (day) DO UPDATE SET "
                "complete = EXCLUDED.complete, entries = d.entries + EXCLUDED.entries, "
                "last_written_at = EXCLUDED.last_written_at",
                (day, len(there) + n == len(plan.entries), n, written_at),
            )
            written += n
            written_days += 1 if n else 0
        (total,) = conn.execute(
            "SELECT coalesce(sum(entries), 0) FROM seed.ledger_days WHERE day >= %s AND day < %s",
            (first_day, last_day + timedelta(1)),
        ).fetchone()  # type: ignore[misc]
        if written:
            conn.execute("ANALYZE ledger_entries")
    log.info("grew the ledger by %s entries on %s days, through %s", written, written_days, clock)
    return GrowResult(written_days, complete_before, written, int(total), clock)
