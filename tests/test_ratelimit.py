"""The shared token bucket, on a simulated clock so the assertions are exact, not timed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recon_assets.stripe.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        assert s >= 0
        self.t += s


@given(
    st.floats(min_value=1, max_value=500),
    st.integers(min_value=1, max_value=400),
)
def test_rate_is_never_exceeded(rate: float, n: int) -> None:
    clock = FakeClock()
    lim = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    start = clock.t
    for _ in range(n):
        lim.acquire()
    # the bucket starts full (burst = one second's worth); beyond it, 1/rate per request
    assert clock.t - start >= max(0.0, (n - lim.burst) / rate) - 1e-6


def test_429_halves_rate_and_pauses_everyone() -> None:
    clock = FakeClock()
    lim = RateLimiter(100, clock=clock, sleep=clock.sleep, recovery_per_s=0)
    lim.on_rate_limited(cooldown_s=2.0)
    assert lim.rate == pytest.approx(50)
    before = clock.t
    lim.acquire()
    assert clock.t - before >= 2.0  # nobody sends during the cool-down
    lim.on_rate_limited(0.0)
    lim.on_rate_limited(0.0)
    assert lim.rate == pytest.approx(12.5)
    assert lim.throttled == 3


def test_rate_recovers_to_the_ceiling_but_not_beyond() -> None:
    clock = FakeClock()
    lim = RateLimiter(20, clock=clock, sleep=clock.sleep, recovery_per_s=2)
    lim.on_rate_limited(0)
    assert lim.rate == pytest.approx(10)
    clock.t += 3
    lim.acquire()
    assert lim.rate == pytest.approx(16)
    clock.t += 100
    lim.acquire()
    assert lim.rate == pytest.approx(20)


def test_floor_rate() -> None:
    clock = FakeClock()
    lim = RateLimiter(4, clock=clock, sleep=clock.sleep, min_rate_per_s=1, recovery_per_s=0)
    for _ in range(10):
        lim.on_rate_limited(0)
    assert lim.rate == pytest.approx(1)
