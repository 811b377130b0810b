"""When charges happen: per-day volumes and `created` seconds, generated lazily from the seed.

The whole account is never materialized. A day's volume is a formula of (seed, day), so counts and
positions over any range are cheap; a day's sorted `created` seconds (~15 k ints) are generated on
demand and kept in a small LRU. A charge's global position is its rank in the total order
(created, id), which is also (day, index) because ids sort like their positions.

The shape is chosen to break naive clients: weekends are quieter, nights are quiet, and many
charges share one second (bursts, some longer than a page of 100), including the first and last
second of every day and both sides of each daylight-saving transition.
"""

from __future__ import annotations

import hashlib
import random
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from datetime import UTC, date, datetime
from itertools import accumulate

from recon_assets.timewindows import BUSINESS_TZ, day_window, days_between

DOW_FACTOR = (1.0, 1.04, 1.05, 1.08, 1.16, 0.72, 0.62)
"""Monday..Sunday, relative; normalized so `charges_per_day` is the mean over a week."""
_DOW_MEAN = sum(DOW_FACTOR) / 7
DAY_JITTER = 0.16
"""Each day's volume is off the weekday's expectation by up to +-8 %."""

HOUR_WEIGHT = (
    0.30, 0.22, 0.16, 0.13, 0.13, 0.18, 0.32, 0.55, 0.85, 1.15, 1.35, 1.45,
    1.55, 1.45, 1.35, 1.35, 1.40, 1.50, 1.60, 1.65, 1.50, 1.15, 0.80, 0.50,
)  # fmt: skip
"""Relative charge rate per local (US-Eastern) hour: a night trough, a lunch and an evening peak."""

TS_CACHE_DAYS = 16


def u64(tag: str, *parts: object) -> int:
    """A 64-bit hash of a tag and values: the single source of every seeded decision."""
    key = ":".join([tag, *map(str, parts)]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def day_count(seed: int, charges_per_day: int, day: date) -> int:
    """How many charges `day` has: weekday factor times a seeded jitter, no generation needed."""
    jitter = 1.0 + DAY_JITTER * (u64("count", seed, day.toordinal()) / 2**64 - 0.5)
    return round(charges_per_day * DOW_FACTOR[day.weekday()] / _DOW_MEAN * jitter)


def dst_transitions(start: int, end: int) -> list[int]:
    """Unix seconds in [start, end) where the US-Eastern UTC offset changes (its first second)."""

    def offset(t: int) -> object:
        return datetime.fromtimestamp(t, UTC).astimezone(BUSINESS_TZ).utcoffset()

    if end - start < 2 or offset(start) == offset(end - 1):
        return []
    lo, hi = start, end - 1  # offset(lo) != offset(hi); find the first second with offset(hi)
    last = offset(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if offset(mid) == last:
            hi = mid
        else:
            lo = mid
    return [hi]


def day_timestamps(seed: int, day: date, n: int) -> array:
    """The sorted `created` seconds of `day`'s `n` charges.

    Special seconds come first in priority order (edges of the day, DST transitions, bursts), cut to
    `n`, then the rest is drawn from the hourly profile.
    """
    window = day_window(day)
    ws, we = window.start, window.end
    rng = random.Random(u64("ts", seed, day.toordinal()))
    transitions = dst_transitions(ws, we)
    big = max(1, min(rng.randint(101, 140), n // 8))

    special: list[int] = []
    edge = big if transitions else rng.randint(2, 6)
    special += [ws] * edge
    special += [we - 1] * (big if transitions else rng.randint(2, 6))
    for t in transitions:
        special += [t - 1] * rng.randint(3, 10) + [t] * rng.randint(3, 10)
        lo, hi = max(ws, t - 3600), min(we, t + 3600)
        special += [rng.randrange(lo, hi) for _ in range(min(150, n // 20))]

    # Hour segments: ws is a local midnight and New York changes offset on the hour, so every
    # segment is one local hour (a 25-hour day has two 01:00 hours, a 23-hour day no 02:00).
    starts = list(range(ws, we, 3600))
    lengths = [min(3600, we - s) for s in starts]
    weights = [
        HOUR_WEIGHT[datetime.fromtimestamp(s, UTC).astimezone(BUSINESS_TZ).hour] * ln / 3600
        for s, ln in zip(starts, lengths, strict=True)
    ]
    cum = list(accumulate(weights))
    total = cum[-1]

    def draw() -> int:
        x = rng.random() * total
        k = min(bisect_right(cum, x), len(cum) - 1)
        prev = cum[k - 1] if k else 0.0
        frac = (x - prev) / weights[k]
        return starts[k] + min(int(frac * lengths[k]), lengths[k] - 1)

    n_small = n // 1000 + (1 if n >= 50 else 0)
    for _ in range(n_small):
        special += [draw()] * min(2 + int(rng.expovariate(1 / 8)), 60)
    if n >= 2000:
        for _ in range(2):  # longer than a page: a client that pages by `created` loses charges
            special += [draw()] * rng.randint(101, 350)

    del special[n:]
    out = array("q", special)
    out.extend(draw() for _ in range(n - len(special)))
    return array("q", sorted(out))


class Timeline:
    """Counts and positions over the emulated date range [start, end)."""

    def __init__(self, seed: int, charges_per_day: int, start: date, end: date) -> None:
        self.seed = seed
        self.days: list[date] = list(days_between(start, end))
        self._ord0 = start.toordinal()
        windows = [day_window(d) for d in self.days]
        self.day_start = [w.start for w in windows]
        self.day_end = [w.end for w in windows]
        self.counts = [day_count(seed, charges_per_day, d) for d in self.days]
        self.prefix = [0, *accumulate(self.counts)]
        self.first_second = self.day_start[0] if self.days else 0
        self.end_second = self.day_end[-1] if self.days else 0
        self._cache: OrderedDict[int, array] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return self.prefix[-1]

    def day_index(self, day: date) -> int | None:
        k = day.toordinal() - self._ord0
        return k if 0 <= k < len(self.days) else None

    def timestamps(self, k: int) -> array:
        """Day k's sorted `created` seconds (LRU-cached; two threads may both build one, harmlessly)."""
        with self._lock:
            ts = self._cache.get(k)
            if ts is not None:
                self._cache.move_to_end(k)
                return ts
        ts = day_timestamps(self.seed, self.days[k], self.counts[k])
        with self._lock:
            self._cache[k] = ts
            while len(self._cache) > TS_CACHE_DAYS:
                self._cache.popitem(last=False)
        return ts

    def lower(self, t: int) -> int:
        """The first global position whose `created` >= t (0..total)."""
        if t <= self.first_second:
            return 0
        if t >= self.end_second:
            return self.total
        k = bisect_right(self.day_start, t) - 1
        if self.counts[k] == 0:
            return self.prefix[k]
        return self.prefix[k] + bisect_left(self.timestamps(k), t)

    def locate(self, g: int) -> tuple[int, int]:
        """(day index, index inside the day) of global position g (0 <= g < total)."""
        k = bisect_right(self.prefix, g) - 1
        return k, g - self.prefix[k]

    def position(self, k: int, i: int) -> int:
        return self.prefix[k] + i
