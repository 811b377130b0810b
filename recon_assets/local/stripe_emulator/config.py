"""Emulator settings: plain frozen dataclasses, so a test can build one inline and a CLI can fill one.

Everything that changes what the emulator serves lives here, which is what makes "same config, same
bytes" checkable. Fault knobs all default to off: the emulator is a faithful, boring Stripe unless a
test asks for trouble.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from recon_assets.config import DEFAULT_START_DATE, LOCAL_STRIPE_API_KEY

DEFAULT_END_DATE = date(2025, 7, 1)
"""Eighteen months after the default start: the horizon of the case study's nightly full reload."""

ID_EPOCH = date(2000, 1, 1)
"""Charge ids encode the day as days since this date in three base-62 digits (good to year 2650)."""

WARM_DAYS = 7
"""The days `recon emulator` derives before it serves (through its today): a nightly's four
days and its events, with room. Stripe is always warm; a fresh emulator is not."""

MAX_CHARGES_PER_DAY = 5_000_000
"""Ids carry the index inside a day in four base-62 digits (62**4 = 14.7 M); keep well below it."""

TruncateMode = Literal["mixed", "short_length", "abort"]
ChangeKind = Literal[
    "settle",
    "capture",
    "refund",
    "refund_fail",
    "dispute",
    "dispute_close",
    "update",
    "payout_fail",
]

API_VERSION = "2026-10-28.endive"
"""What the emulator speaks when a client sends no Stripe-Version (stripe 16.1's pin), and the
version its events are rendered in."""

EVENT_RETENTION_S = 30 * 86400
"""Stripe keeps events for 30 days: older ones are not listed, whatever the filter asks."""


@dataclass(frozen=True)
class ChargeChange:
    """A hand-made late change to one charge, on top of its seeded life.

    The seeded account changes charges within 72 hours of their creation; these say what happens
    later, the way a test or a demo needs it (a bank debit settling on day 5, a refund on day 20):

    - `settle`: the charge is `pending` from its creation until `at`, then `outcome`;
    - `capture`: an authorization (captured false, amount_captured 0) until `at`, then captured
      for `amount` (None: in full; less is a partial capture);
    - `refund`: at `at`, a refund of `amount` (None: what is left of amount_captured), an
      object of its own (`re_...`) that succeeds at once;
    - `refund_fail`: at `at`, the charge's latest refund created before it fails (its money
      comes back: the charge's amount_refunded drops by its amount);
    - `dispute`: from `at`, disputed: a Dispute (`dp_...`) withdraws the amount captured and a
      dispute fee, undecided until a `dispute_close` says otherwise;
    - `dispute_close`: at `at`, the charge's dispute is decided, `outcome` `won` (its amount is
      reinstated) or `lost`;
    - `update`: from `at`, the description is `description`;
    - `payout_fail`: `charge_id` names a payout (`po_...`), which the bank returns at `at`
      (after it was paid): it is `failed`, and a `payout_failure` transaction gives its money
      back (`payout.failed`).

    Each one is also an event (`charge.succeeded`/`charge.failed`, `charge.captured`,
    `charge.refunded` with `refund.created`, `refund.failed` with `charge.refund.updated`,
    `charge.dispute.created` with `charge.dispute.funds_withdrawn`, `charge.dispute.closed` with
    `charge.dispute.funds_reinstated` when won, `charge.updated`) created at `at`.
    """

    charge_id: str
    at: int
    kind: ChangeKind
    amount: int | None = None
    outcome: Literal["succeeded", "failed", "won", "lost"] = "succeeded"
    description: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in (
            "settle", "capture", "refund", "refund_fail", "dispute", "dispute_close", "update",
            "payout_fail",
        ):  # fmt: skip
            raise ValueError(f"unknown change kind {self.kind!r}")
        if self.kind == "dispute_close":
            if self.outcome not in ("won", "lost"):
                raise ValueError(f"a dispute is won or lost, not {self.outcome!r}")
        elif self.outcome not in ("succeeded", "failed"):
            raise ValueError(f"a settle outcome is succeeded or failed, not {self.outcome!r}")
        if self.amount is not None and self.amount < 0:
            raise ValueError("a change amount is >= 0")

    @classmethod
    def from_json(cls, d: dict) -> ChargeChange:
        return cls(
            charge_id=str(d["charge_id"]),
            at=int(d["at"]),
            kind=d["kind"],
            amount=None if d.get("amount") is None else int(d["amount"]),
            outcome=d.get("outcome", "succeeded"),
            description=d.get("description"),
        )


