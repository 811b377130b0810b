"""The shared token bucket, on a simulated clock so the assertions are exact, not timed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recon_assets.stripe.ratelimit import DEFAULT_BURST_S, RateLimiter


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
    # the bucket starts full (its small burst); beyond it, 1/rate per request
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


@given(
    rate=st.floats(min_value=5, max_value=200),
    delays=st.lists(
        st.floats(min_value=0, max_value=1 - 2 * DEFAULT_BURST_S), min_size=1, max_size=600
    ),
)
def test_jitter_in_transit_draws_no_429_from_a_server_limited_at_the_same_rate(
    rate: float, delays: list[float]
) -> None:
    """Requests paced by the client at R reach the server with any delay up to 0.8 s each (so
    bunched and reordered); a server holding a token bucket at R with a second's burst, as
    Stripe allows, must accept every one. A client whose own bucket held a second's worth
    spent the server's burst up front and drew 429s from the first bunched arrivals."""
    clock = FakeClock()
    lim = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    arrivals = []
    for d in delays:
        lim.acquire()
        arrivals.append(clock.t + d)
    tokens, last = rate, min(arrivals)  # the server's bucket: full at the first arrival
    for t in sorted(arrivals):
        tokens = min(rate, tokens + (t - last) * rate)
        last = t
        assert tokens >= 1 - 1e-9, "the server would answer 429"
        tokens -= 1
