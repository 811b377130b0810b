"""`reconciliation_report`: the ops-facing daily report, as files on the stage and in the UI."""

from dataclasses import dataclass
from datetime import UTC, date, datetime

import dagster as dg

from recon_assets.defs.partitions import WRITER_POOL
from recon_assets.defs.resources import StageResource, WarehouseResource
from recon_assets.report.data import (
    DayHistory,
    DayReport,
    ReportState,
    fetch_histories,
    fetch_index,
    fetch_reports,
    format_minor,
    rebuilt_days_outside,
    render_breaks_csv,
    render_summary_markdown,
)
from recon_assets.report.render import RunInfo, render_day_html, render_index_html
from recon_assets.stage.store import StageStore
from recon_assets.timewindows import days_of_range

REPORT_KEY = dg.AssetKey("reconciliation_report")
UPSTREAM = [
    dg.AssetKey(["marts", "rpt_daily_reconciliation"]),
    dg.AssetKey(["marts", "fct_charge_reconciliation"]),
    dg.AssetKey(["marts", "rpt_break_history"]),
    dg.AssetKey(["marts", "rpt_status_changes"]),
]
INDEX_KEY = "reports/index.html"


def report_key(day: str, ext: str) -> str:
    return f"reports/{day}/reconciliation_{day}.{ext}"


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


@dataclass(frozen=True)
class ReportLinks:
    dagster_url: str | None
    """The Dagster webserver's base URL (RECON_DAGSTER_URL): reports link to their run."""
    stripe_dashboard_url: str
    """Stripe's dashboard payments URL a charge id is appended to."""


def day_metadata(report: DayReport, history: DayHistory, uri: str) -> dict[str, object]:
    """The day's own figures, recorded on that day's materialization (so plots are per day)."""
    since = history.since_last_report()
    return {
        "items": dg.MetadataValue.int(report.items),
        "breaks": dg.MetadataValue.int(report.break_count),
        "match_rate": dg.MetadataValue.float(round(report.match_rate or 0.0, 6)),
        "final": dg.MetadataValue.bool(report.day_status == "final"),
        "day_status": dg.MetadataValue.text(
            report.day_status
            + (f": {report.day_status_reason}" if report.day_status_reason else "")
        ),
        "new_breaks": dg.MetadataValue.int(since["new"]),
        "still_open_breaks": dg.MetadataValue.int(since["still open"]),
        "resolved_breaks": dg.MetadataValue.int(since["resolved"]),
        "changed_after_signoff": dg.MetadataValue.int(len(history.changes_after_signoff)),
        "break_amount_by_currency": dg.MetadataValue.json(
            {t.currency: t.break_amount for t in report.totals()}
        ),
        "status_counts": dg.MetadataValue.json(report.counts_by_status()),
        "refunds": dg.MetadataValue.int(sum(t.refunds for t in report.refund_totals())),
        "refund_breaks": dg.MetadataValue.int(sum(t.breaks for t in report.refund_totals())),
        "fees": dg.MetadataValue.int(sum(t.items for t in report.fee_totals())),
        "dispute_movements": dg.MetadataValue.int(sum(t.items for t in report.dispute_totals())),
        "fee_breaks": dg.MetadataValue.int(sum(t.breaks for t in report.fee_totals())),
        "unexplained_by_currency": dg.MetadataValue.json(report.unexplained),
        "resolved_by_correction": dg.MetadataValue.int(
            sum(1 for b in history.breaks if b.resolution == "corrected_in_ledger")
        ),
        "report": dg.MetadataValue.url(uri) if "://" in uri else dg.MetadataValue.path(uri),
        "summary": dg.MetadataValue.md(render_summary_markdown(report)),
    }


TIEOUT_CHECK = "balance_tieout_unexplained_is_zero"


def tieout_check(reports: list[DayReport]) -> dg.AssetCheckResult:
    """Fails (ERROR) when a day that is final in every other way (loaded, nothing pending) has
    money the tie-out cannot explain, naming each day and amount: such a day stays preliminary,
    and its numbers are not what the bank will see. A day still waiting for data shows its
    rest in its report, not failed on (the data may be on the way)."""
    bad = [
        f"{r.day.isoformat()} {format_minor(amount, cur)}"
        for r in sorted(reports, key=lambda r: r.day)
        if r.complete
        for cur, amount in sorted(r.unexplained.items())
    ]
    return dg.AssetCheckResult(
        check_name=TIEOUT_CHECK,
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "unexplained Stripe balance movement on a day otherwise final: " + ", ".join(bad)
            if bad
            else None
        ),
        metadata={
            "complete_days_checked": dg.MetadataValue.int(sum(1 for r in reports if r.complete)),
            "unexplained": dg.MetadataValue.json(
                {r.day.isoformat(): r.unexplained for r in reports if r.unexplained}
            ),
        },
    )


