"""The ops report's rendering: per-currency minor units, never one global /100."""

from __future__ import annotations

from datetime import date

import pytest

from recon_assets.currencies import exponent
from recon_assets.warehouse.report import (
    BreakRow,
    DayReport,
    SummaryRow,
    format_minor,
    render_breaks_csv,
    render_markdown,
)


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


def test_markdown_and_csv_list_every_break_in_minor_units() -> None:
    d = date(2024, 3, 10)
    report = DayReport(
        d,
        [
            SummaryRow(d, "JPY", "amount_mismatch", 1, 1500, 150000, True),
            SummaryRow(d, "USD", "matched", 3, 3000, 3000, False),
        ],
        [BreakRow(d, "amount_mismatch", "ch_1", "7", "JPY", 1500, 150000, 148500)],
    )
    md = render_markdown(report)
    assert "4 items, **1 breaks**" in md
    assert "| amount_mismatch | ch_1 | 7 | 1,500 JPY | 150,000 JPY | 148,500 JPY |" in md
    csv_text = render_breaks_csv(report)
    assert csv_text.splitlines()[1] == "2024-03-10,amount_mismatch,ch_1,7,JPY,1500,150000,148500"