@dataclass(frozen=True)
class FaultConfig:
    """Network and data faults, all off by default, all reproducible from the emulator's seed.

    Determinism rules (so tests can count on them):

    - Request faults are decided per (seed, request sequence number). The server numbers requests
      0, 1, 2, ... in arrival order, whatever the path or outcome. `FaultPlan.decide(seq)` gives the
      decision a request will get, so a test can predict the exact number of faults in N requests.
      Under concurrency which request gets which number is up to the scheduler, but the totals are
      not.
    - `rate_limit_per_s` is a token bucket on wall-clock time (capacity `rate_limit_burst`, default
      one second's worth): it is the one knob that depends on timing, because that is its point.
    - Order per request: latency, then the scheduled storm (`fail_first_n_requests`), the token
      bucket, a reset, a 5xx, then the normal handling (auth, parameters), whose 200 responses may
      be truncated. A request that a fault answers never reaches the next stage.
    - `malformed_rate` is decided per (seed, charge id), independently of the request: the same
      charge is malformed the same way on every page and every pull. `malformed_kind(charge_id)`
      says which kind.
    """

    rate_limit_per_s: float | None = None
    rate_limit_burst: int | None = None
    error_5xx_rate: float = 0.0
    latency_ms: float = 0.0
    reset_rate: float = 0.0
    truncate_rate: float = 0.0
    truncate_mode: TruncateMode = "mixed"
    """`short_length`: Content-Length matches the cut body, so HTTP is fine and the JSON is not.
    `abort`: Content-Length announces the whole body, the connection closes part-way (an
    incomplete read). `mixed`: one or the other, per request, from the seed."""
    malformed_rate: float = 0.0
    fail_first_n_requests: int = 0
    fail_first_n_status: int = 429
    """Status for the scheduled storm: 429 (rate_limit_error) or 500/502/503 (api_error)."""

    def __post_init__(self) -> None:
        for name in ("error_5xx_rate", "reset_rate", "truncate_rate", "malformed_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.rate_limit_per_s is not None and self.rate_limit_per_s <= 0:
            raise ValueError("rate_limit_per_s must be > 0 (or None for no limit)")
        if self.rate_limit_burst is not None and self.rate_limit_burst < 1:
            raise ValueError("rate_limit_burst must be >= 1")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if self.fail_first_n_requests < 0:
            raise ValueError("fail_first_n_requests must be >= 0")
        if self.fail_first_n_status not in (429, 500, 502, 503):
            raise ValueError("fail_first_n_status must be 429, 500, 502 or 503")
        if self.truncate_mode not in ("mixed", "short_length", "abort"):
            raise ValueError(f"unknown truncate_mode {self.truncate_mode!r}")

    @property
    def any_request_fault(self) -> bool:
        return bool(
            self.rate_limit_per_s
            or self.error_5xx_rate
            or self.latency_ms
            or self.reset_rate
            or self.truncate_rate
            or self.fail_first_n_requests
        )


@dataclass(frozen=True)
class EmulatorConfig:
    """What the emulated Stripe account holds and how it misbehaves.

    `now` is the emulator's clock in unix seconds (None: wall clock, read per request). Charges
    created after `now` do not exist yet, and late changes (pending charges resolving, refunds,
    disputes) appear once `now` passes their seeded time, so a test that freezes `now` gets a frozen
    account and one that moves it sees newer versions of the same charges. Every change is also
    an event in `GET /v1/events`, kept 30 days (`EVENT_RETENTION_S`).
    """

    seed: int = 42
    charges_per_day: int = 15_000
    start_date: date = DEFAULT_START_DATE
    end_date: date = DEFAULT_END_DATE
    api_key: str = field(default=LOCAL_STRIPE_API_KEY, repr=False)
    now: int | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)
    changes: tuple[ChargeChange, ...] = ()
    """Hand-made late changes (see `ChargeChange`), applied in `at` order."""

    def __post_init__(self) -> None:
        if not 0 <= self.charges_per_day <= MAX_CHARGES_PER_DAY:
            raise ValueError(f"charges_per_day must be within [0, {MAX_CHARGES_PER_DAY}]")
        if self.end_date < self.start_date:
            raise ValueError("end_date (exclusive) is before start_date")
        if self.start_date < ID_EPOCH:
            raise ValueError(f"start_date must be on or after {ID_EPOCH.isoformat()}")
        if not self.api_key:
            raise ValueError("api_key must not be empty")
