"""`stripe_charges`: the charges created on each US-Eastern day, staged as Parquet."""

import dagster as dg

from recon_assets.defs.resources import StageResource, StripeResource
from recon_assets.stripe.pull import PullResult, pull_charges
from recon_assets.timewindows import days_of_range

OWNERS = ["team:data-platform"]
QUARANTINE_CHECK = "quarantine_rate_below_threshold"


def pull_metadata(result: PullResult) -> dict[str, dg.MetadataValue]:
    c = result.counters
    return {
        "rows": dg.MetadataValue.int(result.staged),
        "fetched": dg.MetadataValue.int(result.fetched),
        "quarantined": dg.MetadataValue.int(result.quarantined),
        "requests": dg.MetadataValue.int(c["requests"]),
        "retries": dg.MetadataValue.int(c["retries"]),
        "rate_limited_429": dg.MetadataValue.int(c["rate_limited_429"]),
        "server_errors_5xx": dg.MetadataValue.int(c["server_errors_5xx"]),
        "connection_errors": dg.MetadataValue.int(c["connection_errors"]),
        "bytes_received": dg.MetadataValue.int(c["bytes_received"]),
        "bytes": dg.MetadataValue.int(result.staged_bytes),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "charges_per_s": dg.MetadataValue.float(round(result.charges_per_s, 1)),
        "staged_uris": dg.MetadataValue.json([f.uri for f in result.files]),
        "quarantine_uris": dg.MetadataValue.json([f.uri for f in result.quarantine_files]),
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
        "schema_drift": dg.MetadataValue.json(
            {
                "unknown_fields": dict(result.drift_fields),
                "unknown_statuses": dict(result.drift_statuses),
            }
        ),
    }


def build_stripe_charges_asset(
    partitions: dg.PartitionsDefinition, quarantine_threshold: float = 0.01
) -> dg.AssetsDefinition:
    @dg.asset(
        name="stripe_charges",
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="stripe",
        kinds={"stripe", "parquet", "s3"},
        owners=OWNERS,
        check_specs=[dg.AssetCheckSpec(QUARANTINE_CHECK, asset="stripe_charges", blocking=True)],
        description=(
            "Every Stripe charge created on the US-Eastern day, pulled from GET /v1/charges in "
            "parallel time slices and staged as one zstd Parquet file per day "
            "(<stage>/stripe_charges/<day>/). Records that fail validation go to "
            "<stage>/quarantine/stripe_charges/<day>/ with the raw payload and the error; "
            "fetched = staged + quarantined is enforced. Re-materializing a day re-pulls its "
            "current versions (captures, refunds, disputes change charges after their day)."
        ),
    )
    def stripe_charges(
        context: dg.AssetExecutionContext, stripe: StripeResource, stage: StageResource
    ) -> dg.MaterializeResult:
        window = context.partition_time_window
        days = days_of_range(window.start, window.end)
        context.log.info(f"pulling charges for {days[0]}..{days[-1]} ({len(days)} days)")
        with stripe.charges_client() as client:
            result = pull_charges(
                client,
                stage.store(),
                days,
                context.run.run_id,
                windows_per_day=stripe.windows_per_day,
                concurrency=stripe.concurrency,
            )
        rate = result.quarantined / result.fetched if result.fetched else 0.0
        context.log.info(
            f"staged {result.staged} charges, quarantined {result.quarantined}, "
            f"{result.charges_per_s:.0f} charges/s"
        )
        return dg.MaterializeResult(
            metadata=pull_metadata(result),
            check_results=[
                dg.AssetCheckResult(
                    check_name=QUARANTINE_CHECK,
                    passed=rate <= quarantine_threshold,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "quarantine_rate": dg.MetadataValue.float(round(rate, 6)),
                        "threshold": dg.MetadataValue.float(quarantine_threshold),
                        "quarantined": dg.MetadataValue.int(result.quarantined),
                    },
                    description="Share of fetched charges that failed validation.",
                )
            ],
        )

    return stripe_charges
