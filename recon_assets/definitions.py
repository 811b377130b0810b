"""The code location: one `Definitions` for the environment named by `RECON_ENV`.

Nothing happens at import: `defs` is a lazy `@dg.definitions` function that Dagster calls when it
loads the location, and only then are environment variables read. `build_definitions(settings)`
is the pure part, used by tests with settings of their own. The dbt manifest must have been
prepared (`recon prepare`); it is never parsed here, except under `dagster dev`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dagster as dg

from recon_assets.config import ReconSettings
from recon_assets.defs.automation import AlertResource, build_automation
from recon_assets.defs.dbt_assets import build_dbt_assets, dbt_project, dbt_resource
from recon_assets.defs.ledger_assets import build_ledger_entries_asset
from recon_assets.defs.partitions import daily_partitions
from recon_assets.defs.report_assets import ReportLinks, build_report_asset
from recon_assets.defs.resources import (
    LedgerResource,
    LocalStripeResource,
    StageResource,
    StripeResource,
    WarehouseResource,
)
from recon_assets.defs.stripe_assets import (
    build_stripe_asset,
    build_stripe_charges_asset,
    build_stripe_events_asset,
    build_stripe_lookups_asset,
)
from recon_assets.defs.warehouse_assets import build_raw_asset
from recon_assets.stripe.sources import (
    BALANCE_TRANSACTIONS,
    DISPUTES,
    PAYOUT_TRANSACTIONS,
    PAYOUTS,
    REFUNDS,
)


def dbt_target(settings: ReconSettings) -> str:
    return "local" if settings.warehouse == "duckdb" else "prod"


def duckdb_dbt_env(settings: ReconSettings) -> dict[str, str]:
    """What dbt's `local` profile reads, set in the dbt process only: the same warehouse file and
    the same DuckDB memory limit as the run's own connections."""
    return {
        "RECON_DUCKDB_PATH": str(settings.duckdb_path),
        "RECON_DUCKDB_MEMORY_LIMIT": settings.duckdb_memory_limit,
    }


def build_resources(settings: ReconSettings) -> dict[str, object]:
    def secret(name: str, value: str | None) -> Any:
        """A credential as a resource gets it: an `EnvVar` whenever it came from the process
        environment, so Dagster resolves it inside the run and stores only its name."""
        if value is None:
            return None
        return dg.EnvVar(name) if name in settings.secrets_in_environment else value

    stripe_common = {
        "api_base": settings.stripe_api_base,
        "rate_per_s": settings.stripe_rate_per_s,
        "max_retries": settings.stripe_max_retries,
        "windows_per_day": settings.stripe_windows_per_day,
        "concurrency": settings.stripe_concurrency,
        "pull_processes": settings.stripe_pull_processes,
    }
    if settings.is_local:
        api_key = secret("STRIPE_API_KEY", settings.stripe_api_key) or ""
        stripe: StripeResource = (
            StripeResource(api_key=api_key, **stripe_common)
            if settings.stripe_api_base
            else LocalStripeResource(
                api_key=api_key,
                emulator_seed=settings.emulator_seed,
                emulator_charges_per_day=settings.emulator_charges_per_day,
                emulator_start_date=settings.start_date.isoformat(),
                emulator_now=settings.emulator_now,
                emulator_changes=str(settings.emulator_changes)
                if settings.emulator_changes
                else None,
                **stripe_common,
            )
        )
        ledger = LedgerResource(
            dsn=secret("RECON_LEDGER_DSN", settings.ledger_dsn),
            embedded_data_dir=str(settings.home / "postgres" / "data"),
        )
    else:
        stripe = StripeResource(
            api_key=secret("STRIPE_API_KEY", settings.stripe_api_key), **stripe_common
        )
        ledger = LedgerResource(dsn=secret("RECON_LEDGER_DSN", settings.ledger_dsn))
    # The integrations are imported only where a setting asks for them: each costs seconds of
    # every code location load (dagster-snowflake alone about 7 s)
    s3 = None
    if settings.stage_uri.startswith("s3://"):
        from dagster_aws.s3 import S3Resource

        s3 = S3Resource(endpoint_url=settings.s3_endpoint_url)
    slack = None
    if settings.slack_bot_configured:  # alert credentials are only ever read from the environment
        from dagster_slack import SlackResource

        slack = SlackResource(token=dg.EnvVar("RECON_SLACK_BOT_TOKEN"))
    if settings.warehouse == "duckdb":
        warehouse = WarehouseResource(
            kind="duckdb",
            duckdb_path=str(settings.duckdb_path),
            duckdb_memory_limit=settings.duckdb_run_memory_limit,
            # the warehouse process opens staged files by path: an s3:// stage keeps DuckDB here
            duckdb_in_child=not settings.stage_uri.startswith("s3://"),
        )
    else:
        from dagster_snowflake import SnowflakeResource

        warehouse = WarehouseResource(
            kind="snowflake",
            snowflake=SnowflakeResource(
                account=dg.EnvVar("SNOWFLAKE_ACCOUNT"),
                user=dg.EnvVar("SNOWFLAKE_USER"),
                password=dg.EnvVar("SNOWFLAKE_PASSWORD"),
                role=dg.EnvVar("SNOWFLAKE_ROLE"),
                warehouse=dg.EnvVar("SNOWFLAKE_WAREHOUSE"),
                database=dg.EnvVar("SNOWFLAKE_DATABASE"),
            ),
            snowflake_database=dg.EnvVar("SNOWFLAKE_DATABASE"),
            snowflake_stage=settings.snowflake_stage,
            snowflake_storage_integration=settings.snowflake_storage_integration,
        )
    alerts = AlertResource(
        log_path=str(settings.home / "alerts.log") if settings.is_local else None,
        webhook_url=dg.EnvVar(settings.alert_webhook_env) if settings.alert_webhook_env else None,
        slack=slack,
        slack_channel=settings.slack_channel,
        slack_api_url=settings.slack_api_url,
        dagster_url=settings.dagster_url,
        report_ready=settings.alert_report_ready,
    )
    return {
        "stripe": stripe,
        "ledger": ledger,
        "stage": StageResource(uri=settings.stage_uri, s3=s3),
        "warehouse": warehouse,
        "dbt": dbt_resource(dbt_project(dbt_target(settings))),
        "alerts": alerts,
    }


