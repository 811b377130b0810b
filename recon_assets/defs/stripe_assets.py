"""`stripe_charges`, `stripe_refunds`: the Stripe objects created on each US-Eastern day, staged as
Parquet (one asset per `StripeSource`), and the late changes and look-ups by id that follow."""

import dataclasses
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from recon_assets.defs.metadata import by_id_metadata, record_days, stage_metadata
from recon_assets.defs.partitions import WRITER_POOL
from recon_assets.defs.resources import StageResource, StripeResource, WarehouseResource
from recon_assets.stage.manifest import CheckFailure, publish_manifest, record_check_failure
from recon_assets.stripe.events import sync_charge_events
from recon_assets.stripe.lookup import (
    EPOCH,
    LOOKUP_SCAN_MARK_SQL,
    LOOKUP_SCANS_SQL,
    UNKNOWN_DISPUTE_REFS_SQL,
    UNKNOWN_FEE_TXNS_SQL,
    UNKNOWN_PAYOUT_REFS_SQL,
    UNKNOWN_REFS_SQL,
    UNKNOWN_REFUND_REFS_SQL,
    lookup_charges,
    next_lookup_scan,
)
from recon_assets.stripe.pull_shards import process_count, pull_in_processes
from recon_assets.stripe.sources import (
    BALANCE_TRANSACTIONS,
    CHARGES,
    DISPUTES,
    PAYOUT_TRANSACTIONS,
    PAYOUTS,
    REFUNDS,
    StripeSource,
)
from recon_assets.timewindows import Window, days_of_range
from recon_assets.warehouse.loader import WarehouseLoader

OWNERS = ["team:data-platform"]
QUARANTINE_CHECK = "quarantine_rate_below_threshold"


def build_stripe_charges_asset(
    partitions: dg.PartitionsDefinition, quarantine_threshold: float = 0.01
) -> dg.AssetsDefinition:
    return build_stripe_asset(CHARGES, partitions, quarantine_threshold)


def build_stripe_asset(
    source: StripeSource, partitions: dg.PartitionsDefinition, quarantine_threshold: float = 0.01
) -> dg.AssetsDefinition:
    """The daily pull of one Stripe object (`source`): the charges pull is also the template of
    every other object's, so each gets the same paging, limiter, retries, quarantine and
    blocking check."""
    name, what = source.dataset, source.name
    parent_deps = [] if source.parent_filter is None else [PARENTS[source.dataset][0]]

    @dg.asset(
        name=name,
        deps=parent_deps,
        pool=WRITER_POOL,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="stripe",
        kinds={"stripe", "parquet", "s3"},
        owners=OWNERS,
        check_specs=[
            dg.AssetCheckSpec(
                QUARANTINE_CHECK,
                asset=name,
                blocking=True,
                description=(
                    f"Blocking, ERROR: at most 1 % of the {what} fetched for the range failed "
                    "validation (they are in the quarantine, counted). More stops the run "
                    "before anything is loaded."
                ),
            )
        ],
        description=(
            f"Every Stripe {what[:-1]} created on the US-Eastern day, pulled from GET "
            f"{source.path} in parallel time slices and staged as one zstd Parquet file per day "
            f"(`{{stage}}/{name}/{{day}}/`). Records that fail validation go to "
            f"`{{stage}}/{source.quarantine_prefix}/{{day}}/` with the raw payload and the error; "
            "fetched = staged + quarantined is enforced. Re-materializing a day re-pulls its "
            f"current versions ({what} change after their day)."
        ),
    )
    def _stripe_asset(
        context: dg.AssetExecutionContext,
        stripe: StripeResource,
        stage: StageResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        window = context.partition_time_window
        days = days_of_range(window.start, window.end)
        context.log.info(f"pulling {what} for {days[0]}..{days[-1]} ({len(days)} days)")
        store = stage.store_for_writing(context)
        parents = None
        if source.parent_filter is not None:
            parents = parents_by_day(warehouse.loader(stage.uri), PARENTS[source.dataset][1], days)
        processes = process_count(stripe.pull_processes, len(days), store, source)
        if processes > 1:
            context.log.info(f"pulling in {processes} processes")
        with stripe.client_spec() as spec:
            result = pull_in_processes(
                source, spec, store, days, context.run.run_id, processes=processes,
                windows_per_day=stripe.windows_per_day, concurrency=stripe.concurrency,
                publish=False, parents=parents,
            )  # fmt: skip
        rate = result.quarantined / result.fetched if result.fetched else 0.0
        if rate <= quarantine_threshold:  # the staged days become current only now
            for m in result.manifests:
                publish_manifest(store, m)
        else:
            now = datetime.now(UTC).isoformat()
            for d in days:
                record_check_failure(
                    store,
                    CheckFailure(
                        name, d, QUARANTINE_CHECK, context.run.run_id,
                        f"quarantine rate {rate:.4%} of the range is above "
                        f"{quarantine_threshold:.2%}", now,
                    ),
                )  # fmt: skip
        context.log.info(
            f"staged {result.staged} {what}, quarantined {result.quarantined}, "
            f"{result.rows_per_s:.0f} {what}/s"
        )
        run_meta, per_day = stage_metadata(result)
        record_days(context, days, per_day)
        return dg.MaterializeResult(
            metadata=run_meta,
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
                    description=f"Share of fetched {what} that failed validation.",
                )
            ],
        )

    return _stripe_asset


