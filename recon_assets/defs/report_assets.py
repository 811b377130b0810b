"""`reconciliation_report`: the ops-facing daily report, as files on the stage and in the UI."""

from datetime import UTC, date, datetime

import dagster as dg

from recon_assets.defs.resources import StageResource, WarehouseResource
from recon_assets.stage.store import StageStore
from recon_assets.timewindows import days_of_range
from recon_assets.warehouse.report import (
    HISTORY_FILE_PREFIX,
    DayReport,
    ReportState,
    fetch_history,
    fetch_reports,
    rebuilt_days_outside,
    render_breaks_csv,
    render_history_markdown,
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


def history_key(day: str) -> str:
    return f"reports/{day}/{HISTORY_FILE_PREFIX}{day}.md"


def state_key(day: str) -> str:
    return f"reports/{day}/_state.json"


def _write(store: StageStore, key: str, text: str) -> None:
    with store.open_atomic(key) as fh:
        fh.write(text.encode())


def _read(store: StageStore, key: str) -> str | None:
    try:
        return store.read_bytes(key).decode()
    except Exception:  # never written: the day has no report yet
        return None


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
            "units), with history_<day>.md beside them: each break new, still open or resolved "
            "since the day's last report (first seen, days open, how it was resolved), and "
            "every change made to the day after its first final report, before and after. The "
            "latest day's summary is shown here."
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
            states = {
                d: ReportState.from_json(_read(store, state_key(d.isoformat()))) for d in days
            }
            histories = {d: fetch_history(query, d, states[d]) for d in days}
            # Past days this run's data reopened (a late posting, a look-up, a change): their
            # report is rewritten when, and only when, its content changed; their history when
            # it has something new (a refund changes no status, but a signed-off day lists it).
            restated: list[DayReport] = []
            history_only: list[date] = []
            for d in rebuilt_days_outside(query, days):
                before = _read(store, report_key(d.isoformat(), "md"))
                if before is None:
                    continue  # never reported: nothing to restate
                (r,) = fetch_reports(query, [d])
                states[d] = ReportState.from_json(_read(store, state_key(d.isoformat())))
                histories[d] = fetch_history(query, d, states[d])
                if report_content(before) != report_content(render_markdown(r)):
                    restated.append(r)
                elif histories[d].changes_after_signoff:
                    history_only.append(d)
        lines = [f"{r.day.isoformat()} ({r.break_count} breaks, {r.day_status})" for r in restated]
        uris: dict[str, list[str]] = {}
        now = datetime.now(UTC)
        for r in [*restated, *reports]:
            day = r.day.isoformat()
            extra = lines if r is reports[-1] else ()
            _write(store, report_key(day, "md"), render_markdown(r, note, restated=extra))
            _write(store, report_key(day, "csv"), render_breaks_csv(r))
            uris[day] = [store.uri(report_key(day, "md")), store.uri(report_key(day, "csv"))]
        for r in [*restated, *reports]:
            _write(
                store,
                history_key(r.day.isoformat()),
                render_history_markdown(histories[r.day], note),
            )
            # last: the day's state moves only once its files are all written
            state = states[r.day].after_report(now, r.day_status == "final")
            _write(store, state_key(r.day.isoformat()), state.to_json())
            uris[r.day.isoformat()].append(store.uri(history_key(r.day.isoformat())))
        for d in history_only:  # the report stands; the changes since sign-off are listed
            _write(store, history_key(d.isoformat()), render_history_markdown(histories[d], note))
        latest = reports[-1]
        since = {r.day.isoformat(): histories[r.day].since_last_report() for r in reports}
        signed_off_changes = {
            d.isoformat(): len(h.changes_after_signoff)
            for d, h in sorted(histories.items())
            if h.changes_after_signoff
        }
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
                "breaks_since_last_report": dg.MetadataValue.json(since),
                "changed_after_signoff": dg.MetadataValue.json(signed_off_changes),
                "latest_day": dg.MetadataValue.md(render_markdown(latest, max_breaks=20)),
            }
        )

    return reconciliation_report
