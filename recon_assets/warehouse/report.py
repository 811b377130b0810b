"""The ops-facing daily reconciliation report, read from the marts.

What finance ops opens at 9 AM: per day, the totals by currency and status, and every break
(each status but matched, not_booked and pending_*) with its amounts. Amounts stay integers in
minor units in the data and the CSV; only the Markdown shows major units, using each currency's
own ISO 4217 exponent (JPY and KRW have none), never one global `/100`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from recon_assets.currencies import exponent
from recon_assets.timewindows import BUSINESS_TZ

Query = Callable[[str, Sequence[object]], list[tuple[object, ...]]]


def format_minor(amount: object, currency: str) -> str:
    if not isinstance(amount, int):
        return ""
    exp = exponent(currency)
    value = Decimal(int(amount)).scaleb(-exp)
    return f"{value:,.{exp}f} {currency.upper()}"


@dataclass(frozen=True)
class SummaryRow:
    reporting_date: date
    currency: str
    recon_status: str
    item_count: int
    stripe_amount: int
    ledger_amount: int
    is_break: bool


@dataclass(frozen=True)
class BreakRow:
    reporting_date: date
    recon_status: str
    charge_id: str
    ledger_entry_ids: str | None
    currency: str
    stripe_amount: int | None
    ledger_amount: int | None
    amount_diff: int


@dataclass(frozen=True)
class DayReport:
    day: date
    summary: list[SummaryRow]
    breaks: list[BreakRow]
    day_status: str = "preliminary"
    """`final` once the Stripe day is loaded, the ledger is loaded without gaps through the
    day's last booking deadline, and nothing of the day is pending; else `preliminary`."""
    day_status_reason: str = "not reconciled yet"

    @property
    def items(self) -> int:
        return sum(r.item_count for r in self.summary)

    @property
    def break_count(self) -> int:
        return len(self.breaks)

    def counts_by_status(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.summary:
            out[r.recon_status] = out.get(r.recon_status, 0) + r.item_count
        return dict(sorted(out.items()))


_SUMMARY_SQL = """
select reporting_date, currency, recon_status, item_count, stripe_amount, ledger_amount, is_break
from marts.rpt_daily_reconciliation
where reporting_date >= ? and reporting_date < ?
order by reporting_date, currency, recon_status
"""
_DAYS_SQL = """
select reporting_date, day_status, day_status_reason
from marts.rpt_reconciliation_days
where reporting_date >= ? and reporting_date < ?
"""
_REBUILT_SQL = """
select distinct reporting_date
from marts.fct_charge_reconciliation
where raw_loaded_through = (select max(raw_loaded_through) from marts.fct_charge_reconciliation)
  and (reporting_date < ? or reporting_date >= ?)
order by 1
"""
_BREAKS_SQL = """
select reporting_date, recon_status, charge_id, ledger_entry_ids, currency,
       stripe_amount, ledger_amount, amount_diff
from marts.fct_charge_reconciliation
where reporting_date >= ? and reporting_date < ? and is_break
order by reporting_date, recon_status, charge_id, ledger_entry_ids
"""


def fetch_reports(query: Query, days: Sequence[date]) -> list[DayReport]:
    """One report per day of `days` (contiguous), read with two range queries (half-open)."""
    from datetime import timedelta

    if not days:
        return []
    first, end = min(days), max(days) + timedelta(days=1)
    summary = [SummaryRow(*r) for r in query(_SUMMARY_SQL, [first, end])]  # type: ignore[arg-type]
    breaks = [BreakRow(*r) for r in query(_BREAKS_SQL, [first, end])]  # type: ignore[arg-type]
    status = {r[0]: (str(r[1]), str(r[2] or "")) for r in query(_DAYS_SQL, [first, end])}
    return [
        DayReport(
            d,
            [r for r in summary if r.reporting_date == d],
            [b for b in breaks if b.reporting_date == d],
            *status.get(d, ("preliminary", "nothing reconciled for this day yet")),
        )
        for d in sorted(days)
    ]


def rebuilt_days_outside(query: Query, days: Sequence[date]) -> list[date]:
    """Days outside `days` whose fact rows the latest build rewrote: candidates for
    "restated since the last report" (the caller keeps those whose report really changed)."""
    from datetime import timedelta

    first, end = min(days), max(days) + timedelta(days=1)
    return [r[0] for r in query(_REBUILT_SQL, [first, end])]  # type: ignore[misc]


def render_breaks_csv(report: DayReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "reporting_date",
            "recon_status",
            "charge_id",
            "ledger_entry_ids",
            "currency",
            "stripe_amount_minor",
            "ledger_amount_minor",
            "amount_diff_minor",
        ]
    )
    for b in report.breaks:
        w.writerow(
            [
                b.reporting_date.isoformat(),
                b.recon_status,
                b.charge_id,
                b.ledger_entry_ids or "",
                b.currency,
                "" if b.stripe_amount is None else b.stripe_amount,
                "" if b.ledger_amount is None else b.ledger_amount,
                b.amount_diff,
            ]
        )
    return buf.getvalue()


