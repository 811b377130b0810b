"""`raw/stripe_charges` and `raw/ledger_entries`: each day's current staged file, loaded.

A load replaces exactly the range's days in one transaction (the loaders' contract), and an
ERROR check compares rows staged and rows loaded per day, so a short load fails the run (and
alerts) instead of reaching the marts.
"""

import dagster as dg

from recon_assets.defs.metadata import record_days
from recon_assets.defs.partitions import WRITER_POOL
from recon_assets.defs.resources import StageResource, WarehouseResource
from recon_assets.defs.stripe_assets import OWNERS
from recon_assets.stage.manifest import read_keyed_manifest
from recon_assets.timewindows import days_of_range

LOAD_CHECK = "rows_staged_equal_rows_loaded"


def build_raw_asset(
    dataset: str, partitions: dg.PartitionsDefinition, warehouse_kind: str
) -> dg.AssetsDefinition:
    key = dg.AssetKey(["raw", dataset])

    @dg.asset(
        key=key,
        pool=WRITER_POOL,
        deps=[dg.AssetKey(dataset)],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="warehouse",
        kinds={warehouse_kind, "parquet"},
        owners=OWNERS,
        check_specs=[
            dg.AssetCheckSpec(
                LOAD_CHECK,
                asset=key,
                blocking=True,
                description=(
                    "Blocking, ERROR: rows loaded per day equal rows staged (checked inside the "
                    "load's transaction, which rolls back otherwise)."
                ),
            )
        ],
        description=(
            f"raw.{dataset}: the current staged file of each US-Eastern day (named by the day's "
            "manifest), loaded by replacing the range's rows in one transaction (delete, then "
            "COPY INTO / read_parquet), recording each day in raw.load_log in the same "
            "transaction (an empty day is a loaded day). For the ledger, the entries the same run "
            "staged as late changes are then replaced by id. Re-loading is always safe."
        ),
    )
    def _raw(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, stage: StageResource
    ) -> dg.MaterializeResult:
        tw = context.partition_time_window
        days = days_of_range(tw.start, tw.end)
        loader = warehouse.loader(stage.uri)
        store = stage.store()
        keyed_meta: dict[str, dg.MetadataValue] = {}
        changes = read_keyed_manifest(store, dataset, "changes", context.run.run_id)
        if changes is not None:
            # The late changes this run's extract staged, loaded before the days: the changes
            # cursor (the newest _synced_at loaded) only moves once they are in.
            keyed = loader.load_keyed(store, changes, run_id=context.run.run_id)
            keyed_meta["run_late_changes_loaded"] = dg.MetadataValue.int(keyed.inserted_rows)
            keyed_meta["run_late_changes_by_day"] = dg.MetadataValue.json(
                keyed.to_metadata()["rows_by_day"]
            )
        result = loader.load(store, dataset, days, run_id=context.run.run_id)
        meta = result.to_metadata()
        mismatched = {
            d.day.isoformat(): {"staged": d.staged_rows, "loaded": d.loaded_rows}
            for d in result.mismatched_days
        }
        record_days(
            context,
            days,
            {
                d.day: {
                    "rows": dg.MetadataValue.int(d.loaded_rows),
                    "rows_staged": dg.MetadataValue.int(d.staged_rows),
                    "staged_by_run": dg.MetadataValue.text(d.run_id),
                }
                for d in result.days
            },
        )
        return dg.MaterializeResult(
            metadata={
                "run_rows": dg.MetadataValue.int(result.loaded_total),
                "run_rows_replaced": dg.MetadataValue.int(meta["rows_replaced"]),
                "table": dg.MetadataValue.text(meta["table"]),
                **keyed_meta,
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=LOAD_CHECK,
                    passed=result.ok,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={"mismatched_days": dg.MetadataValue.json(mismatched)},
                )
            ],
        )

    return _raw