def build_report_asset(
    partitions: dg.PartitionsDefinition, links: ReportLinks
) -> dg.AssetsDefinition:
    @dg.asset(
        key=REPORT_KEY,
        pool=WRITER_POOL,
        deps=UPSTREAM,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="reconciliation",
        kinds={"html", "csv"},
        owners=["team:finance-ops"],
        check_specs=[
            dg.AssetCheckSpec(
                TIEOUT_CHECK,
                asset=REPORT_KEY,
                description=(
                    "ERROR: on every final day the run reported, the Stripe balance ties out "
                    "with the ledger: the tie-out's unexplained rest (marts.rpt_balance_tieout) "
                    "is 0 in every currency. A failure names each day and amount; the alert "
                    "says the same."
                ),
            )
        ],
        description=(
            "What finance ops opens at 9 AM US-Eastern, per day: "
            "`{stage}/reports/{day}/reconciliation_{day}.html` (self-contained: final or "
            "preliminary and why, totals and match rate per currency, every break with its "
            "charge, customer, amounts, first seen and days open, what is new or resolved since "
            "the last report, what changed after sign-off, a 30-day trend, a status legend), "
            "the same breaks as CSV in minor units, and `{stage}/reports/index.html` of all "
            "days. Each day's figures are on that day's materialization."
        ),
    )
    def reconciliation_report(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, stage: StageResource
    ) -> dg.MaterializeResult:
        tw = context.partition_time_window
        days = days_of_range(tw.start, tw.end)
        store = stage.store()
        run_id = context.run.run_id
        with warehouse.query() as query:
            reports = fetch_reports(query, days)
            states = {r.day: ReportState.from_json(_read(store, state_key(r.day.isoformat())))
                      for r in reports}  # fmt: skip
            # Past days this run's data reopened (a late posting, a look-up, an event): their
            # report is rewritten when its data changed ("restated"), or when the day was
            # signed off and something changed on it (a refund changes no status). A night of
            # late events reopens hundreds of days: they are read in one batch, not per day.
            reopened: dict[date, ReportState] = {}
            for d in rebuilt_days_outside(query, days):
                state = ReportState.from_json(_read(store, state_key(d.isoformat())))
                if state.last_report_at is not None:  # never reported: nothing to restate
                    reopened[d] = state
            states.update(reopened)
            histories = fetch_histories(query, states)
            restated: list[DayReport] = []
            rewritten: list[DayReport] = []
            for r in fetch_reports(query, list(reopened)):
                if r.fingerprint() != reopened[r.day].fingerprint:
                    restated.append(r)
                elif histories[r.day].changes_after_signoff:
                    rewritten.append(r)
            index = fetch_index(query)
        now = datetime.now(UTC)
        run = RunInfo(
            now,
            run_id,
            f"{links.dagster_url.rstrip('/')}/runs/{run_id}" if links.dagster_url else None,
            links.stripe_dashboard_url,
        )
        lines = [(r.day, r.break_count, r.day_status) for r in restated]
        for r in [*restated, *rewritten, *reports]:
            day = r.day.isoformat()
            extra = lines if r is reports[-1] else ()
            _write(store, report_key(day, "html"), render_day_html(r, histories[r.day], run, extra))
            _write(store, report_key(day, "csv"), render_breaks_csv(r, histories[r.day]))
            # last: the day's state moves only once its files are written
            _write(store, state_key(day), states[r.day].after_report(now, r).to_json())
        _write(store, INDEX_KEY, render_index_html(index, run))
        for r in reports:
            meta = day_metadata(
                r, histories[r.day], store.uri(report_key(r.day.isoformat(), "html"))
            )
            context.add_asset_metadata(meta, partition_key=r.day.isoformat())
        return dg.MaterializeResult(
            check_results=[tieout_check([*reports, *restated, *rewritten])],
            metadata={
                "run_days": dg.MetadataValue.int(len(reports)),
                "restated_since_last_report": dg.MetadataValue.json(
                    [f"{d.isoformat()} ({n} breaks, {st})" for d, n, st in lines]
                ),
                "rewritten_after_signoff": dg.MetadataValue.json(
                    [r.day.isoformat() for r in rewritten]
                ),
                "index": dg.MetadataValue.path(store.uri(INDEX_KEY)),
            },
        )

    return reconciliation_report
