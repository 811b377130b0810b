"""Fault injection: which request fails how, which charge is served malformed, and the counters.

Every decision except the token bucket is a pure function of the seed and either the request's
sequence number or the charge's id (see `FaultConfig`), so a test can predict exactly what it will
see, and a failure reproduces.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, fields
from typing import Literal

from recon_assets.local.stripe_emulator.config import FaultConfig
from recon_assets.local.stripe_emulator.ids import ALNUM_TABLE
from recon_assets.local.stripe_emulator.timeline import u64

INVALID_KINDS = ("missing_amount", "missing_currency", "amount_string", "amount_object")
"""Malformations a strict client must quarantine."""
DRIFT_KINDS = ("unknown_status", "unknown_field")
"""Schema drift: a new enum value or a new top-level field. Valid for our pipeline, which must
tolerate what Stripe adds over time."""
MALFORMED_KINDS = INVALID_KINDS + DRIFT_KINDS

Action = Literal["ok", "scheduled", "error_5xx", "reset"]


def malformed_kind(seed: int, faults: FaultConfig, charge_id: str) -> str | None:
    """How `charge_id` is served malformed, or None: a function of (seed, charge id) only."""
    if faults.malformed_rate <= 0:
        return None
    x = u64("malformed", seed, charge_id)
    if (x >> 11) / 2**53 >= faults.malformed_rate:
        return None
    return MALFORMED_KINDS[(x & 0x7FF) % len(MALFORMED_KINDS)]


def malform(text: str, kind: str) -> str:
    """The JSON text of a charge, damaged the way `kind` says (rare: parse, edit, dump is fine)."""
    obj = json.loads(text)
    if kind == "missing_amount":
        del obj["amount"]
    elif kind == "missing_currency":
        del obj["currency"]
    elif kind == "amount_string":
        obj["amount"] = f"{obj['amount'] / 100:.2f}"
    elif kind == "amount_object":
        obj["amount"] = {"value": obj["amount"], "currency": obj["currency"]}
    elif kind == "unknown_status":
        obj["status"] = "requires_review"
    elif kind == "unknown_field":
        obj["risk_insights"] = {
            "score": obj["outcome"]["risk_score"],
            "signals": ["velocity", "new_device"],
            "evaluated_at": obj["created"],
        }
    else:
        raise ValueError(f"unknown malformation {kind!r}")
    return json.dumps(obj, separators=(",", ":"))


@dataclass(frozen=True)
class RequestFault:
    """What request number `seq` will get, before the token bucket and routing have their say."""

    seq: int
    request_id: str
    action: Action
    status: int = 200
    truncate: bool = False
    """If the response would be a 200, cut its body."""
    truncate_abort: bool = False
    """Cut with the full Content-Length announced and the connection closed (vs a short length)."""
    cut_fraction: float = 0.5


class FaultPlan:
    """The seeded per-request schedule."""

    def __init__(self, seed: int, faults: FaultConfig) -> None:
        self.seed = seed
        self.faults = faults

    def decide(self, seq: int) -> RequestFault:
        f = self.faults
        d = hashlib.blake2b(f"request:{self.seed}:{seq}".encode(), digest_size=48).digest()
        request_id = "req_" + d[:14].translate(ALNUM_TABLE).decode()

        def unit(i: int) -> float:
            return int.from_bytes(d[16 + 7 * i : 23 + 7 * i], "little") / 2**56

        if seq < f.fail_first_n_requests:
            return RequestFault(seq, request_id, "scheduled", f.fail_first_n_status)
        if unit(0) < f.reset_rate:
            return RequestFault(seq, request_id, "reset")
        if unit(1) < f.error_5xx_rate:
            return RequestFault(seq, request_id, "error_5xx", 500 if d[44] & 1 else 503)
        truncate = unit(2) < f.truncate_rate
        abort = f.truncate_mode == "abort" or (f.truncate_mode == "mixed" and bool(d[45] & 1))
        return RequestFault(
            seq, request_id, "ok", 200, truncate, abort, 0.1 + 0.8 * unit(3) if truncate else 0.5
        )


class TokenBucket:
    """Stripe's limiter in miniature: `rate` tokens per second, at most `capacity` saved up."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


@dataclass(frozen=True)
class EmulatorStats:
    """A snapshot of the server's counters."""

    requests: int = 0
    responses_200: int = 0
    charges_served: int = 0
    """Charges in complete 200 responses (truncated ones are not served)."""
    rate_limited: int = 0
    """Every 429, scheduled or from the token bucket."""
    errors_5xx: int = 0
    """Every 5xx, scheduled or random."""
    scheduled_failures: int = 0
    resets: int = 0
    truncations: int = 0
    malformed_served: int = 0
    unauthorized: int = 0
    bad_requests: int = 0
    not_found: int = 0


class Counters:
    """Thread-safe counters behind `EmulatorStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys((f.name for f in fields(EmulatorStats)), 0)
        self._seq = 0

    def next_seq(self) -> int:
        with self._lock:
            seq = self._seq
            self._seq += 1
            self._values["requests"] += 1
            return seq

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                self._values[name] += delta

    def snapshot(self) -> EmulatorStats:
        with self._lock:
            return EmulatorStats(**self._values)

    def reset(self) -> None:
        """Zero the counters and restart request numbering (and so the fault schedule)."""
        with self._lock:
            self._values = dict.fromkeys(self._values, 0)
            self._seq = 0
