"""The ops-facing daily reconciliation report, read from the marts.

What finance ops opens at 9 AM: per day, the totals by currency and status, and every break
(each status but matched, not_booked and pending_*) with its amounts. Amounts stay integers in
minor units in the data and the CSV; only the Markdown shows major units, using each currency's
own ISO 4217 exponent (JPY and KRW have none), never one global `/100`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from recon_assets.currencies import exponent

Query = Callable[[str, Sequence[object]], list[tuple[object, ...]]]


def format_minor(amount: int | None, currency: str) -> str:
    if amount is None:
        return ""
    exp = exponent(currency)
    value = Decimal(amount).scaleb(-exp)
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
