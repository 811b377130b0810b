"""The day's report as one self-contained HTML file, and the index of all days.

Self-contained means finance ops can open it from a share, a mail attachment or an S3 link with
no network: inline CSS, inline SVG charts, no script, no font or image fetched. Everything shown
comes from `data.DayReport` (the data) and `data.DayHistory` (what happened over time);
amounts are shown in major units with each currency's own exponent, signs stated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from html import escape

from recon_assets.report.data import (
    STATUS_LEGEND,
    BreakHistoryRow,
    DayHistory,
    DayReport,
    IndexRow,
    TrendPoint,
    _utc,
    format_minor,
)
from recon_assets.timewindows import BUSINESS_TZ

CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1d2433}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#5b6476;margin:0 0 14px}.meta a{color:#3756c8}
.tieout.alert,.alert{color:#b42318}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;color:#fff}
.final{background:#1f8a4c}.preliminary{background:#c77700}
table{border-collapse:collapse;margin:6px 0 12px}th,td{padding:4px 10px;border-bottom:1px solid #e3e6ee}
th{text-align:left;background:#f4f6fa;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.break td:first-child{border-left:3px solid #c0392b}.new{color:#c0392b;font-weight:600}
.resolved{color:#1f8a4c}.muted{color:#7a8194}code{font-size:12px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #e3e6ee;border-radius:8px;padding:8px 14px}
.card b{display:block;font-size:20px}svg text{font:11px sans-serif;fill:#5b6476}
"""


def _et(t: datetime | None) -> str:
    return "" if t is None else _utc(t).astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M %Z")


def _money(amount: object, currency: str | None) -> str:
    return escape(format_minor(amount, currency or "")) if currency else ""


def _signed(amount: int, currency: str) -> str:
    """A difference with its sign and its meaning: ledger minus Stripe."""
    if amount == 0:
        return "0"
    word = "ledger over" if amount > 0 else "ledger under"
    return (
        f"{'+' if amount > 0 else '&minus;'}{escape(format_minor(abs(amount), currency))} ({word})"
    )


def _rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.2%}"


@dataclass(frozen=True)
class RunInfo:
    generated_at: datetime
    run_id: str
    run_url: str | None
    """A link to the run in the Dagster webserver (RECON_DAGSTER_URL), when configured."""
    dashboard_url: str
    """Stripe's dashboard payments URL; a charge id is appended."""


def _head(title: str) -> list[str]:
    return [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
    ]


def _bars(points: Sequence[TrendPoint], width: int = 640, height: int = 120) -> str:
    """Break count per day: one bar per day, the day itself last."""
    top = max([p.breaks for p in points] + [1])
    step = width / max(len(points), 1)
    out = [f'<svg width="{width}" height="{height + 30}" role="img" '
           f'aria-label="breaks per day, last {len(points)} days">']  # fmt: skip
    for i, p in enumerate(points):
        h = round(height * p.breaks / top)
        x = round(i * step + 1)
        colour = "#c0392b" if i == len(points) - 1 else "#8aa1d8"
        out.append(
            f'<rect x="{x}" y="{height - h}" width="{max(1, round(step - 2))}" height="{h}" '
            f'fill="{colour}"><title>{p.day.isoformat()}: {p.breaks} breaks</title></rect>'
        )
    out.append(f'<text x="0" y="{height + 14}">{points[0].day.isoformat()}</text>')
    out.append(
        f'<text x="{width}" y="{height + 14}" text-anchor="end">{points[-1].day.isoformat()}</text>'
    )
    out.append(f'<text x="0" y="{height + 28}">max {top} breaks a day</text></svg>')
    return "".join(out)


