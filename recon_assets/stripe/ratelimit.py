"""One token bucket shared by every worker thread of a pull, aware of 429s.

Stripe limits requests per account, not per connection, so parallel sub-windows must share a
single budget. On a 429 the whole pull backs off (every worker waits out a shared cool-down) and
the rate halves; it then climbs back additively towards the configured ceiling. That keeps a
storm of 429s from turning into a storm of retries.

The bucket holds a tenth of a second's requests by default, not a second's: requests sent
evenly at the allowed rate reach the server unevenly (network, scheduling, a slow response
holding a thread), and the server's own burst allowance is what absorbs that. A client that
spent it up front left the server's bucket empty, so the first bunched arrivals drew 429s, and
each 429 halved the rate for seconds (bench/bench_rate_limited_pull.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_BURST_S = 0.1
"""The client's burst, in seconds of its rate: small, so the server's burst absorbs jitter."""


class RateLimiter:
    def __init__(
        self,
        rate_per_s: float,
        burst: float | None = None,
        *,
        min_rate_per_s: float = 1.0,
        recovery_per_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be > 0")
        self.max_rate = rate_per_s
        self.rate = rate_per_s
        self.min_rate = min(min_rate_per_s, rate_per_s)
        self.burst = burst if burst is not None else max(1.0, rate_per_s * DEFAULT_BURST_S)
        self.recovery_per_s = recovery_per_s if recovery_per_s is not None else rate_per_s / 10
        self._tokens = self.burst
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._cooldown_until = 0.0
        self._lock = threading.Lock()
        self.waited_s = 0.0
        self.throttled = 0

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        self._last = now
        if elapsed > 0:
            self.rate = min(self.max_rate, self.rate + self.recovery_per_s * elapsed)
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)

    def acquire(self) -> None:
        """Block until one request may be sent.

        Reservation style: a caller that finds the bucket empty takes its token on credit
        (the balance goes negative) and sleeps until it would have refilled, so callers queue
        in order and no one spins on float rounding.
        """
        with self._lock:
            now = self._clock()
            self._refill(now)
            wait = max(0.0, self._cooldown_until - now)
            # tokens that will have refilled by the end of the cool-down count towards this one
            self._tokens -= 1
            if self._tokens < 0:
                wait = max(wait, -self._tokens / self.rate)
            self.waited_s += wait
        if wait > 0:
            self._sleep(wait)

    def on_rate_limited(self, cooldown_s: float) -> None:
        """A 429 arrived: slow everyone down, not just the worker that saw it."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            self.throttled += 1
            self.rate = max(self.min_rate, self.rate / 2)
            self._tokens = min(self._tokens, 0.0)
            self._cooldown_until = max(self._cooldown_until, now + cooldown_s)
