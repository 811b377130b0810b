"""The one partitioning of the project: US-Eastern business days."""

from __future__ import annotations

from datetime import date

import dagster as dg

from recon_assets.timewindows import BUSINESS_TZ


def daily_partitions(start_date: date) -> dg.DailyPartitionsDefinition:
    """Day D = [D 00:00 ET, D+1 00:00 ET); the last partition is the last complete ET day."""
    return dg.DailyPartitionsDefinition(
        start_date=start_date.isoformat(), timezone=BUSINESS_TZ.key, end_offset=0
    )


WRITER_POOL = "recon_writer"
"""Every asset that writes the stage or the warehouse is in this pool. The shipped dagster.yaml
limits it to 1 with run granularity, so the run queue starts a run only when no other run
holds it: two runs that touch the same days go one after the other, never interleaved."""
