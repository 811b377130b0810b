"""The ledger's one entry point: stage a window of US-Eastern days, plus late changes.

`stage_ledger` reads, in ONE repeatable-read snapshot of the ledger:
- each day's entry count and its entries (`posted_at` in the day, half-open), into one Parquet
  file per day (an empty day gets an empty file: it is a loaded day);
- when `changed_since` is given, every entry inserted or edited since then (`updated_at`) whose
  posted day is one of `loaded_days` (already in the warehouse) and outside the window: a
  backdated posting or an edit of an old entry. Those go to one "changes" file per posted day,
  and the loader replaces them by id, so they reach the warehouse on the next run whatever their
  day, without replacing the rest of that day. Entries of days never loaded are left to their
  day's own load: loading them early would make a day look partly loaded.

The snapshot's own start time on the ledger's clock (`now()` in the transaction) is every staged
row's `_synced_at`, so the next run's `changed_since` (the newest `_synced_at` the warehouse
holds, minus a look-back) compares `updated_at` with a time from the same clock.

It returns the same result type as the Stripe pull (`StageResult`). Day manifests are written
only when every day's staged rows equal the ledger's count in the same snapshot, so a failed or
inconsistent extract never becomes the current version of a day.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

import psycopg
import pyarrow as pa

from recon_assets.ledger.extract import (
    SELECT_COLUMNS,
    extract_day_counts,
    iter_entry_batches,
    to_batch,
)
from recon_assets.stage.manifest import (
    KeyedFile,
    KeyedManifest,
    write_keyed_manifest,
    write_manifest,
)
from recon_assets.stage.result import DayCounts, StageResult
from recon_assets.stage.schemas import LEDGER_ENTRIES_SCHEMA
from recon_assets.stage.store import StageStore
from recon_assets.stage.writer import PartitionedParquetWriter
from recon_assets.timewindows import BUSINESS_TZ, Window, day_window

DATASET = "ledger_entries"
CHANGES_KIND = "changes"

_CHANGED = (
    SELECT_COLUMNS
    + """WHERE updated_at >= %(since)s
  AND NOT (posted_at >= to_timestamp(%(start)s) AND posted_at < to_timestamp(%(end)s))
  AND (posted_at AT TIME ZONE 'America/New_York')::date = ANY(%(days)s)
ORDER BY posted_at, id
"""
)


def stage_ledger(
    dsn: str,
    store: StageStore,
    days: Sequence[date],
    run_id: str,
    *,
    changed_since: datetime | None = None,
    loaded_days: Sequence[date] = (),
    batch_rows: int = 10_000,
) -> StageResult:
    """Stage the entries posted on `days` (contiguous) and, optionally, the late changes."""
    from recon_assets.ledger.connection import connect

    started = time.perf_counter()
    days = sorted(set(days))
    window = Window(day_window(days[0]).start, day_window(days[-1]).end)
    writer = PartitionedParquetWriter(store, DATASET, LEDGER_ENTRIES_SCHEMA, run_id)
    changes = PartitionedParquetWriter(
        store, DATASET, LEDGER_ENTRIES_SCHEMA, run_id, prefix=f"{DATASET}/_changes_files"
    )
    per_day = {d: DayCounts() for d in days}
    changed_by_day: dict[date, int] = {}
    try:
        with connect(dsn, read_only=True) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # read-only session
            with conn.transaction():  # one snapshot for the counts, the days and the changes
                row = conn.execute("SELECT now()").fetchone()
                synced: datetime = row[0].astimezone(UTC)  # type: ignore[index]
                for d, n in extract_day_counts(conn, window).items():
                    per_day[d].fetched = n
                for day in days:  # one day open at a time: memory bounded on any range
                    writer.begin_day(day)
                    for batch in iter_entry_batches(conn, day_window(day), batch_rows):
                        writer.append_table(day, batch, synced)
                        per_day[day].staged += batch.num_rows
                    writer.close_day(day)
                if changed_since is not None and loaded_days:
                    for day, part in _changed_batches(
                        conn, window, changed_since, sorted(loaded_days), batch_rows
                    ):
                        changes.append_table(day, part, synced)
                        changed_by_day[day] = changed_by_day.get(day, 0) + part.num_rows
        files = writer.commit()
        change_files = changes.commit()
    except BaseException:
        writer.abort()
        changes.abort()
        raise
    complete = all(c.fetched == c.staged for c in per_day.values())
    manifests = []
    keyed: KeyedManifest | None = None
    if complete:  # only a verified extract becomes the current version of its days
        manifests = [write_manifest(store, f, run_id, 0, synced.isoformat()) for f in files]
        keyed = KeyedManifest(
            DATASET,
            run_id,
            CHANGES_KIND,
            tuple(KeyedFile(f.day, f.key, f.rows) for f in change_files),
            written_at=synced.isoformat(),
        )
        write_keyed_manifest(store, keyed)
    return StageResult(
        run_id=run_id,
        days=days,
        per_day=per_day,
        files=files,
        quarantine_files=[],
        counters={"changed_entries": sum(changed_by_day.values())},
        seconds=time.perf_counter() - started,
        manifests=manifests,
        keyed=keyed,
        keyed_rows_by_day=changed_by_day,
    )


def _changed_batches(
    conn: psycopg.Connection,
    window: Window,
    since: datetime,
    loaded_days: list[date],
    batch_rows: int,
) -> Iterator[tuple[date, pa.RecordBatch]]:
    """Entries changed since `since`, posted on a loaded day outside `window`, by posted day.

    Streamed like the day extract: a mass edit (every row's `updated_at` moved) must cost time,
    not memory.
    """
    params = {"since": since, "start": window.start, "end": window.end, "days": loaded_days}
    with conn.cursor(name="recon_ledger_changes", binary=True) as cur:
        cur.itersize = batch_rows
        cur.execute(_CHANGED, params)
        while rows := cur.fetchmany(batch_rows):
            batch = to_batch(rows)
            # rows of one batch span few days: a Python date per row is cheap next to the fetch
            days = [p.astimezone(BUSINESS_TZ).date() for p in batch.column("posted_at").to_pylist()]
            for day in sorted(set(days)):
                idx = [i for i, d in enumerate(days) if d == day]
                yield day, batch.take(pa.array(idx))
