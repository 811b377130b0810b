"""One helper per result type, turning what a Dagster-free part returned into asset metadata.

A range run materializes every day of its range, and Dagster records one materialization per
day. So each day's own figures go on that day's materialization (`record_days`), which is what
makes the UI's plots over time and per-day drill-down right; what belongs to the run as a whole
(requests, seconds, throughput) is named `run_*` so it is never read as a day's figure.

Only counts, seconds, URIs and day names: no connection detail or secret can reach Dagster's
storage through here by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import dagster as dg

from recon_assets.stage.result import StageResult


def record_days(
    context: dg.AssetExecutionContext,
    days: Sequence[date],
    per_day: Mapping[date, Mapping[str, Any]],
) -> None:
    """Put each day's own metadata on that day's materialization (days of this run only)."""
    for d in days:
        if d in per_day:
            context.add_asset_metadata(dict(per_day[d]), partition_key=d.isoformat())


def stage_metadata(result: StageResult) -> tuple[dict[str, Any], dict[date, dict[str, Any]]]:
    """Staging a source (Stripe pull or ledger extract): the run's metadata, and each day's."""
    files = {f.day: f for f in result.files}
    per_day: dict[date, dict[str, Any]] = {}
    for d, n in result.per_day.items():
        meta: dict[str, Any] = {
            "rows": dg.MetadataValue.int(n.staged),
            "fetched": dg.MetadataValue.int(n.fetched),
            "quarantined": dg.MetadataValue.int(n.quarantined),
        }
        if d in files:
            meta["bytes"] = dg.MetadataValue.int(files[d].bytes)
            meta["staged_uri"] = dg.MetadataValue.path(files[d].uri)
        if d in result.keyed_rows_by_day:
            meta["late_changes"] = dg.MetadataValue.int(result.keyed_rows_by_day[d])
        per_day[d] = meta
    run: dict[str, Any] = {
        "run_rows": dg.MetadataValue.int(result.staged),
        "run_quarantined": dg.MetadataValue.int(result.quarantined),
        "run_seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "run_rows_per_s": dg.MetadataValue.float(round(result.rows_per_s, 1)),
    }
    for name, value in result.counters.items():
        run[f"run_{name}"] = dg.MetadataValue.int(value)
    if result.quarantine_files:
        run["quarantine_uris"] = dg.MetadataValue.json([f.uri for f in result.quarantine_files])
    run["schema_drift"] = dg.MetadataValue.json(
        {
            "unknown_fields": dict(result.drift_fields),
            "unknown_statuses": dict(result.drift_statuses),
        }
    )
    if result.keyed is not None:
        # late changes can land on any loaded day, inside the range or not
        run["late_changes_by_day"] = dg.MetadataValue.json(
            {d.isoformat(): n for d, n in sorted(result.keyed_rows_by_day.items())}
        )
    return run, per_day


def by_id_metadata(found_by_day: Mapping[date, int], days: Sequence[date]) -> dict[str, Any]:
    """Charges loaded by id (events, look-ups), per created day: those outside the run's range
    are the earlier days it reopened."""
    outside = {d: n for d, n in found_by_day.items() if d not in days}
    return {
        "run_repulled_by_day": dg.MetadataValue.json(
            {d.isoformat(): n for d, n in sorted(found_by_day.items())}
        ),
        "run_days_reopened": dg.MetadataValue.int(len(outside)),
        "run_reopened_days": dg.MetadataValue.json([d.isoformat() for d in sorted(outside)]),
    }
