"""US-Eastern business days as half-open UTC windows.

Day D is `[D 00:00 America/New_York, D+1 00:00 America/New_York)`. DST days have 23 or 25 hours;
computing both ends from local midnights (never `start + 24h`) keeps them exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("America/New_York")


@dataclass(frozen=True, order=True)
class Window:
    """A half-open interval of unix seconds: `start <= t < end`."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"window end {self.end} is before start {self.start}")

    @property
    def seconds(self) -> int:
        return self.end - self.start

    def contains(self, t: int) -> bool:
        return self.start <= t < self.end


def day_start_utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=BUSINESS_TZ).astimezone(UTC)


def day_window(day: date) -> Window:
    """The half-open unix-second window of one US-Eastern day."""
    return Window(
        int(day_start_utc(day).timestamp()), int(day_start_utc(day + timedelta(1)).timestamp())
    )


def utc_date_window(day: date) -> Window:
    """The half-open unix-second window of one UTC calendar date: the day of a field Stripe
    sends as a date (a payout's `arrival_date` is 00:00 UTC of the bank's date), which is that
    date itself, never a US-Eastern instant."""
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    return Window(start, start + 86400)


def utc_date_of(t: int) -> date:
    """The UTC calendar date of an instant: `utc_date_window`'s day."""
    return datetime.fromtimestamp(t, UTC).date()


def days_between(first: date, end_exclusive: date) -> Iterator[date]:
    d = first
    while d < end_exclusive:
        yield d
        d += timedelta(1)


def business_day_of(t: int | datetime) -> date:
    """The US-Eastern day an instant (unix seconds or aware datetime) falls in."""
    dt = datetime.fromtimestamp(t, UTC) if isinstance(t, int) else t
    return dt.astimezone(BUSINESS_TZ).date()


def days_of_range(start: datetime, end: datetime) -> list[date]:
    """The business days of a partition time window `[start, end)` (aware datetimes at ET midnights)."""
    first, last = business_day_of(start), business_day_of(end)
    if day_start_utc(first) != start.astimezone(UTC) or day_start_utc(last) != end.astimezone(UTC):
        raise ValueError(f"[{start}, {end}) is not aligned on US-Eastern midnights")
    return list(days_between(first, last))


def split_window(window: Window, parts: int) -> list[Window]:
    """Split into at most `parts` contiguous, non-overlapping sub-windows covering it exactly.

    Sizes differ by at most one second; empty pieces are dropped, so a 3-second window split in 8
    gives 3 windows.
    """
    if parts < 1:
        raise ValueError("parts must be >= 1")
    n = min(parts, max(window.seconds, 1))
    base, extra = divmod(window.seconds, n)
    out, t = [], window.start
    for i in range(n):
        size = base + (1 if i < extra else 0)
        if size:
            out.append(Window(t, t + size))
        t += size
    if not out:
        out.append(Window(window.start, window.end))
    return out