def build_definitions(settings: ReconSettings) -> dg.Definitions:
    partitions = daily_partitions(settings.start_date)
    kind = settings.warehouse
    assets = [
        build_stripe_charges_asset(partitions),
        build_stripe_asset(REFUNDS, partitions),
        build_stripe_asset(BALANCE_TRANSACTIONS, partitions),
        build_stripe_asset(PAYOUTS, partitions),
        build_stripe_asset(PAYOUT_TRANSACTIONS, partitions),
        build_stripe_asset(DISPUTES, partitions),
        build_ledger_entries_asset(
            partitions, timedelta(minutes=settings.ledger_changes_lookback_minutes)
        ),
        build_raw_asset("stripe_charges", partitions, kind),
        build_raw_asset("stripe_refunds", partitions, kind),
        build_raw_asset("stripe_balance_transactions", partitions, kind),
        build_raw_asset("stripe_payouts", partitions, kind),
        build_raw_asset("stripe_payout_transactions", partitions, kind),
        build_raw_asset("stripe_disputes", partitions, kind),
        build_raw_asset("ledger_entries", partitions, kind),
        build_stripe_events_asset(
            partitions,
            settings.deep_restate_days,
            timedelta(minutes=settings.stripe_events_overlap_minutes),
        ),
        build_stripe_lookups_asset(partitions, settings.stripe_max_lookups),
        build_dbt_assets(
            partitions_def=partitions,
            target=dbt_target(settings),
            tolerance_days=settings.tolerance_days,
            dbt_env=duckdb_dbt_env(settings) if kind == "duckdb" else None,
            work_dir=settings.home / "dbt-runs" if settings.is_local else None,
        ),
        build_report_asset(
            partitions, ReportLinks(settings.dagster_url, settings.stripe_dashboard_url)
        ),
    ]
    automation = build_automation(
        assets,
        catchup_days=settings.catchup_days,
        start_date=settings.start_date,
        restate_days=settings.restate_days,
        schedule_cron=settings.schedule_cron,
        deep_restate_days=settings.deep_restate_days,
        deep_restate_cron=settings.deep_restate_cron,
        at_risk_hour=settings.at_risk_hour,
        dead_run_check_seconds=settings.dead_run_check_seconds,
    )
    bookkeeping = [
        dg.AssetSpec(
            ["raw", "load_log"],
            group_name="warehouse",
            kinds={kind},
            description=(
                "raw.load_log: one row per dataset and day of every committed load, written by "
                "the raw loads inside their own transactions. Ledger completeness (a charge is "
                "missing_in_ledger only when the ledger is loaded without gaps through its "
                "booking deadline) and each day's final/preliminary status read it."
            ),
        ),
        dg.AssetSpec(
            ["raw", "ledger_dropped_refs"],
            group_name="warehouse",
            kinds={kind},
            description=(
                "raw.ledger_dropped_refs: charge ids a ledger load took a charge entry away "
                "from (re-pointed or vanished), written by raw/ledger_entries, so the marts "
                "rebuild those charges too."
            ),
        ),
    ]
    return dg.Definitions(
        assets=[*assets, *bookkeeping],
        asset_checks=automation["asset_checks"],
        jobs=automation["jobs"],
        schedules=automation["schedules"],
        sensors=automation["sensors"],
        resources=build_resources(settings),
        # Every run (schedule, UI, backfill, CLI) executes its steps in the run's own process:
        # the multiprocess default starts a process per step, and each one re-imports the code
        # location (20-65 s apart under load) for steps that take seconds. The graph is a chain
        # but for the pull and the ledger extract, so little parallelism is lost.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(ReconSettings.from_env())
