"""One pinned instant for the tests that run the CLI, the daemon or the UI end to end.

Their days come from it, never from the wall clock: a failure reproduces on any day, and a run
that crosses US-Eastern midnight cannot seed one day and ask for another. The local account's
clock (RECON_EMULATOR_NOW) is the same instant, so `recon demo` reconciles the same days
(`recon_assets.cli.local_today`).
"""

from __future__ import annotations

from datetime import date, datetime

from recon_assets.cli import last_complete_days
from recon_assets.timewindows import BUSINESS_TZ

PINNED_TODAY = date(2026, 11, 18)
"""A Wednesday after the autumn DST change: an ordinary week of ordinary days."""
PINNED_NOW = int(datetime(2026, 11, 18, 15, 30, tzinfo=BUSINESS_TZ).timestamp())


def pinned_days(n: int) -> list[date]:
    """The `n` complete US-Eastern days before the pinned instant, oldest first."""
    return last_complete_days(n, PINNED_TODAY)
