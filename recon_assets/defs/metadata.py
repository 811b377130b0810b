"""One helper per result type, turning what a Dagster-free part returned into asset metadata.

Only counts, seconds, URIs and day names: no connection detail or secret can reach Dagster's
storage through here by construction.
"""

from __future__ import annotations

import dagster as dg

from recon_assets.stage.result import StageResult


def stage_metadata(result: StageResult) -> dict[str, dg.MetadataValue]:
    """Metadata of staging a source (Stripe pull or ledger extract), per day and in total."""
    meta: dict[str, dg.MetadataValue] = {
        "rows": dg.MetadataValue.int(result.staged),
        "fetched": dg.MetadataValue.int(result.fetched),
        "quarantined": dg.MetadataValue.int(result.quarantined),
        "bytes": dg.MetadataValue.int(result.staged_bytes),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "rows_per_s": dg.MetadataValue.float(round(result.rows_per_s, 1)),
        "staged_uris": dg.MetadataValue.json([f.uri for f in result.files]),
        "per_day": dg.MetadataValue.json(
            {
                d.isoformat(): {
                    "fetched": n.fetched,
                    "staged": n.staged,
                    "quarantined": n.quarantined,
                }
                for d, n in sorted(result.per_day.items())
            }
        ),
    }
    for name, value in result.counters.items():
        meta[name] = dg.MetadataValue.int(value)
    if result.quarantine_files:
        meta["quarantine_uris"] = dg.MetadataValue.json([f.uri for f in result.quarantine_files])
    meta["schema_drift"] = dg.MetadataValue.json(
        {
            "unknown_fields": dict(result.drift_fields),
            "unknown_statuses": dict(result.drift_statuses),
        }
    )
    if result.keyed is not None:
        meta["late_changes_by_day"] = dg.MetadataValue.json(
            {d.isoformat(): n for d, n in sorted(result.keyed_rows_by_day.items())}
        )
    return meta