PAID_PAYOUTS_SQL = """
select id, created, _partition_date
from (
    select id, created, status, _partition_date,
           row_number() over (partition by id order by _synced_at desc, _loaded_at desc) as n
    from raw.stripe_payouts
    where _partition_date >= cast('{first}' as date)
      and _partition_date < cast('{end}' as date)
) as v
where n = 1 and lower(status) = 'paid'
order by 3, 1
"""
"""The paid payouts arriving on a range of days (their latest version): the parents whose
transactions `PAYOUT_TRANSACTIONS` pulls."""

PARENTS: dict[str, tuple[dg.AssetKey, str]] = {
    PAYOUT_TRANSACTIONS.dataset: (dg.AssetKey(["raw", PAYOUTS.dataset]), PAID_PAYOUTS_SQL),
}
"""Per source pulled by parent: the loaded parents' asset and the query naming them."""


def parents_by_day(
    loader: WarehouseLoader, sql: str, days: Sequence[date]
) -> dict[date, list[tuple[str, Window]]]:
    """The parents of each day, each with the window its children were created in (before
    the parent itself: a payout carries what was in the balance when it was made)."""
    q = sql.format(first=days[0].isoformat(), end=(days[-1] + timedelta(1)).isoformat())
    out: dict[date, list[tuple[str, Window]]] = {}
    for pid, created, day in loader.query(q):
        at = created if isinstance(created, datetime) else datetime.fromisoformat(str(created))
        if at.tzinfo is None:  # Snowflake's TIMESTAMP_NTZ holds the UTC wall clock
            at = at.replace(tzinfo=UTC)
        d = day if isinstance(day, date) else date.fromisoformat(str(day))
        out.setdefault(d, []).append((str(pid), Window(0, int(at.timestamp()) + 1)))
    return out


LOOKUPS_KEY = dg.AssetKey(["raw", "stripe_charge_lookups"])
EVENTS_KEY = dg.AssetKey(["raw", "stripe_charge_events"])

HELD_SQL = "select distinct id from raw.{} where id in ({})"
EVENTS_CURSOR_SQL = "select max(read_until) from raw.stripe_event_reads having count(*) > 0"
"""The events cursor: no row before the first read (never a NULL some engines render as 0)."""
FIRST_LOADED_SQL = (
    "select min(partition_date) from raw.load_log "
    "where dataset = 'stripe_charges' and load_kind = 'day' having count(*) > 0"
)


def _unix(value: object) -> int | None:
    return None if value is None else int(_utc(value).timestamp())


