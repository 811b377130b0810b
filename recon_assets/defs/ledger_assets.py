"""`ledger_entries`: the ledger's entries posted on each US-Eastern day, staged as Parquet."""

import time
from datetime import UTC, datetime

import dagster as dg
import psycopg

from recon_assets.defs.resources import LedgerResource, StageResource
from recon_assets.defs.stripe_assets import OWNERS
from recon_assets.ledger.connection import connect, describe_dsn
from recon_assets.ledger.extract import extract_day_counts, iter_entry_batches
from recon_assets.stage.manifest import write_manifest
from recon_assets.stage.schemas import LEDGER_ENTRIES_SCHEMA
from recon_assets.stage.writer import PartitionedParquetWriter
from recon_assets.timewindows import Window, day_window, days_of_range

DATASET = "ledger_entries"
COUNT_CHECK = "staged_rows_match_ledger"


def build_ledger_entries_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=DATASET,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="ledger",
        kinds={"postgres", "parquet", "s3"},
        owners=OWNERS,
        check_specs=[dg.AssetCheckSpec(COUNT_CHECK, asset=DATASET, blocking=True)],
        description=(
            "Every ledger entry posted on the US-Eastern day (posted_at, half-open), streamed "
            "from Postgres with a server-side cursor into one zstd Parquet file per day "
            "(<stage>/ledger_entries/<day>/). Read in one REPEATABLE READ snapshot, so the rows "
            "staged equal the ledger's count for each day; a late edit (updated_at) is picked up "
            "when its day is re-stated."
        ),
    )
    def ledger_entries(
        context: dg.AssetExecutionContext, ledger: LedgerResource, stage: StageResource
    ) -> dg.MaterializeResult:
        tw = context.partition_time_window
        days = days_of_range(tw.start, tw.end)
        window = Window(int(tw.start.timestamp()), int(tw.end.timestamp()))
        dsn = ledger.resolve_dsn()
        context.log.info(
            f"extracting ledger entries {days[0]}..{days[-1]} from {describe_dsn(dsn)}"
        )
        started = time.perf_counter()
        store = stage.store()
        writer = PartitionedParquetWriter(store, DATASET, LEDGER_ENTRIES_SCHEMA, context.run.run_id)
        synced = datetime.now(UTC)
        try:
            with connect(dsn) as conn:
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                conn.read_only = True
                with conn.transaction():  # one snapshot for the counts and the rows
                    expected = extract_day_counts(conn, window)
                    for day in days:  # one day open at a time: memory bounded on any range
                        writer.begin_day(day)  # an empty day still gets its (empty) file
                        for batch in iter_entry_batches(conn, day_window(day)):
                            writer.append_table(day, batch, synced)
                        writer.close_day(day)
            files = writer.commit()
        except BaseException:
            writer.abort()
            raise
        staged = {f.day: f.rows for f in files}
        mismatched = {
            d.isoformat(): (staged.get(d, 0), n)
            for d, n in expected.items()
            if staged.get(d, 0) != n
        }
        if not mismatched:
            for f in files:  # only a complete, verified extract becomes the current version
                write_manifest(store, f, context.run.run_id, 0, synced.isoformat())
        seconds = time.perf_counter() - started
        rows = sum(staged.values())
        return dg.MaterializeResult(
            metadata={
                "rows": dg.MetadataValue.int(rows),
                "bytes": dg.MetadataValue.int(sum(f.bytes for f in files)),
                "seconds": dg.MetadataValue.float(round(seconds, 3)),
                "rows_per_s": dg.MetadataValue.float(round(rows / seconds, 1) if seconds else 0.0),
                "staged_uris": dg.MetadataValue.json([f.uri for f in files]),
                "per_day": dg.MetadataValue.json(
                    {d.isoformat(): n for d, n in sorted(staged.items())}
                ),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=COUNT_CHECK,
                    passed=not mismatched,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "mismatched_days (staged, ledger)": dg.MetadataValue.json(mismatched)
                    },
                    description="Rows staged per day equal the ledger's count in the same snapshot.",
                )
            ],
        )

    return ledger_entries
