"""Stripe-looking ids that carry their own position, so lookups and cursors need no table.

A charge id is `ch_` + 24 characters: `3`, the day (3 base-62 digits, days since 2000-01-01), the
index inside that day (4 digits), then 16 characters derived from a hash of (seed, day, index).
The digits use `0-9A-Za-z`, which is ASCII order, so comparing two ids as strings compares
(day, index): the id order is the creation order, which makes "created desc, id desc" a total order
whose cursors are just positions. The hash part makes ids look like Stripe's and lets the emulator
reject ids of another seed or ones that were typed by hand.
"""

from __future__ import annotations

from datetime import date

from recon_assets.local.stripe_emulator.config import ID_EPOCH

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGIT = {c: i for i, c in enumerate(ALPHABET)}
ALNUM_TABLE = bytes(ord(ALPHABET[i % 62]) for i in range(256))
"""`digest.translate(ALNUM_TABLE)` turns random bytes into alphanumerics in one C call."""

CHARGE_PREFIX = "ch_"
ID_VERSION = "3"
BODY_LEN = 24
_EPOCH_ORD = ID_EPOCH.toordinal()


def b62(n: int, width: int) -> str:
    """Fixed-width base 62, so string order equals numeric order."""
    if n < 0 or n >= 62**width:
        raise ValueError(f"{n} does not fit in {width} base-62 digits")
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(ALPHABET[r])
    return "".join(reversed(out))


def unb62(s: str) -> int:
    n = 0
    for c in s:
        n = n * 62 + _DIGIT[c]
    return n


def day_prefix(day: date) -> str:
    """The first four characters of every id of `day` (version + day digits)."""
    return ID_VERSION + b62(day.toordinal() - _EPOCH_ORD, 3)


def split_charge_id(charge_id: str) -> tuple[date, int, str] | None:
    """(day, index, check part) of a well-formed id, or None; the check part is not verified here."""
    if (
        not isinstance(charge_id, str)
        or len(charge_id) != len(CHARGE_PREFIX) + BODY_LEN
        or not charge_id.startswith(CHARGE_PREFIX)
    ):
        return None
    body = charge_id[len(CHARGE_PREFIX) :]
    if body[0] != ID_VERSION or any(c not in _DIGIT for c in body):
        return None
    try:
        day = date.fromordinal(unb62(body[1:4]) + _EPOCH_ORD)
    except (ValueError, OverflowError):
        return None
    return day, unb62(body[4:8]), body[8:]