def _sparklines(points: Sequence[TrendPoint], width: int = 640, height: int = 40) -> str:
    """Break amount per day, one line per currency (amounts in different currencies are never
    added), each scaled to its own maximum, which is labelled."""
    currencies = sorted({c for p in points for c in p.break_amount_by_currency})
    if not currencies:
        return '<p class="muted">No breaks in these days.</p>'
    rows = []
    step = width / max(len(points) - 1, 1)
    for cur in currencies:
        values = [p.break_amount_by_currency.get(cur, 0) for p in points]
        top = max(values) or 1
        path = " ".join(
            f"{round(i * step)},{round(height - height * v / top)}" for i, v in enumerate(values)
        )
        rows.append(
            f'<tr><td>{escape(cur)}</td><td><svg width="{width}" height="{height + 2}" role="img" '
            f'aria-label="break amount per day in {escape(cur)}"><polyline points="{path}" '
            f'fill="none" stroke="#3756c8" stroke-width="1.5"/></svg></td>'
            f'<td class="n">max {_money(top, cur)}</td></tr>'
        )
    return (
        "<table><tr><th>currency</th><th>break amount per day</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _unexplained(points: Sequence[TrendPoint]) -> str:
    """The balance tie-out's unexplained rest per day, per currency: it is 0 on a sound day,
    so every day that had one is listed, with its amount."""
    rows = [
        f"<tr><td>{p.day.isoformat()}</td><td>{escape(cur)}</td>"
        f"<td class='n alert'>{_signed(amount, cur)}</td></tr>"
        for p in points
        for cur, amount in p.unexplained_by_currency.items()
    ]
    if not rows:
        return (
            f'<p class="muted">Unexplained in the balance tie-out: 0 on each of these '
            f"{len(points)} days.</p>"
        )
    return (
        "<table><tr><th>day</th><th>currency</th><th>unexplained in the tie-out</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def render_day_html(
    report: DayReport,
    history: DayHistory,
    run: RunInfo,
    restated: Sequence[tuple[date, int, str]] = (),
) -> str:
    day = report.day.isoformat()
    status = report.day_status
    h: dict[str, BreakHistoryRow] = {b.recon_key: b for b in history.breaks}
    last = history.state.last_report_at
    out = _head(f"Reconciliation {day}")
    out.append(f"<h1>Stripe vs ledger reconciliation, {day} (US-Eastern)</h1>")
    run_link = (
        f'<a href="{escape(run.run_url)}">run {escape(run.run_id[:8])}</a>'
        if run.run_url
        else f"run {escape(run.run_id)}"
    )
    out.append(
        f'<p class="meta"><span class="badge {escape(status)}">{escape(status.upper())}</span> '
        f"{escape(report.day_status_reason or 'complete: nothing can change it any more')}"
        f"<br>Generated {escape(_et(run.generated_at))} by {run_link}.</p>"
    )
    for t in report.tieout:
        alert = " alert" if t.unexplained else ""
        out.append(
            f'<p class="meta tieout{alert}">Stripe balance ({escape(t.currency)}) moved '
            f"{_signed(t.stripe_net, t.currency)}, ledger {_signed(t.ledger_net, t.currency)}, "
            f"difference {_signed(t.difference, t.currency)}, explained "
            f"{_signed(t.explained, t.currency)}, <b>unexplained "
            f"{_signed(t.unexplained, t.currency)}</b></p>"
        )
    if not report.tieout:
        out.append('<p class="meta muted">No balance tie-out: the day\'s balance transactions '
                   "are not loaded.</p>")  # fmt: skip
    rate = report.match_rate
    out.append('<div class="cards">')
    for label, value in (
        ("items", f"{report.items:,}"),
        ("breaks", f"{report.break_count:,}"),
        ("match rate", _rate(rate)),
        ("new since last report", f"{history.since_last_report()['new']:,}"),
        ("resolved since last report", f"{history.since_last_report()['resolved']:,}"),
    ):
        out.append(f'<div class="card"><span class="muted">{label}</span><b>{value}</b></div>')
    out.append("</div>")

    out.append("<h2>Charges: totals per currency</h2>")
    out.append(
        "<table><tr><th>currency</th><th>items</th><th>Stripe</th><th>ledger</th>"
        "<th>ledger &minus; Stripe</th><th>match rate</th><th>breaks</th><th>break amount</th></tr>"
    )
    for t in report.totals():
        out.append(
            f"<tr><td>{escape(t.currency)}</td><td class='n'>{t.items:,}</td>"
            f"<td class='n'>{_money(t.stripe_amount, t.currency)}</td>"
            f"<td class='n'>{_money(t.ledger_amount, t.currency)}</td>"
            f"<td class='n'>{_signed(t.difference, t.currency)}</td>"
            f"<td class='n'>{_rate(t.match_rate)}</td><td class='n'>{t.breaks:,}</td>"
            f"<td class='n'>{_money(t.break_amount, t.currency)}</td></tr>"
        )
    out.append("</table>")
    out.append(
        '<p class="muted">Match rate: matched items out of those with a settled status '
        "(not counting not_booked and the pending ones).</p>"
    )

    refunds = report.refund_totals()
    out.append("<h2>Refunds: totals per currency</h2>")
    if not refunds:
        out.append('<p class="muted">No refunds created on this day.</p>')
    else:
        out.append(
            "<table><tr><th>currency</th><th>refunds</th><th>refunded in Stripe</th>"
            "<th>booked in the ledger</th><th>booked &minus; refunded</th><th>breaks</th></tr>"
        )
        for r in refunds:
            out.append(
                f"<tr><td>{escape(r.currency)}</td><td class='n'>{r.refunds:,}</td>"
                f"<td class='n'>{_money(r.refunded, r.currency)}</td>"
                f"<td class='n'>{_money(r.booked, r.currency)}</td>"
                f"<td class='n'>{_signed(r.difference, r.currency)}</td>"
                f"<td class='n'>{r.breaks:,}</td></tr>"
            )
        out.append("</table>")
        out.append(
            '<p class="muted">Refunded: the refunds that succeeded in Stripe. Booked: the '
            "ledger's refund entries for them, as money out (net of reversals).</p>"
        )

    fees = report.fee_totals()
    out.append("<h2>Stripe fees: totals per currency</h2>")
    if not fees:
        out.append('<p class="muted">No fees taken on this day.</p>')
    else:
        out.append(
            "<table><tr><th>currency</th><th>fees</th><th>taken by Stripe</th>"
            "<th>booked in the ledger</th><th>booked &minus; taken</th><th>breaks</th></tr>"
        )
        for f in fees:
            out.append(
                f"<tr><td>{escape(f.currency)}</td><td class='n'>{f.items:,}</td>"
                f"<td class='n'>{_money(f.taken, f.currency)}</td>"
                f"<td class='n'>{_money(f.booked, f.currency)}</td>"
                f"<td class='n'>{_signed(f.difference, f.currency)}</td>"
                f"<td class='n'>{f.breaks:,}</td></tr>"
            )
        out.append("</table>")
        out.append(
            '<p class="muted">Taken: the fees of the balance transactions created on this day '
            "(one item per charge or refund Stripe took a fee on). Booked: the ledger's fee "
            "entries naming them, as money out (net of reversals).</p>"
        )

    disputes = report.dispute_totals()
    out.append("<h2>Disputes: money withdrawn and reinstated, per currency</h2>")
    if not disputes:
        out.append('<p class="muted">No dispute moved money on this day.</p>')
    else:
        out.append(
            "<table><tr><th>currency</th><th>movements</th><th>taken by Stripe</th>"
            "<th>booked in the ledger</th><th>booked &minus; taken</th><th>breaks</th></tr>"
        )
        for d in disputes:
            out.append(
                f"<tr><td>{escape(d.currency)}</td><td class='n'>{d.items:,}</td>"
                f"<td class='n'>{_money(d.taken, d.currency)}</td>"
                f"<td class='n'>{_money(d.booked, d.currency)}</td>"
                f"<td class='n'>{_signed(d.difference, d.currency)}</td>"
                f"<td class='n'>{d.breaks:,}</td></tr>"
            )
        out.append("</table>")
        out.append(
            '<p class="muted">One movement per dispute balance transaction created on this day: '
            "a withdrawal takes the disputed amount, a won dispute's reinstatement gives it "
            "back (taken is withdrawals less reinstatements; the dispute fee is among the "
            "fees). Booked: the ledger's dispute entries naming them, as money out (net of "
            "reversals).</p>"
        )

    out.append(f"<h2>Payouts arriving on this day ({len(report.payouts):,})</h2>")
    if not report.payouts:
        out.append('<p class="muted">No payout arrives on this day.</p>')
    else:
        out.append(
            "<table><tr><th>payout</th><th>status</th><th>amount</th><th>charges</th>"
            "<th>refunds</th><th>fees</th><th>disputes</th><th>carried</th>"
            "<th>in the ledger</th></tr>"
        )
        for p in report.payouts:
            cur = p.currency
            carried = _money(p.carried_net, cur) + (
                "" if p.is_complete else ' <span class="alert">(not its amount)</span>'
            )
            out.append(
                f"<tr><td>{escape(p.payout_id)}</td><td>{escape(p.stripe_status)}</td>"
                f"<td class='n'>{_money(p.amount, cur)}</td>"
                f"<td class='n'>{p.charges:,} ({_money(p.charges_amount, cur)})</td>"
                f"<td class='n'>{p.refunds:,} ({_money(p.refunds_amount, cur)})</td>"
                f"<td class='n'>{_money(p.fees_amount, cur)}</td>"
                f"<td class='n'>{p.disputes:,} ({_money(p.disputes_amount, cur)})</td>"
                f"<td class='n'>{carried}</td>"
                f"<td>{escape(p.recon_status or 'not reconciled yet')}</td></tr>"
            )
        out.append("</table>")
        out.append(
            "<p class=\"muted\">A payout arrives on the bank's date (Stripe's "
            "<code>arrival_date</code>). Carried: the net of the balance transactions Stripe "
            "lists for it (charges and disputes gross, refunds, fees), which is its amount when "
            "our pull of them is complete. In the ledger: the payout's status as an item.</p>"
        )

    out.append(f"<h2>Breaks ({report.break_count:,})</h2>")
    if not report.breaks:
        out.append("<p>No breaks.</p>")
    else:
        out.append(
            "<table><tr><th>status</th><th>item</th><th>charge</th><th>created (ET)</th>"
            "<th>customer</th>"
            "<th>Stripe</th><th>ledger</th><th>ledger &minus; Stripe</th><th>ledger entries</th>"
            "<th>first seen</th><th>days open</th><th>since last report</th></tr>"
        )
        for b in report.breaks:
            hb = h.get(b.recon_key)
            since = hb.since(last) if hb else None
            diff = (
                "n/a: different currencies"
                if b.ledger_currency and b.ledger_currency != b.currency
                else _signed(b.amount_diff, b.currency)
            )
            charge = (
                f'<a href="{escape(run.dashboard_url + b.charge_id)}">{escape(b.charge_id)}</a>'
                if b.charge_id
                else '<span class="muted">(none named)</span>'
            )
            item = (
                f"{b.item_type} <code>{escape(b.item_id or '(none named)')}</code>"
                if b.item_type != "charge"
                else "charge"
            )
            out.append(
                f'<tr class="break"><td>{escape(b.recon_status)}</td><td>{item}</td>'
                f"<td><code>{charge}</code></td>"
                f"<td>{escape(_et(b.charge_created_at))}</td>"
                f"<td><code>{escape(b.customer_id or '')}</code></td>"
                f"<td class='n'>{_money(b.stripe_amount, b.currency)}</td>"
                f"<td class='n'>{_money(b.ledger_amount, b.ledger_currency)}</td>"
                f"<td class='n'>{diff}</td>"
                f"<td><code>{escape(b.ledger_entry_ids or '')}</code></td>"
                f"<td>{escape(_et(hb.first_seen) if hb else '')}</td>"
                f"<td class='n'>{hb.days_open if hb else ''}</td>"
                f"<td class='{'new' if since == 'new' else ''}'>{escape(since or '')}</td></tr>"
            )
        out.append("</table>")

    resolved = [b for b in history.breaks if b.since(last) == "resolved"]
    out.append(f"<h2>Resolved since the last report ({len(resolved)})</h2>")
    if resolved:
        out.append(
            "<table><tr><th>charge / entry</th><th>was</th><th>now</th><th>how</th>"
            "<th>first seen</th><th>resolved</th><th>days open</th></tr>"
        )
        for b in resolved:
            out.append(
                f"<tr><td><code>{escape(b.charge_id or b.recon_key)}</code></td>"
                f"<td>{escape(b.last_break_status or '')}</td><td>{escape(b.status or 'gone')}</td>"
                f"<td class='resolved'>{escape((b.resolution or '').replace('_', ' '))}</td>"
                f"<td>{escape(_et(b.first_seen))}</td><td>{escape(_et(b.resolved_at))}</td>"
                f"<td class='n'>{b.days_open}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append('<p class="muted">None.</p>' if last else '<p class="muted">First report.</p>')

    out.append('<h2 id="changed-after-signoff">Changed after sign-off</h2>')
    signed = history.state.first_final_at
    if signed is None:
        out.append('<p class="muted">Not signed off yet: the day has had no final report.</p>')
    elif not history.changes_after_signoff:
        out.append(f"<p>Nothing changed since its first final report ({escape(_et(signed))}).</p>")
    else:
        out.append(
            f"<p><b>{len(history.changes_after_signoff)} changes</b> since its first final "
            f"report ({escape(_et(signed))}), before → after:</p>"
            "<table><tr><th>changed (ET)</th><th>charge / entry</th><th>status</th>"
            "<th>Stripe captured</th><th>refunded</th><th>disputed</th><th>ledger</th>"
            "<th>run</th></tr>"
        )
        for c in history.changes_after_signoff:
            cur = c.currency

            def pair(a: object, b: object, money: bool = True, cur: str = cur) -> str:
                fmt = (lambda v: format_minor(v, cur)) if money else str
                if a == b:
                    return escape(fmt(b)) if b is not None else ""
                left = escape(fmt(a)) if a is not None else "—"
                right = escape(fmt(b)) if b is not None else "—"
                return f"{left} → {right}"

            out.append(
                f"<tr><td>{escape(_et(c.changed_at))}</td>"
                f"<td><code>{escape(c.charge_id or c.recon_key)}</code></td>"
                f"<td>{pair(c.status_before, c.status_after or 'gone', money=False)}</td>"
                f"<td class='n'>{pair(c.stripe_before, c.stripe_after)}</td>"
                f"<td class='n'>{pair(c.refunded_before, c.refunded_after)}</td>"
                f"<td>{pair(c.disputed_before, c.disputed_after, money=False)}</td>"
                f"<td class='n'>{pair(c.ledger_before, c.ledger_after)}</td>"
                f"<td><code>{escape((c.changed_by_run or '')[:8])}</code></td></tr>"
            )
        out.append("</table>")

    out.append(f"<h2>Last {len(report.trend)} days</h2>")
    if report.trend:
        out.append(_bars(report.trend))
        out.append(_sparklines(report.trend))
        out.append(_unexplained(report.trend))
    if restated:
        out.append("<h2>Past days restated since the last report</h2><ul>")
        for d, n, st in restated:
            out.append(
                f'<li><a href="../{d.isoformat()}/reconciliation_{d.isoformat()}.html">'
                f"{d.isoformat()}</a>: {n} breaks, {escape(st)}</li>"
            )
        out.append("</ul>")

    out.append("<h2>What each status means</h2>")
    out.append("<table><tr><th>status</th><th>break</th><th>meaning</th><th>what to do</th></tr>")
    for name, (is_break, meaning, action) in STATUS_LEGEND.items():
        out.append(
            f"<tr><td><code>{name}</code></td><td>{'yes' if is_break else 'no'}</td>"
            f"<td>{escape(meaning.replace('`', ''))}</td><td>{escape(action)}</td></tr>"
        )
    out.append("</table>")
    out.append(
        f'<p class="muted">Amounts in each currency\'s own units; the CSV beside this file '
        f"(reconciliation_{day}.csv) has every break in minor units with ISO timestamps.</p>"
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render_index_html(rows: Sequence[IndexRow], run: RunInfo) -> str:
    out = _head("Reconciliation reports")
    out.append("<h1>Stripe vs ledger reconciliation</h1>")
    out.append(f'<p class="meta">Generated {escape(_et(run.generated_at))}. Newest first.</p>')
    out.append(
        "<table><tr><th>day</th><th>status</th><th>items</th><th>breaks</th>"
        "<th>match rate</th></tr>"
    )
    for r in sorted(rows, key=lambda r: r.day, reverse=True):
        d = r.day.isoformat()
        out.append(
            f'<tr><td><a href="{d}/reconciliation_{d}.html">{d}</a></td>'
            f'<td><span class="badge {escape(r.day_status)}">{escape(r.day_status)}</span></td>'
            f"<td class='n'>{r.items:,}</td><td class='n'>{r.breaks:,}</td>"
            f"<td class='n'>{_rate(r.match_rate)}</td></tr>"
        )
    out.append("</table></body></html>")
    return "\n".join(out) + "\n"