def _utc(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    # a TIMESTAMP_NTZ read back: the loaders write UTC
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _first_instant(rows: Sequence[tuple[object, ...]]) -> datetime | None:
    """The one timestamp a `max(...)` read returned, in UTC (None before the first row)."""
    value = rows[0][0] if rows else None
    return None if value is None else _utc(value)


def _as_date(value: object) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def build_stripe_events_asset(
    partitions: dg.PartitionsDefinition, horizon_days: int, overlap: timedelta
) -> dg.AssetsDefinition:
    @dg.asset(
        key=EVENTS_KEY,
        pool=WRITER_POOL,
        deps=[
            dg.AssetKey(["raw", "stripe_charges"]),
            dg.AssetKey(["raw", "stripe_refunds"]),
            dg.AssetKey(["raw", "stripe_disputes"]),
            dg.AssetKey(["raw", "stripe_payouts"]),
        ],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="warehouse",
        kinds={"stripe", "parquet"},
        owners=OWNERS,
        description=(
            "Late changes to charges of any day (bank debits settling, late and partial "
            "captures, refunds, disputes): reads Stripe's charge events since the cursor stored "
            "in raw.stripe_event_reads, takes each held charge's latest state (the newest "
            "event's object, or GET /v1/charges/{id} through the shared limiter), stages it and "
            "loads it by id, so the marts rebuild it on its own day whatever day the run covers. "
            "A cursor older than Stripe's 30 days of events fails the run and names the range "
            "a backfill must cover."
        ),
    )
    def stripe_charge_events(
        context: dg.AssetExecutionContext,
        stripe: StripeResource,
        stage: StageResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        window = context.partition_time_window
        days = days_of_range(window.start, window.end)
        loader = warehouse.loader(stage.uri)
        cursor = next((_unix(r[0]) for r in loader.query(EVENTS_CURSOR_SQL)), None)
        earliest = next((_as_date(r[0]) for r in loader.query(FIRST_LOADED_SQL)), None)

        def held_in(table: str) -> Callable[[Sequence[str]], set[str]]:
            def held(ids: Sequence[str]) -> set[str]:
                out: set[str] = set()
                for i in range(0, len(ids), 1000):
                    chunk = list(ids[i : i + 1000])
                    sql = HELD_SQL.format(table, ", ".join("?" * len(chunk)))
                    out |= {str(r[0]) for r in loader.query(sql, chunk)}
                return out

            return held

        store = stage.store()
        with stripe.charges_client() as client:
            result = sync_charge_events(
                client,
                store,
                context.run.run_id,
                cursor=cursor,
                earliest_loaded=earliest,
                run_days=days,
                now_hint=min(int(window.end.timestamp()), int(time.time())),
                held=held_in("stripe_charges"),
                held_own=lambda source: held_in(source.dataset),
                horizon_days=horizon_days,
                overlap_s=int(overlap.total_seconds()),
                concurrency=stripe.concurrency,
            )
        for m in result.own_manifests:  # before the charges, whose load moves the cursor
            loader.load_keyed(store, m, run_id=context.run.run_id)
        loaded = loader.load_keyed(store, result.manifest, run_id=context.run.run_id)
        reopened = sorted(d for d in result.found_by_day if d not in days)
        context.log.info(
            f"{result.events} charge events since "
            f"{datetime.fromtimestamp(result.read_from, UTC).isoformat()}: "
            f"{result.repulled} charges re-pulled, {len(reopened)} earlier days reopened"
        )
        # The events of a run are the run's, not any day's: no per-day figures but the charges
        # of each run day that were re-pulled.
        record_days(
            context,
            days,
            {
                d: {"charges_repulled": dg.MetadataValue.int(n)}
                for d, n in result.found_by_day.items()
            },
        )
        return dg.MaterializeResult(
            metadata={
                "run_events_read": dg.MetadataValue.int(result.events),
                "run_charges_changed": dg.MetadataValue.int(result.changed),
                "run_charges_repulled": dg.MetadataValue.int(result.repulled),
                "run_refunds_repulled": dg.MetadataValue.int(
                    result.own_repulled.get(REFUNDS.dataset, 0)
                ),
                "run_disputes_repulled": dg.MetadataValue.int(
                    result.own_repulled.get(DISPUTES.dataset, 0)
                ),
                "run_payouts_repulled": dg.MetadataValue.int(
                    result.own_repulled.get(PAYOUTS.dataset, 0)
                ),
                "run_retrieved_by_id": dg.MetadataValue.int(result.retrieved),
                "run_not_held": dg.MetadataValue.int(result.not_held),
                "run_quarantined": dg.MetadataValue.int(result.quarantined),
                **by_id_metadata(result.found_by_day, days),
                "run_event_types": dg.MetadataValue.json(dict(sorted(result.types.items()))),
                "run_read_from": dg.MetadataValue.timestamp(float(result.read_from)),
                "run_cursor": dg.MetadataValue.timestamp(float(result.read_until)),
                "run_requests": dg.MetadataValue.int(result.counters["requests"]),
                "run_retries": dg.MetadataValue.int(result.counters["retries"]),
                "run_rows_replaced_by_id": dg.MetadataValue.int(loaded.replaced_rows),
                "run_seconds": dg.MetadataValue.float(round(result.seconds, 3)),
            }
        )

    return stripe_charge_events


def build_stripe_lookups_asset(
    partitions: dg.PartitionsDefinition, max_lookups: int
) -> dg.AssetsDefinition:
    @dg.asset(
        key=LOOKUPS_KEY,
        pool=WRITER_POOL,
        # after the events: a charge they brought in needs no look-up
        deps=[
            dg.AssetKey(["raw", "ledger_entries"]),
            dg.AssetKey(["raw", "stripe_refunds"]),
            dg.AssetKey(["raw", "stripe_balance_transactions"]),
            dg.AssetKey(["raw", "stripe_disputes"]),
            dg.AssetKey(["raw", "stripe_payouts"]),
            EVENTS_KEY,
        ],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="warehouse",
        kinds={"stripe", "parquet"},
        owners=OWNERS,
        description=(
            "Before any ledger charge entry is called missing_in_stripe, its charge is looked up "
            "by id (GET /v1/charges/{id}, same client, limiter and retries as the pull) when the "
            "warehouse does not hold it: found charges are staged and loaded by id (reconciled on "
            "their own day), 404s and unreadable charges are recorded in "
            "raw.stripe_charge_lookups. At most RECON_STRIPE_MAX_LOOKUPS ids per run; more is a "
            "clear failure asking for a backfill of the Stripe days."
        ),
    )
    def stripe_charge_lookups(
        context: dg.AssetExecutionContext,
        stripe: StripeResource,
        stage: StageResource,
        warehouse: WarehouseResource,
    ) -> dg.MaterializeResult:
        loader = warehouse.loader(stage.uri)
        # Read before the first query: what is loaded through it is what this run reads.
        mark = _first_instant(loader.query(LOOKUP_SCAN_MARK_SQL))
        scans = [(_utc(a), _utc(b)) for a, b in loader.query(LOOKUP_SCANS_SQL)]
        scan = next_lookup_scan(mark, scans) if mark is not None else None
        since = scan.read_from if scan is not None else EPOCH
        ids = [str(r[0]) for r in loader.query(UNKNOWN_REFS_SQL, (since, since))]
        refund_ids = [str(r[0]) for r in loader.query(UNKNOWN_REFUND_REFS_SQL, (since, since))]
        context.log.info(
            f"{len(ids)} ledger-named charges and {len(refund_ids)} refunds to look up in Stripe"
        )
        store = stage.store()
        results, replaced = [], 0
        looked_up: dict[str, int] = {}
        # What each step looks for: the fees' transactions are those of charges held now (the
        # ones just found included), so their query runs after the charges' step.
        steps: tuple[tuple[StripeSource, str | list[str]], ...] = (
            (CHARGES, ids),
            (REFUNDS, refund_ids),
            (DISPUTES, UNKNOWN_DISPUTE_REFS_SQL),
            (PAYOUTS, UNKNOWN_PAYOUT_REFS_SQL),
            (BALANCE_TRANSACTIONS, UNKNOWN_FEE_TXNS_SQL),
        )
        with stripe.charges_client() as client:
            left = max_lookups  # one bound for the run, shared in this order
            for source, wanted in steps:
                last = source is steps[-1][0]
                if isinstance(wanted, str):
                    wanted = [str(r[0]) for r in loader.query(wanted, (since, since))]
                if source is not CHARGES and not last and not wanted:
                    continue
                result = lookup_charges(
                    client, store, wanted, context.run.run_id, max_lookups=left,
                    concurrency=stripe.concurrency, source=source,
                )  # fmt: skip
                left = max(0, left - len(wanted))
                manifest = result.manifest
                if last and scan is not None:
                    # every step ended well: the next run reads only rows loaded after this
                    manifest = dataclasses.replace(manifest, lookup_scan=scan)
                replaced += loader.load_keyed(
                    store, manifest, run_id=context.run.run_id
                ).replaced_rows
                results.append(result)
                looked_up[source.name] = result.requested
            c = client.counters.as_dict()
        found_by_day: dict[date, int] = {}
        for r in results:
            for d, n in r.found_by_day.items():
                found_by_day[d] = found_by_day.get(d, 0) + n
        days = days_of_range(context.partition_time_window.start, context.partition_time_window.end)
        record_days(
            context,
            days,
            {d: {"charges_found": dg.MetadataValue.int(n)} for d, n in found_by_day.items()},
        )
        return dg.MaterializeResult(
            metadata={
                "run_lookups": dg.MetadataValue.int(sum(r.requested for r in results)),
                "run_refund_lookups": dg.MetadataValue.int(looked_up.get(REFUNDS.name, 0)),
                "run_fee_transaction_lookups": dg.MetadataValue.int(
                    looked_up.get(BALANCE_TRANSACTIONS.name, 0)
                ),
                "run_dispute_lookups": dg.MetadataValue.int(looked_up.get(DISPUTES.name, 0)),
                "run_payout_lookups": dg.MetadataValue.int(looked_up.get(PAYOUTS.name, 0)),
                "run_found": dg.MetadataValue.int(sum(r.found for r in results)),
                "run_not_found_404": dg.MetadataValue.int(sum(r.not_found for r in results)),
                "run_quarantined": dg.MetadataValue.int(sum(r.quarantined for r in results)),
                "run_requests": dg.MetadataValue.int(c["requests"]),
                "run_retries": dg.MetadataValue.int(c["retries"]),
                "max_lookups": dg.MetadataValue.int(max_lookups),
                **by_id_metadata(found_by_day, days),
                "run_rows_replaced_by_id": dg.MetadataValue.int(replaced),
                "run_seconds": dg.MetadataValue.float(round(sum(r.seconds for r in results), 3)),
            }
        )

    return stripe_charge_lookups
