"""`ledger_entries`: the ledger's entries posted on each US-Eastern day, staged as Parquet,
plus the entries inserted or edited since the warehouse last saw the ledger."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from recon_assets.defs.metadata import record_days, stage_metadata
from recon_assets.defs.partitions import WRITER_POOL
from recon_assets.defs.resources import LedgerResource, StageResource, WarehouseResource
from recon_assets.defs.stripe_assets import OWNERS
from recon_assets.ledger.connection import describe_dsn
from recon_assets.ledger.stage import stage_ledger
from recon_assets.stage.manifest import CheckFailure, record_check_failure
from recon_assets.timewindows import days_of_range

DATASET = "ledger_entries"
COUNT_CHECK = "staged_rows_match_ledger"
CURSOR_SQL = "select max(_synced_at) from raw.ledger_entries"
"""The changes cursor lives in the warehouse: the newest extract snapshot (ledger clock) it holds."""
LOADED_DAYS_SQL = (
    "select distinct partition_date from raw.load_log "
    "where dataset = 'ledger_entries' and load_kind = 'day'"
)


def build_ledger_entries_asset(
    partitions: dg.PartitionsDefinition, changes_lookback: timedelta
) -> dg.AssetsDefinition:
    @dg.asset(
        name=DATASET,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WRITER_POOL,
        group_name="ledger",
        kinds={"postgres", "parquet", "s3"},
        owners=OWNERS,
        check_specs=[
            dg.AssetCheckSpec(
                COUNT_CHECK,
                asset=DATASET,
                blocking=True,
                description=(
                    "Blocking, ERROR: rows staged per day equal the ledger's own count in the "
                    "same snapshot, so a short extract never reaches the warehouse."
                ),
            )
        ],
        description=(
            "Every ledger entry posted on the US-Eastern day (posted_at, half-open), streamed "
            "from Postgres into one zstd Parquet file per day (`{stage}/ledger_entries/{day}/`), "
            "in one REPEATABLE READ snapshot with the day counts. The same snapshot also stages "
            "every entry inserted or edited (updated_at) since the newest extract the warehouse "
            "holds (minus a look-back) on any ledger day already loaded: a backdated posting or "
            "an edit reaches the warehouse on the next run and is replaced by id."
        ),
    )
    def ledger_entries(
        context: dg.AssetExecutionContext,
        ledger: LedgerResource,
        stage: StageResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        tw = context.partition_time_window
        days = days_of_range(tw.start, tw.end)
        dsn = ledger.resolve_dsn()
        loader = warehouse.loader(stage.uri)
        cursor = loader.query(CURSOR_SQL)
        newest = cursor[0][0] if cursor and cursor[0][0] is not None else None
        since = newest - changes_lookback if newest is not None else None  # type: ignore[operator]
        loaded = [r[0] for r in loader.query(LOADED_DAYS_SQL)]
        context.log.info(
            f"extracting ledger entries {days[0]}..{days[-1]} from {describe_dsn(dsn)}"
            + (f", and changes since {since.isoformat()}" if since else "")
        )
        result = stage_ledger(
            dsn,
            stage.store_for_writing(context),
            days,
            context.run.run_id,
            changed_since=since,
            loaded_days=loaded,  # type: ignore[arg-type]
        )
        mismatched = {
            d.isoformat(): (c.staged, c.fetched)
            for d, c in result.per_day.items()
            if c.staged != c.fetched
        }
        if mismatched:  # stage_ledger published nothing: say why, for the loads to refuse
            now = datetime.now(UTC).isoformat()
            for d in days:
                record_check_failure(
                    stage.store(),
                    CheckFailure(DATASET, d, COUNT_CHECK, context.run.run_id,
                                 f"staged != the ledger's count on {sorted(mismatched)}", now),
                )  # fmt: skip
        run_meta, per_day = stage_metadata(result)
        record_days(context, days, per_day)
        return dg.MaterializeResult(
            metadata=run_meta,
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
