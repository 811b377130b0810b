"""The ops report's rendering: per-currency minor units (never one global /100), totals and match
rates, every break with what ops needs, the history, a legend that is the README's, and an HTML
file that needs no network."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from recon_assets.currencies import exponent
from recon_assets.report.data import (
    CSV_COLUMNS,
    STATUS_LEGEND,
    BreakHistoryRow,
    BreakRow,
    ChangeRow,
    DayHistory,
    DayReport,
    IndexRow,
    ReportState,
    SummaryRow,
    TrendPoint,
    format_minor,
    render_breaks_csv,
    render_summary_markdown,
)
from recon_assets.report.render import RunInfo, render_day_html, render_index_html

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (123456, "usd", "1,234.56 USD"),
        (123456, "JPY", "123,456 JPY"),
        (5000, "krw", "5,000 KRW"),
        (1234, "BHD", "1.234 BHD"),
        (-5, "EUR", "-0.05 EUR"),
        (None, "USD", ""),
    ],
)
def test_format_minor(amount: int | None, currency: str, text: str) -> None:
    assert format_minor(amount, currency) == text


def test_exponents() -> None:
    assert [exponent(c) for c in ("usd", "jpy", "KRW", "kwd")] == [2, 0, 0, 3]


D = date(2024, 3, 10)
T0 = datetime(2024, 3, 10, 15, 30, tzinfo=UTC)
LAST_REPORT = datetime(2024, 3, 11, 11, 0, tzinfo=UTC)


def sample() -> tuple[DayReport, DayHistory]:
    summary = [
        SummaryRow(D, "JPY", "amount_mismatch", 1, 1500, 150000, True),
        SummaryRow(D, "JPY", "matched", 2, 3000, 3000, False),
        SummaryRow(D, "USD", "currency_mismatch", 1, 2599, 2599, True),
        SummaryRow(D, "USD", "matched", 6, 60000, 60000, False),
        SummaryRow(D, "USD", "not_booked", 3, 0, 0, False),
        SummaryRow(D, "USD", "pending_in_stripe", 1, 700, 0, False),
    ]
    breaks = [
        BreakRow(D, "amount_mismatch", "ch_jpy", "7", "JPY", 1500, 150000, 148500,
                 "charge:ch_jpy", T0, "cus_<b>x</b>", "JPY"),
        BreakRow(D, "currency_mismatch", "ch_usd", "9", "USD", 2599, 2599, 0,
                 "charge:ch_usd", T0 + timedelta(hours=3), "cus_2", "EUR"),
    ]  # fmt: skip
    trend = tuple(
        TrendPoint(D - timedelta(days=29 - i), i % 4, {"USD": 100 * i} if i % 4 else {})
        for i in range(30)
    )
    report = DayReport(D, summary, breaks, "preliminary", "1 pending in Stripe", trend)
    history = DayHistory(
        D,
        ReportState(LAST_REPORT, LAST_REPORT - timedelta(hours=12), "x"),
        [
            BreakHistoryRow("charge:ch_jpy", "ch_jpy", "JPY", T0 + timedelta(days=1), True,
                            "amount_mismatch", "amount_mismatch", None, None, 0, 148500),
            BreakHistoryRow("charge:ch_usd", "ch_usd", "USD", T0, True, "currency_mismatch",
                            "currency_mismatch", None, None, 1, 0),
            BreakHistoryRow("charge:ch_fixed", "ch_fixed", "USD", T0, False, "matched",
                            "missing_in_ledger", LAST_REPORT + timedelta(hours=2),
                            "booked_late", 1, 0),
        ],
        [
            ChangeRow("charge:ch_ref", "ch_ref", "USD", LAST_REPORT, "run12345abc", "matched",
                      "matched", 2000, 2000, 0, 2000, False, False, 2000, 2000),
        ],
    )  # fmt: skip
    return report, history


def test_totals_and_match_rate_per_currency() -> None:
    report, _ = sample()
    t = {x.currency: x for x in report.totals()}
    assert (t["USD"].items, t["USD"].stripe_amount, t["USD"].ledger_amount) == (11, 63299, 62599)
    assert t["USD"].difference == -700
    # matched out of the judged (not not_booked, not pending): 6 of 7
    assert t["USD"].match_rate == pytest.approx(6 / 7)
    assert (t["JPY"].breaks, t["JPY"].break_amount) == (1, 148500)
    assert report.match_rate == pytest.approx(8 / 10)


def test_csv_has_every_break_in_minor_units_with_iso_times_and_history() -> None:
    report, history = sample()
    rows = list(csv.DictReader(io.StringIO(render_breaks_csv(report, history))))
    assert list(rows[0]) == CSV_COLUMNS
    jpy = rows[0]
    assert (jpy["stripe_amount_minor"], jpy["ledger_amount_minor"]) == ("1500", "150000")
    assert jpy["amount_diff_minor"] == "148500" and jpy["created_at"] == "2024-03-10T15:30:00Z"
    assert jpy["since_last_report"] == "new" and jpy["days_open"] == "0"
    usd = rows[1]
    assert (usd["currency"], usd["ledger_currency"]) == ("USD", "EUR")  # what differs
    assert usd["since_last_report"] == "still open"


def test_html_is_self_contained_and_says_what_ops_needs() -> None:
    report, history = sample()
    run = RunInfo(LAST_REPORT + timedelta(hours=3), "run-abcdef12", "http://dagster:3000/runs/x",
                  "https://dashboard.stripe.com/test/payments/")  # fmt: skip
    html = render_day_html(report, history, run, [(D - timedelta(days=3), 4, "final")])
    # nothing fetched from the network: no script, stylesheet, image, font or frame
    assert not re.search(r"<(script|link|img|iframe)\b|src=|@import|url\(", html)
    assert "PRELIMINARY" in html and "1 pending in Stripe" in html
    assert "Generated 2024-03-11 10:00 EDT" in html and 'href="http://dagster:3000/runs/x"' in html
    assert 'href="https://dashboard.stripe.com/test/payments/ch_jpy"' in html
    assert "cus_&lt;b&gt;x&lt;/b&gt;" in html  # escaped, never markup
    assert "150,000 JPY" in html and "+148,500 JPY (ledger over)" in html  # sign stated
    assert "25.99 USD" in html and "25.99 EUR" in html  # the ledger's own currency shows
    assert "n/a: different currencies" in html  # never a difference across currencies
    assert "&minus;7.00 USD (ledger under)" in html  # the USD totals' difference
    assert "85.71%" in html  # USD match rate
    assert "class='new'>new<" in html and ">still open<" in html
    assert "booked late" in html  # resolved since the last report, and how
    assert "1 changes</b> since its first final report" in html and "0.00 USD → 20.00 USD" in html
    assert "<svg" in html and "breaks per day, last 30 days" in html
    assert "2024-03-07" in html  # a restated past day, linked
    for status in STATUS_LEGEND:
        assert f"<code>{status}</code>" in html
    md = render_summary_markdown(report)
    assert "**2024-03-10: PRELIMINARY**" in md and "| USD | 11 |" in md


def test_index_lists_days_newest_first() -> None:
    run = RunInfo(LAST_REPORT, "r", None, "https://dashboard.stripe.com/payments/")
    html = render_index_html(
        [
            IndexRow(D, "final", 10, 1, 0.9),
            IndexRow(D + timedelta(days=1), "preliminary", 5, 0, None),
        ],
        run,
    )
    assert html.index("2024-03-11") < html.index("2024-03-10")
    assert 'href="2024-03-10/reconciliation_2024-03-10.html"' in html and "90.00%" in html


def test_the_readme_status_table_is_the_report_legend() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (yes|no) \| (.+?) \| (.+?) \|$", README.read_text(), re.M)
    assert {name: (brk == "yes", meaning, action) for name, brk, meaning, action in rows} == (
        STATUS_LEGEND
    )


def test_the_tieout_check_fails_on_a_complete_day_naming_the_day_and_the_amount() -> None:
    """Money the tie-out cannot explain on a day complete in every other way fails the ERROR
    check with the day and the amount (in the currency's own units: yen never / 100); the same
    on a day still waiting for data is shown, not failed on; nothing unexplained passes."""
    import dagster as dg

    from recon_assets.defs.report_assets import tieout_check
    from recon_assets.report.data import DayReport, TieoutRow

    def day(d: date, complete: bool, *rows: TieoutRow) -> DayReport:
        return DayReport(d, [], [], "preliminary", "", tieout=rows, complete=complete)

    ok = TieoutRow("USD", 1000, 900, -100, -100, 0)
    bad_usd = TieoutRow("USD", 1000, 1260, 260, 0, 260)
    bad_jpy = TieoutRow("JPY", 500, 450, -50, 0, -50)
    waiting = day(date(2024, 3, 6), False, bad_usd)
    assert tieout_check([day(date(2024, 3, 4), True, ok), waiting]).passed
    r = tieout_check([day(date(2024, 3, 5), True, ok, bad_usd, bad_jpy), waiting])
    assert not r.passed and r.severity == dg.AssetCheckSeverity.ERROR
    assert r.description == (
        "unexplained Stripe balance movement on a day otherwise final: "
        "2024-03-05 -50 JPY, 2024-03-05 2.60 USD"
    )
