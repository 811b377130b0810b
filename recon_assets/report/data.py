"""The ops-facing daily reconciliation report, read from the marts: the data, the CSV and the
signed-off state (`render` turns it into HTML).

What finance ops opens at 9 AM: per day, totals per currency (Stripe, ledger, difference, items,
match rate, breaks), every break (each status but matched, not_booked and pending_*) with what
ops needs to act on it, a 30-day trend, and the break history. Amounts stay integers in minor
units in the data and the CSV; only what a person reads shows major units, using each
currency's own ISO 4217 exponent (JPY and KRW have none), never one global `/100`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import astuple, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from recon_assets.currencies import exponent

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
    item_type: str = "charge"


@dataclass(frozen=True)
class BreakRow:
    reporting_date: date
    recon_status: str
    charge_id: str | None
    ledger_entry_ids: str | None
    currency: str
    stripe_amount: int | None
    ledger_amount: int | None
    amount_diff: int
    recon_key: str = ""
    charge_created_at: datetime | None = None
    customer_id: str | None = None
    ledger_currency: str | None = None
    item_type: str = "charge"
    item_id: str | None = None
    """The charge's id, or the refund's (`charge_id` is then the refund's charge)."""


@dataclass(frozen=True)
class CurrencyTotals:
    currency: str
    items: int
    stripe_amount: int
    ledger_amount: int
    matched: int
    judged: int
    """Items whose status is settled either way: all but not_booked and the pending ones."""
    breaks: int
    break_amount: int
    """Sum of |ledger - Stripe| over the breaks, minor units."""

    @property
    def difference(self) -> int:
        return self.ledger_amount - self.stripe_amount

    @property
    def match_rate(self) -> float | None:
        return self.matched / self.judged if self.judged else None


@dataclass(frozen=True)
class RefundTotals:
    """A day's refunds in one currency: what Stripe refunded (refunds that succeeded), what the
    ledger booked for them (its refund entries carry minus the amount; shown as money out),
    and the breaks."""

    currency: str
    refunds: int
    refunded: int
    booked: int
    breaks: int

    @property
    def difference(self) -> int:
        """Booked minus refunded: positive when the ledger shows more money out."""
        return self.booked - self.refunded


@dataclass(frozen=True)
class OutflowTotals:
    """A day's items of one type in one currency that take money out of the Stripe balance
    (fees; dispute movements): how many, what Stripe took (a fee; a dispute's withdrawal, less
    its reinstatement), what the ledger booked for them (its entries carry minus the money;
    shown as money out), and the breaks."""

    currency: str
    items: int
    taken: int
    booked: int
    breaks: int

    @property
    def difference(self) -> int:
        """Booked minus taken: positive when the ledger shows more money out than Stripe."""
        return self.booked - self.taken


@dataclass(frozen=True)
class TieoutRow:
    """The day's tie-out of the Stripe balance in one currency (marts.rpt_balance_tieout):
    how much the balance moved (`stripe_net`), the ledger's movement of the same money, the
    difference, the part open items and timing explain, and the unexplained rest."""

    currency: str
    stripe_net: int
    ledger_net: int
    difference: int
    explained: int
    unexplained: int


REFUND_NOT_REFUNDED = (
    "not_booked", "pending_in_stripe", "unexpected_ledger_entry", "missing_in_stripe",
    "unreadable_in_stripe", "pending_stripe_lookup",
)  # fmt: skip
"""Refund statuses whose Stripe side is no money refunded (undecided, failed, or unknown)."""


@dataclass(frozen=True)
class TrendPoint:
    day: date
    breaks: int
    break_amount_by_currency: dict[str, int]
    unexplained_by_currency: dict[str, int] = field(default_factory=dict)
    """The balance tie-out's unexplained rest, per currency where it is not 0."""


@dataclass(frozen=True)
class PayoutRow:
    """One payout arriving on the day (marts.rpt_payout_composition): its amount, what it
    carried (charges, refunds, fees and disputes, and their net), and whether the ledger booked
    it (`recon_status`; None before its item is built)."""

    payout_id: str
    currency: str
    stripe_status: str
    amount: int
    charges: int
    charges_amount: int
    refunds: int
    refunds_amount: int
    fees_amount: int
    disputes: int
    disputes_amount: int
    carried_net: int
    is_complete: bool
    recon_status: str | None
    ledger_amount: int | None


STATUS_LEGEND: dict[str, tuple[bool, str, str]] = {
    "matched": (False, "one ledger entry, same currency and amount, booked within T", "nothing"),
    "not_booked": (False, "failed or uncaptured charge, nothing booked (correct)", "nothing"),
    "pending_in_stripe": (False, "the charge is still pending in Stripe",
                          "wait; it is re-checked nightly"),
    "pending_in_ledger": (False, "no booking yet, the deadline (created + T) has not passed, or "
                          "the ledger is not loaded through it", "wait"),
    "pending_stripe_lookup": (False, "a ledger entry names a charge not yet looked up in Stripe",
                              "wait for the next run"),
    "missing_in_ledger": (True, "settled in Stripe, not booked by the deadline, ledger loaded "
                          "without gaps through it", "book it"),
    "duplicate_in_ledger": (True, "booked more than once", "reverse the extra entries"),
    "currency_mismatch": (True, "booked in another currency", "reverse it and book it right"),
    "amount_mismatch": (
        True, "booked amount differs from `amount_captured`", "reverse it and book it right"
    ),
    "late_posting": (True, "booked after the deadline", "review the booking process"),
    "unexpected_ledger_entry": (True, "booked although the charge failed or was not captured",
                                "reverse it"),
    "missing_in_stripe": (True, "Stripe answered 404 for the entry's charge id (or the entry "
                          "names none)", "investigate the entry"),
    "unreadable_in_stripe": (True, "Stripe has the charge but it failed validation "
                             "(quarantined)", "data platform: see the quarantine"),
    "currency_conversion": (True, "Stripe converted the money into another currency (a fee's or "
                            "a dispute's balance transaction has an exchange rate): not "
                            "compared, never converted", "check the conversion and book it"),
}  # fmt: skip
"""Every status: (is a break, what it means, what ops does). The README's table and the
report's legend say exactly this (a test holds them together)."""

NOT_JUDGED = ("not_booked", "pending_in_stripe", "pending_in_ledger", "pending_stripe_lookup")


@dataclass(frozen=True)
class DayReport:
    day: date
    summary: list[SummaryRow]
    breaks: list[BreakRow]
    day_status: str = "preliminary"
    """`final` once the Stripe day is loaded, the ledger is loaded without gaps through the
    day's last booking deadline, and nothing of the day is pending; else `preliminary`."""
    day_status_reason: str = "not reconciled yet"
    trend: tuple[TrendPoint, ...] = ()
    """The 30 days ending with this one (days without data have no point)."""
    tieout: tuple[TieoutRow, ...] = ()
    """The day's balance tie-out, per currency (none until its balance transactions load)."""
    complete: bool = False
    """Everything final but the tie-out: loaded, nothing pending. Such a day whose balance
    does not tie out stays preliminary, and is the tie-out check's failure."""
    payouts: tuple[PayoutRow, ...] = ()
    """The payouts arriving on the day (its date is the bank's), with what each carried."""

    @property
    def unexplained(self) -> dict[str, int]:
        """The tie-out's non-zero unexplained rests, by currency: each is an alert."""
        return {t.currency: t.unexplained for t in self.tieout if t.unexplained}

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

    def totals(self) -> list[CurrencyTotals]:
        """The charges' totals per currency (refunds are money the other way: `refund_totals`)."""
        out = []
        charges = [r for r in self.summary if r.item_type == "charge"]
        for cur in sorted({r.currency for r in charges}):
            rows = [r for r in charges if r.currency == cur]
            breaks = [b for b in self.breaks if b.currency == cur and b.item_type == "charge"]
            out.append(
                CurrencyTotals(
                    cur,
                    items=sum(r.item_count for r in rows),
                    stripe_amount=sum(r.stripe_amount for r in rows),
                    ledger_amount=sum(r.ledger_amount for r in rows),
                    matched=sum(r.item_count for r in rows if r.recon_status == "matched"),
                    judged=sum(r.item_count for r in rows if r.recon_status not in NOT_JUDGED),
                    breaks=len(breaks),
                    break_amount=sum(abs(b.amount_diff) for b in breaks),
                )
            )
        return out

    def refund_totals(self) -> list[RefundTotals]:
        refunds = [r for r in self.summary if r.item_type == "refund"]
        return [
            RefundTotals(
                cur,
                refunds=sum(r.item_count for r in rows),
                refunded=sum(
                    r.stripe_amount for r in rows if r.recon_status not in REFUND_NOT_REFUNDED
                ),
                booked=-sum(r.ledger_amount for r in rows),
                breaks=sum(r.item_count for r in rows if r.is_break),
            )
            for cur in sorted({r.currency for r in refunds})
            for rows in [[r for r in refunds if r.currency == cur]]
        ]

    def outflow_totals(self, item_type: str) -> list[OutflowTotals]:
        """Per currency, the day's `fee` or `dispute` items (their Stripe amounts are money
        out of the balance, their ledger amounts minus it when booked right)."""
        items = [r for r in self.summary if r.item_type == item_type]
        return [
            OutflowTotals(
                cur,
                items=sum(r.item_count for r in rows),
                taken=sum(r.stripe_amount for r in rows),
                booked=-sum(r.ledger_amount for r in rows),
                breaks=sum(r.item_count for r in rows if r.is_break),
            )
            for cur in sorted({r.currency for r in items})
            for rows in [[r for r in items if r.currency == cur]]
        ]

    def fee_totals(self) -> list[OutflowTotals]:
        return self.outflow_totals("fee")

    def dispute_totals(self) -> list[OutflowTotals]:
        return self.outflow_totals("dispute")

    @property
    def match_rate(self) -> float | None:
        t = self.totals()
        judged = sum(x.judged for x in t)
        return sum(x.matched for x in t) / judged if judged else None

    def fingerprint(self) -> str:
        """The report's data, as text: two loading orders must agree on it, and a past day is
        "restated" exactly when it changes (the history and the run are not part of it)."""
        parts = [self.day.isoformat(), self.day_status, self.day_status_reason]
        parts += [repr(astuple(r)) for r in self.summary]
        parts += [repr(astuple(b)) for b in self.breaks]
        parts += [repr(astuple(t)) for t in self.tieout]
        parts += [repr(astuple(p)) for p in self.payouts]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


_SUMMARY_SQL = """
select reporting_date, currency, recon_status, item_count, stripe_amount, ledger_amount, is_break,
       item_type
from marts.rpt_daily_reconciliation
where reporting_date >= ? and reporting_date < ?
order by reporting_date, item_type, currency, recon_status
"""
_DAYS_SQL = """
select reporting_date, day_status, day_status_reason, is_complete
from marts.rpt_reconciliation_days
where reporting_date >= ? and reporting_date < ?
"""
_FACTS = """(
    select reporting_date, raw_loaded_through, is_break, currency, amount_diff
    from marts.fct_charge_reconciliation
    union all
    select reporting_date, raw_loaded_through, is_break, currency, amount_diff
    from marts.fct_refund_reconciliation
    union all
    select reporting_date, raw_loaded_through, is_break, currency, amount_diff
    from marts.fct_fee_reconciliation
    union all
    select reporting_date, raw_loaded_through, is_break, currency, amount_diff
    from marts.fct_payout_reconciliation
    union all
    select reporting_date, raw_loaded_through, is_break, currency, amount_diff
    from marts.fct_dispute_reconciliation
)"""
"""The fact tables (charges, refunds, fees, payouts, disputes), for what the report counts of
any kind."""
_REBUILT_SQL = f"""
select distinct reporting_date
from {_FACTS} as f
where raw_loaded_through = (select max(raw_loaded_through) from {_FACTS} as m)
  and (reporting_date < ? or reporting_date >= ?)
order by 1
"""
_BREAKS_SQL = """
select reporting_date, recon_status, charge_id, ledger_entry_ids, currency,
       stripe_amount, ledger_amount, amount_diff, recon_key, charge_created_at, customer_id,
       ledger_currency, 'charge' as item_type, charge_id as item_id
from marts.fct_charge_reconciliation
where reporting_date >= ? and reporting_date < ? and is_break
union all
select reporting_date, recon_status, charge_id, ledger_entry_ids, currency,
       stripe_amount, ledger_amount, amount_diff, recon_key, refund_created_at, null,
       ledger_currency, 'refund' as item_type, refund_id as item_id
from marts.fct_refund_reconciliation
where reporting_date >= ? and reporting_date < ? and is_break
union all
select reporting_date, recon_status,
       case when source_id like 'ch_%' then source_id end, ledger_entry_ids, currency,
       stripe_amount, ledger_amount, amount_diff, recon_key, fee_created_at, null,
       ledger_currency, 'fee' as item_type, source_id as item_id
from marts.fct_fee_reconciliation
where reporting_date >= ? and reporting_date < ? and is_break
union all
select reporting_date, recon_status, null, ledger_entry_ids, currency,
       stripe_amount, ledger_amount, amount_diff, recon_key, payout_arrival_at, null,
       ledger_currency, 'payout' as item_type, payout_id as item_id
from marts.fct_payout_reconciliation
where reporting_date >= ? and reporting_date < ? and is_break
union all
select reporting_date, recon_status, charge_id, ledger_entry_ids, currency,
       stripe_amount, ledger_amount, amount_diff, recon_key, dispute_created_at, null,
       ledger_currency, 'dispute' as item_type, dispute_id || '#' || dispute_leg as item_id
from marts.fct_dispute_reconciliation
where reporting_date >= ? and reporting_date < ? and is_break
order by 1, 13, 2, 14, 4
"""
_PAYOUTS_SQL = """
select reporting_date, payout_id, currency, stripe_status, amount, charges, charges_amount,
       refunds, refunds_amount, fees_amount, disputes, disputes_amount, carried_net,
       is_complete, recon_status, ledger_amount
from marts.rpt_payout_composition
where reporting_date >= ? and reporting_date < ?
order by reporting_date, currency, payout_id
"""
_TIEOUT_SQL = """
select reporting_date, currency, stripe_net, ledger_net, difference, explained, unexplained
from marts.rpt_balance_tieout
where reporting_date >= ? and reporting_date < ?
order by reporting_date, currency
"""
_TREND_SQL = f"""
select reporting_date, currency, count(*), sum(abs(amount_diff))
from {_FACTS} as f
where reporting_date >= ? and reporting_date < ? and is_break
group by reporting_date, currency
"""
_REPORTED_DAYS_SQL = """
select distinct partition_date from raw.load_log
where dataset = 'stripe_charges' and load_kind = 'day'
order by 1
"""
TREND_DAYS = 30


def fetch_reports(query: Query, days: Sequence[date]) -> list[DayReport]:
    """One report per day of `days` (any set of days), sorted, read with one range query per
    table over `[min, max]` (half-open) whatever the number of days: the report rewrites
    hundreds of past days after a night of late events, and per-day queries cost that many
    round trips (and, on Snowflake, that many warehouse queries)."""
    if not days:
        return []
    wanted = set(days)
    first, end = min(days), max(days) + timedelta(days=1)
    summary: dict[date, list[SummaryRow]] = {}
    for r in query(_SUMMARY_SQL, [first, end]):
        row = SummaryRow(*r)  # type: ignore[arg-type]
        if row.reporting_date in wanted:
            summary.setdefault(row.reporting_date, []).append(row)
    breaks: dict[date, list[BreakRow]] = {}
    for r in query(_BREAKS_SQL, [first, end] * 5):
        b = BreakRow(*r)  # type: ignore[arg-type]
        if b.reporting_date in wanted:
            breaks.setdefault(b.reporting_date, []).append(b)
    days_rows = query(_DAYS_SQL, [first, end])
    status = {r[0]: (str(r[1]), str(r[2] or "")) for r in days_rows}
    complete = {r[0] for r in days_rows if r[3]}
    payouts: dict[date, list[PayoutRow]] = {}
    for d, *rest in query(_PAYOUTS_SQL, [first, end]):
        payouts.setdefault(d, []).append(PayoutRow(*rest))  # type: ignore[arg-type,index]
    # one read of the tie-out over the trend's days: the report's days get their rows, the
    # trend the unexplained rest of each day
    tieout: dict[date, list[TieoutRow]] = {}
    unexplained: dict[date, dict[str, int]] = {}
    for d, *rest in query(_TIEOUT_SQL, [first - timedelta(days=TREND_DAYS - 1), end]):
        row = TieoutRow(*rest)  # type: ignore[arg-type]
        if d in wanted:
            tieout.setdefault(d, []).append(row)  # type: ignore[index]
        if row.unexplained:
            unexplained.setdefault(d, {})[row.currency] = int(row.unexplained)  # type: ignore[index]
    trend_rows = query(_TREND_SQL, [first - timedelta(days=TREND_DAYS - 1), end])
    by_day: dict[date, dict[str, tuple[int, int]]] = {}
    for d, cur, n, amount in trend_rows:
        by_day.setdefault(d, {})[str(cur)] = (int(n), int(amount))  # type: ignore[call-overload,index]
    reports = []
    for d in sorted(wanted):
        window = [d - timedelta(days=i) for i in range(TREND_DAYS - 1, -1, -1)]
        trend = tuple(
            TrendPoint(
                w,
                sum(n for n, _ in by_day.get(w, {}).values()),
                {c: a for c, (_, a) in sorted(by_day.get(w, {}).items())},
                dict(sorted(unexplained.get(w, {}).items())),
            )
            for w in window
        )
        reports.append(
            DayReport(
                d,
                summary.get(d, []),
                breaks.get(d, []),
                *status.get(d, ("preliminary", "nothing reconciled for this day yet")),
                trend=trend,
                tieout=tuple(tieout.get(d, [])),
                complete=d in complete,
                payouts=tuple(payouts.get(d, [])),
            )
        )
    return reports


_INDEX_SQL = """
with items as (
    select reporting_date,
           count(*) as items,
           sum(case when is_break then 1 else 0 end) as breaks,
           sum(case when recon_status = 'matched' then 1 else 0 end) as matched,
           sum(case when recon_status not in ({not_judged}) then 1 else 0 end) as judged
    from {facts} as f
    group by reporting_date
)
select d.reporting_date, d.day_status, coalesce(i.items, 0), coalesce(i.breaks, 0),
       coalesce(i.matched, 0), coalesce(i.judged, 0)
from marts.rpt_reconciliation_days as d
left join items as i on i.reporting_date = d.reporting_date
where d.reporting_date in ({reported})
""".format(
    not_judged=", ".join(f"'{s}'" for s in NOT_JUDGED),
    facts=_FACTS.replace("is_break, currency", "is_break, recon_status, currency"),
    reported=_REPORTED_DAYS_SQL.replace("order by 1", "").strip(),
)
"""Each reported day's headline, counted from the fact tables themselves: read through
rpt_daily_reconciliation (which joins the days view) next to the days view, DuckDB evaluated
the days view, and the balance tie-out under it, twice, and the index of a 30-day backfill of
75 k charges ran out of 256MB (the facts read directly: 0.3 s, within the limit)."""


@dataclass(frozen=True)
class IndexRow:
    day: date
    day_status: str
    items: int
    breaks: int
    match_rate: float | None


def reported_days(query: Query) -> list[date]:
    """Every day whose Stripe charges were loaded as a whole day: the days that have reports."""
    return [r[0] for r in query(_REPORTED_DAYS_SQL, [])]  # type: ignore[misc]


def fetch_index(query: Query) -> list[IndexRow]:
    """Every day that has a report (its Stripe day was loaded whole), with its headline."""
    return [
        IndexRow(d, str(st), int(n), int(b), int(m) / int(j) if j else None)  # type: ignore[call-overload]
        for d, st, n, b, m, j in query(_INDEX_SQL, [])
    ]


def rebuilt_days_outside(query: Query, days: Sequence[date]) -> list[date]:
    """Days outside `days` whose fact rows the latest build rewrote: candidates for
    "restated since the last report" (the caller keeps those whose report really changed)."""
    first, end = min(days), max(days) + timedelta(days=1)
    return [r[0] for r in query(_REBUILT_SQL, [first, end])]  # type: ignore[misc]


CSV_COLUMNS = [
    "reporting_date", "recon_status", "item_type", "item_id", "charge_id", "created_at",
    "customer_id",
    "currency", "stripe_amount_minor", "ledger_currency", "ledger_amount_minor",
    "amount_diff_minor", "ledger_entry_ids", "first_seen", "days_open", "since_last_report",
]  # fmt: skip
HISTORY_CSV_COLUMNS = ("first_seen", "days_open", "since_last_report")
"""Columns that depend on when runs happened; every other column is a function of the data."""


def render_breaks_csv(report: DayReport, history: DayHistory | None = None) -> str:
    """The day's breaks in minor units with ISO-8601 UTC timestamps. Each row is a charge, a
    refund or a fee (`item_type`, `item_id`; a refund's `charge_id` is its charge, a fee's the
    charge it was taken on; `created_at` the item's creation). amount_diff_minor is ledger minus
    Stripe for a charge (negative: the ledger has less), ledger plus Stripe for a refund or a
    fee (its entry carries minus its amount)."""
    by_key = {b.recon_key: b for b in (history.breaks if history else [])}
    last = history.state.last_report_at if history else None
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for b in report.breaks:
        h = by_key.get(b.recon_key)
        w.writerow(
            [
                b.reporting_date.isoformat(),
                b.recon_status,
                b.item_type,
                b.item_id or "",
                b.charge_id or "",
                _iso(b.charge_created_at),
                b.customer_id or "",
                b.currency,
                "" if b.stripe_amount is None else b.stripe_amount,
                b.ledger_currency or "",
                "" if b.ledger_amount is None else b.ledger_amount,
                b.amount_diff,
                b.ledger_entry_ids or "",
                _iso(h.first_seen) if h else "",
                h.days_open if h else "",
                (h.since(last) or "") if h else "",
            ]
        )
    return buf.getvalue()


def _iso(t: datetime | None) -> str:
    return "" if t is None else _utc(t).isoformat().replace("+00:00", "Z")


def render_summary_markdown(report: DayReport, max_breaks: int = 10) -> str:
    """The short summary the Dagster UI shows on the day's materialization."""
    rate = report.match_rate
    lines = [
        f"**{report.day.isoformat()}: {report.day_status.upper()}**"
        + (f" ({report.day_status_reason})" if report.day_status_reason else ""),
        "",
        f"{report.items} items, **{report.break_count} breaks**, match rate "
        + (f"{rate:.2%}" if rate is not None else "n/a")
        + ".",
        "",
        "| currency | items | Stripe | ledger | difference | match rate | breaks |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in report.totals():
        lines.append(
            f"| {t.currency} | {t.items} | {format_minor(t.stripe_amount, t.currency)} | "
            f"{format_minor(t.ledger_amount, t.currency)} | "
            f"{format_minor(t.difference, t.currency)} | "
            + (f"{t.match_rate:.2%}" if t.match_rate is not None else "n/a")
            + f" | {t.breaks} |"
        )
    if report.breaks:
        lines += ["", "| status | charge / entry | Stripe | ledger | ledger - Stripe |",
                  "|---|---|---:|---:|---:|"]  # fmt: skip
        for b in report.breaks[:max_breaks]:
            lines.append(
                f"| {b.recon_status} | {b.charge_id or b.recon_key} | "
                f"{format_minor(b.stripe_amount, b.currency)} | "
                f"{format_minor(b.ledger_amount, b.ledger_currency or b.currency)} | "
                f"{format_minor(b.amount_diff, b.currency)} |"
            )
        if report.break_count > max_breaks:
            lines.append(f"\n… and {report.break_count - max_breaks} more in the report.")
    return "\n".join(lines) + "\n"


# -- history: what changed since the last report, and after a day was signed off ----------------


@dataclass(frozen=True)
class ReportState:
    """What the report remembers of a day between runs (`reports/<day>/_state.json`)."""

    last_report_at: datetime | None = None
    first_final_at: datetime | None = None
    """When the day's report first said FINAL: finance ops' sign-off point."""
    fingerprint: str | None = None
    """`DayReport.fingerprint()` of the last report: a past day is restated when it changes."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "last_report_at": self.last_report_at.isoformat() if self.last_report_at else None,
                "first_final_at": self.first_final_at.isoformat() if self.first_final_at else None,
                "fingerprint": self.fingerprint,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> ReportState:
        if not text:
            return cls()
        d = json.loads(text)
        at = {k: datetime.fromisoformat(d[k]) if d.get(k) else None
              for k in ("last_report_at", "first_final_at")}  # fmt: skip
        return cls(at["last_report_at"], at["first_final_at"], d.get("fingerprint"))

    def after_report(self, now: datetime, report: DayReport) -> ReportState:
        final = report.day_status == "final"
        return ReportState(now, self.first_final_at or (now if final else None),
                           report.fingerprint())  # fmt: skip


@dataclass(frozen=True)
class BreakHistoryRow:
    recon_key: str
    charge_id: str | None
    currency: str
    first_seen: datetime
    is_open: bool
    status: str | None
    """The current status; None once the item is gone (an orphan whose charge arrived)."""
    last_break_status: str
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
        if (
            last_report_at is not None
            and self.resolved_at is not None
            and _utc(self.resolved_at) > last_report_at
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
select reporting_date, recon_key, charge_id, currency, first_seen, is_open, current_status,
       last_break_status, resolved_at, resolution, days_open, amount_diff
from marts.rpt_break_history
where reporting_date >= ? and reporting_date < ?
order by is_open desc, first_seen, recon_key
"""
_CHANGES_SQL = """
select reporting_date, recon_key, charge_id, currency, changed_at, changed_by_run, status_before, status_after,
       stripe_amount_before, stripe_amount_after, stripe_refunded_before, stripe_refunded_after,
       stripe_disputed_before, stripe_disputed_after, ledger_amount_before, ledger_amount_after
from marts.rpt_status_changes
where reporting_date >= ? and reporting_date < ?
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


def fetch_histories(query: Query, states: Mapping[date, ReportState]) -> dict[date, DayHistory]:
    """Each day's break history and changes after sign-off, for any set of days, in one range
    query per view: both views rank the whole history, so a query costs about the same for one
    day as for a year of days (0.2-0.3 s each at 540 days loaded, measured)."""
    if not states:
        return {}
    first, end = min(states), max(states) + timedelta(days=1)
    breaks: dict[date, list[BreakHistoryRow]] = {}
    for d, *rest in query(_BREAK_HISTORY_SQL, [first, end]):
        if d in states:
            breaks.setdefault(d, []).append(BreakHistoryRow(*rest))  # type: ignore[arg-type,index]
    signed_off = {d: st.first_final_at for d, st in states.items() if st.first_final_at}
    changes: dict[date, list[ChangeRow]] = {}
    if signed_off:
        # compared here, not in SQL: a bound instant means different things to DuckDB
        # (TIMESTAMPTZ, session zone) and Snowflake (TIMESTAMP_NTZ, UTC)
        lo, hi = min(signed_off), max(signed_off) + timedelta(days=1)
        for d, *rest in query(_CHANGES_SQL, [lo, hi]):
            c = ChangeRow(*rest)  # type: ignore[arg-type]
            signed = signed_off.get(d)  # type: ignore[call-overload]
            if signed is not None and _utc(c.changed_at) > signed:
                changes.setdefault(d, []).append(c)  # type: ignore[arg-type]
    return {
        d: DayHistory(d, st, breaks.get(d, []), changes.get(d, []))
        for d, st in sorted(states.items())
    }
