"""ISO 4217 minor units: how many decimals a currency's amounts have.

Amounts are integers in minor units everywhere in recon. Only where a person reads an amount do
we show major units, and then with each currency's own exponent: JPY and KRW have none, BHD has
three. This is the one place that knows, so no code divides by a global 100.
"""

from __future__ import annotations

# Stripe's zero-decimal currencies (amounts are already whole units).
ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()  # noqa: SIM905
)
# Stripe's three-decimal currencies.
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())  # noqa: SIM905


def exponent(currency: str) -> int:
    """Decimals of `currency` (any case): 0, 2 or 3."""
    c = currency.upper()
    return 0 if c in ZERO_DECIMAL else 3 if c in THREE_DECIMAL else 2


def is_zero_decimal(currency: str) -> bool:
    return currency.upper() in ZERO_DECIMAL
