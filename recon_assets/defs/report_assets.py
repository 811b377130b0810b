"""`reconciliation_report`: the ops-facing daily report, as files on the stage and in the UI."""

import dagster as dg

from recon_assets.defs.resources import StageResource, WarehouseResource
from recon_assets.timewindows import days_of_range
from recon_assets.warehouse.report import (
    DayReport,
    fetch_reports,
    rebuilt_days_outside,
    render_breaks_csv,
    render_markdown,
    report_content,
)

REPORT_KEY = dg.AssetKey("reconciliation_report")
UPSTREAM = [
    dg.AssetKey(["marts", "rpt_daily_reconciliation"]),
    dg.AssetKey(["marts", "fct_charge_reconciliation"]),
]


def report_key(day: str, ext: str) -> str:
    return f"reports/{day}/reconciliation_{day}.{ext}"


def build_report_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=REPORT_KEY,
        deps=UPSTREAM,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="reconciliation",
        kinds={"csv", "markdown"},
        owners=["team:finance-ops"],
        description=(
            "What finance ops opens at 9 AM US-Eastern: for each day, totals by currency and "
            "reconciliation status, and every break with its amounts. Written to "
            "<stage>/reports/<day>/reconciliation_<day>.md and .csv (breaks, integer minor "
            "units); the latest day's summary is shown here."
        ),
    )
    def reconciliation_report(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, stage: StageResource
    ) -> dg.MaterializeResult:
        tw = context.partition_time_window
        days = days_of_range(tw.start, tw.end)
        store = stage.store()
        note = f"Dagster run {context.run.run_id}."
        with warehouse.query() as query:
            reports = fetch_reports(query, days)
            # Past days this run's data reopened (a late posting, a look-up, a change): their
            # report is rewritten when, and only when, its content changed.
            restated: list[DayReport] = []
            for d in rebuilt_days_outside(query, days):
                try:
                    before = store.read_bytes(report_key(d.isoformat(), "md")).decode()
                except Exception:
                    continue  # never reported: nothing to restate
                (r,) = fetch_reports(query, [d])
                if report_content(before) != report_content(render_markdown(r)):
                    restated.append(r)
        lines = [f"{r.day.isoformat()} ({r.break_count} breaks, {r.day_status})" for r in restated]
        uris: dict[str, list[str]] = {}
        for r in [*restated, *reports]:
            day = r.day.isoformat()
            extra = lines if r is reports[-1] else ()
            for ext, text in (
                ("md", render_markdown(r, note, restated=extra)),
                ("csv", render_breaks_csv(r)),
            ):
                with store.open_atomic(report_key(day, ext)) as fh:
                    fh.write(text.encode())
            uris[day] = [store.uri(report_key(day, "md")), store.uri(report_key(day, "csv"))]
        latest = reports[-1]
        return dg.MaterializeResult(
            metadata={
                "items": dg.MetadataValue.int(sum(r.items for r in reports)),
                "breaks": dg.MetadataValue.int(sum(r.break_count for r in reports)),
                "breaks_by_day": dg.MetadataValue.json(
                    {r.day.isoformat(): r.break_count for r in reports}
                ),
                "status_counts_by_day": dg.MetadataValue.json(
                    {r.day.isoformat(): r.counts_by_status() for r in reports}
                ),
                "report_files": dg.MetadataValue.json(uris),
                "restated_since_last_report": dg.MetadataValue.json(lines),
                "day_status": dg.MetadataValue.json(
                    {r.day.isoformat(): [r.day_status, r.day_status_reason] for r in reports}
                ),
                "latest_day": dg.MetadataValue.md(render_markdown(latest, max_breaks=20)),
            }
        )

    return reconciliation_report
