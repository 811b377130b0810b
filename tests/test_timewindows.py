"""US-Eastern days as half-open UTC windows, and their splitting into sub-windows."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recon_assets.timewindows import (
    Window,
    business_day_of,
    day_window,
    days_of_range,
    split_window,
)

DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2037, 12, 31))


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        (date(2024, 3, 10), 23),
        (date(2024, 11, 3), 25),
        (date(2025, 3, 9), 23),
        (date(2024, 6, 1), 24),
    ],
)
def test_dst_days_have_exact_lengths(day: date, hours: int) -> None:
    assert day_window(day).seconds == hours * 3600


def test_edges_are_local_midnights() -> None:
    w = day_window(date(2024, 11, 3))
    assert datetime.fromtimestamp(w.start, UTC) == datetime(2024, 11, 3, 4, tzinfo=UTC)  # EDT
    assert datetime.fromtimestamp(w.end, UTC) == datetime(2024, 11, 4, 5, tzinfo=UTC)  # EST


@given(DAYS)
def test_consecutive_days_tile_time(day: date) -> None:
    """No instant belongs to two days and none falls between them."""
    assert day_window(day).end == day_window(day + timedelta(1)).start
    w = day_window(day)
    assert business_day_of(w.start) == day
    assert business_day_of(w.end - 1) == day
    assert business_day_of(w.end) == day + timedelta(1)


@given(DAYS, st.integers(min_value=1, max_value=40))
def test_days_of_range_round_trips(first: date, n: int) -> None:
    start = datetime.fromtimestamp(day_window(first).start, UTC)
    end = datetime.fromtimestamp(day_window(first + timedelta(n)).start, UTC)
    assert days_of_range(start, end) == [first + timedelta(i) for i in range(n)]


def test_days_of_range_rejects_unaligned_windows() -> None:
    start = datetime(2024, 1, 1, 5, 0, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="aligned"):
        days_of_range(start, start + timedelta(days=1))


@given(
    st.integers(min_value=0, max_value=2_000_000_000),
    st.integers(min_value=0, max_value=200_000),
    st.integers(min_value=1, max_value=64),
)
def test_split_is_an_exact_partition(start: int, length: int, parts: int) -> None:
    w = Window(start, start + length)
    pieces = split_window(w, parts)
    assert 1 <= len(pieces) <= parts
    assert pieces[0].start == w.start and pieces[-1].end == w.end
    for a, b in itertools.pairwise(pieces):
        assert a.end == b.start  # contiguous, so no gap and no overlap
    if length:
        assert all(p.seconds > 0 for p in pieces)
        sizes = [p.seconds for p in pieces]
        assert max(sizes) - min(sizes) <= 1
    # every second of the window is in exactly one piece
    for t in {w.start, w.end - 1, (w.start + w.end) // 2} if length else set():
        assert sum(p.contains(t) for p in pieces) == 1