RUN_NOTE_PREFIX = "_Run:"
"""Lines that name the run (and what it restated) start with this; everything else in a report
is a function of the marts alone, so two orders of loading give the same text."""


def report_content(markdown: str) -> str:
    """A report without the lines that name a run: what two loading orders must agree on."""
    return "\n".join(ln for ln in markdown.splitlines() if not ln.startswith(RUN_NOTE_PREFIX))


def render_markdown(
    report: DayReport,
    as_of_note: str = "",
    max_breaks: int = 50,
    restated: Sequence[str] = (),
) -> str:
    lines = [f"# Stripe vs ledger reconciliation, {report.day.isoformat()} (US-Eastern)", ""]
    # the run's own lines, one block whatever they say, so the rest never depends on them
    if as_of_note:
        lines.append(f"{RUN_NOTE_PREFIX} {as_of_note}_")
    lines += [f"{RUN_NOTE_PREFIX} restated since the last report: {r}_" for r in restated]
    lines += ["", f"**{report.day_status.upper()}**: {report.day_status_reason or 'complete'}", ""]
    lines += [
        f"{report.items} items, **{report.break_count} breaks**.",
        "",
        "| currency | status | items | Stripe | ledger | break |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in report.summary:
        lines.append(
            f"| {r.currency} | {r.recon_status} | {r.item_count} | "
            f"{format_minor(r.stripe_amount, r.currency)} | "
            f"{format_minor(r.ledger_amount, r.currency)} | {'yes' if r.is_break else ''} |"
        )
    if report.breaks:
        lines += [
            "",
            f"## Breaks ({report.break_count}"
            + (
                f", first {max_breaks} shown; all in the CSV"
                if report.break_count > max_breaks
                else ""
            )
            + ")",
            "",
            "| status | charge | ledger entries | Stripe | ledger | difference |",
            "|---|---|---|---:|---:|---:|",
        ]
        for b in report.breaks[:max_breaks]:
            lines.append(
                f"| {b.recon_status} | {b.charge_id} | {b.ledger_entry_ids or ''} | "
                f"{format_minor(b.stripe_amount, b.currency)} | "
                f"{format_minor(b.ledger_amount, b.currency)} | "
                f"{format_minor(b.amount_diff, b.currency)} |"
            )
    return "\n".join(lines) + "\n"


# -- history: what changed since the last report, and after a day was signed off ----------------

HISTORY_FILE_PREFIX = "history_"
"""`reports/<day>/history_<day>.md`: the day's breaks against its last report, and every change
made to the day after its first final report. History by design: it depends on when runs
happened, so it lives beside the day's report, not in it (whose text is a function of the data)."""


@dataclass(frozen=True)
class ReportState:
    """What the report remembers of a day between runs (`reports/<day>/_state.json`)."""

    last_report_at: datetime | None = None
    first_final_at: datetime | None = None
    """When the day's report first said FINAL: finance ops' sign-off point."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "last_report_at": self.last_report_at.isoformat() if self.last_report_at else None,
                "first_final_at": self.first_final_at.isoformat() if self.first_final_at else None,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> ReportState:
        if not text:
            return cls()
        d = json.loads(text)
        return cls(
            *(
                datetime.fromisoformat(d[k]) if d.get(k) else None
                for k in ("last_report_at", "first_final_at")
            )
        )

    def after_report(self, now: datetime, final: bool) -> ReportState:
        return ReportState(now, self.first_final_at or (now if final else None))


@dataclass(frozen=True)
class BreakHistoryRow:
    recon_key: str
    charge_id: str | None
    currency: str
    first_seen: datetime
    is_open: bool
    status: str
    resolved_at: datetime | None
    resolution: str | None
    days_open: int
    amount_diff: int | None

    def since(self, last_report_at: datetime | None) -> str | None:
        """new / still open / resolved against the last report, or None (nothing to say)."""
        if self.is_open:
            if last_report_at is None or _utc(self.first_seen) > last_report_at:
                return "new"
            return "still open"
        if self.resolved_at is not None and (
            last_report_at is None or _utc(self.resolved_at) > last_report_at
        ):
            return "resolved"
        return None


@dataclass(frozen=True)
class ChangeRow:
    recon_key: str
    charge_id: str | None
    currency: str
    changed_at: datetime
    changed_by_run: str | None
    status_before: str | None
    status_after: str | None
    stripe_before: int | None
    stripe_after: int | None
    refunded_before: int | None
    refunded_after: int | None
    disputed_before: bool | None
    disputed_after: bool | None
    ledger_before: int | None
    ledger_after: int | None


_BREAK_HISTORY_SQL = """
select recon_key, charge_id, currency, first_seen, is_open,
       coalesce(current_status, last_break_status), resolved_at, resolution, days_open,
       amount_diff
from marts.rpt_break_history
where reporting_date = ?
order by is_open desc, first_seen, recon_key
"""
_CHANGES_SQL = """
select recon_key, charge_id, currency, changed_at, changed_by_run, status_before, status_after,
       stripe_amount_before, stripe_amount_after, stripe_refunded_before, stripe_refunded_after,
       stripe_disputed_before, stripe_disputed_after, ledger_amount_before, ledger_amount_after
from marts.rpt_status_changes
where reporting_date = ?
order by changed_at, recon_key
"""


def _utc(t: datetime) -> datetime:
    """Snowflake hands back naive UTC (TIMESTAMP_NTZ); DuckDB aware instants."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass(frozen=True)
class DayHistory:
    day: date
    state: ReportState
    breaks: list[BreakHistoryRow]
    changes_after_signoff: list[ChangeRow]

    def since_last_report(self) -> dict[str, int]:
        out = {"new": 0, "still open": 0, "resolved": 0}
        for b in self.breaks:
            s = b.since(self.state.last_report_at)
            if s is not None:
                out[s] += 1
        return out


def fetch_history(query: Query, day: date, state: ReportState) -> DayHistory:
    breaks = [BreakHistoryRow(*r) for r in query(_BREAK_HISTORY_SQL, [day])]  # type: ignore[arg-type]
    changes: list[ChangeRow] = []
    if state.first_final_at is not None:
        # compared here, not in SQL: a bound instant means different things to DuckDB
        # (TIMESTAMPTZ, session zone) and Snowflake (TIMESTAMP_NTZ, UTC)
        signed = state.first_final_at
        changes = [ChangeRow(*r) for r in query(_CHANGES_SQL, [day])]  # type: ignore[arg-type]
        changes = [c for c in changes if _utc(c.changed_at) > signed]
    return DayHistory(day, state, breaks, changes)


def _when(t: datetime | None) -> str:
    if t is None:
        return ""
    return _utc(t).astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M %Z")


def _pair(before: object, after: object, fmt: Callable[[object], str] = str) -> str:
    if before == after:
        return fmt(after) if after is not None else ""
    return (
        f"{fmt(before) if before is not None else '—'} → {fmt(after) if after is not None else '—'}"
    )


def render_history_markdown(h: DayHistory, run_note: str = "") -> str:
    day = h.day.isoformat()
    lines = [f"# Break history, {day} (US-Eastern)", ""]
    if run_note:
        lines += [f"{RUN_NOTE_PREFIX} {run_note}_", ""]
    last = h.state.last_report_at
    counts = h.since_last_report()
    lines.append(
        f"Since the last report ({_when(last) or 'none before'}): **{counts['new']} new**, "
        f"{counts['still open']} still open, {counts['resolved']} resolved."
    )
    listed = [(b, b.since(last)) for b in h.breaks]
    listed = [(b, s) for b, s in listed if s is not None]
    if listed:
        lines += [
            "",
            "| since last report | status | charge / entry | first seen | days open | "
            "resolved | how |",
            "|---|---|---|---|---:|---|---|",
        ]
        for b, s in listed:
            lines.append(
                f"| {s} | {b.status} | {b.charge_id or b.recon_key} | {_when(b.first_seen)} | "
                f"{b.days_open} | {_when(b.resolved_at)} | {b.resolution or ''} |"
            )
    lines += ["", "## Changed after sign-off", ""]
    if h.state.first_final_at is None:
        lines.append("Not signed off yet: the day has had no final report.")
    elif not h.changes_after_signoff:
        lines.append(
            f"Nothing changed since its first final report ({_when(h.state.first_final_at)})."
        )
    else:
        lines += [
            f"{len(h.changes_after_signoff)} changes since its first final report "
            f"({_when(h.state.first_final_at)}), before → after:",
            "",
            "| changed at | charge / entry | status | Stripe captured | refunded | disputed | "
            "ledger | run |",
            "|---|---|---|---:|---:|---|---:|---|",
        ]
        for c in h.changes_after_signoff:
            money = lambda v, cur=c.currency: format_minor(v, cur)  # noqa: E731
            lines.append(
                f"| {_when(c.changed_at)} | {c.charge_id or c.recon_key} | "
                f"{_pair(c.status_before, c.status_after or 'gone')} | "
                f"{_pair(c.stripe_before, c.stripe_after, money)} | "
                f"{_pair(c.refunded_before, c.refunded_after, money)} | "
                f"{_pair(c.disputed_before, c.disputed_after)} | "
                f"{_pair(c.ledger_before, c.ledger_after, money)} | {c.changed_by_run or ''} |"
            )
    return "\n".join(lines) + "\n"
