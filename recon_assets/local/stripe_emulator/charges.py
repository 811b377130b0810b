"""Charge objects: every field of Stripe's current Charge, rendered straight to JSON text.

The server's hot path is "text of charge at position g", so a charge is rendered from one `%`
template whose variable parts come from a 64-byte BLAKE2b digest of (seed, day, index) and from
fragments pre-rendered once per generator (customers, cards, outcomes). No dict is built and
nothing is `json.dumps`ed per charge: that is what keeps the emulator far ahead of any client.
`ChargeGenerator.iter_charges` and `get` parse that same text, so the Python view can never drift
from what the server sends.

What a charge looks like depends on `now`: pending charges resolve, authorizations are captured
(some in full, some for less), refunds and disputes land, each at a seeded delay of 1..72 hours
after `created`; everything else is fixed at creation. `seeded_changes` lists those moments (the
events the account emits), and hand-made `ChargeChange`s add later ones on top.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from recon_assets.local.stripe_emulator.config import ChargeChange, EmulatorConfig
from recon_assets.local.stripe_emulator.ids import (
    ALNUM_TABLE,
    ALPHABET,
    CHARGE_PREFIX,
    day_prefix,
    split_charge_id,
)
from recon_assets.local.stripe_emulator.timeline import Timeline

HOUR = 3600
_DELAY_SPAN = 71 * HOUR + 1
"""Seeded late changes land 1 h + (0..71 h) after `created`: within the pipeline's 3-day
re-statement; hand-made `ChargeChange`s go further."""
MAX_SEEDED_DELAY = HOUR + _DELAY_SPAN
"""No seeded change lands this long after its charge's `created` or later."""

# Shares out of 65536 (16 bits of the digest), cumulative.
_P_PENDING_FOREVER = 655  # 1 %: bank debits that never settle
_P_PENDING_RESOLVES = 2621  # 3 %: settle 1..72 h later, 85 % succeeded, 15 % failed
_P_FAILED = 6554  # 6 %
_P_UNCAPTURED = 7864  # 2 %: authorizations, half captured late in full, half never captured
_P_PARTIAL = 9175  # 2 %: captured for less than authorized, half of them late
_P_REFUND = 3277  # 5 % of captured charges get a refund (half full, half partial)
_P_DISPUTE = 524  # 0.8 % of captured charges get disputed
_P_PRESENTMENT = 8  # of 256: ~3 % of USD charges were presented in another currency

CURRENCY_WEIGHTS = {"usd": 70, "eur": 10, "gbp": 7, "cad": 6, "jpy": 4, "krw": 3}
_PRESENTMENT_FX = (("eur", 0.92), ("gbp", 0.79), ("cad", 1.36), ("jpy", 151.0))
_CHANNELS = ("web", "ios", "android", "pos")
_DESCRIPTION = ("null", "", "", "")
"""A quarter of charges have no description; "" means "Order <part of the id>"."""
_P2 = [a + b for a in ALPHABET for b in ALPHABET]
"""Two base-62 digits per entry: the index part of an id in two lookups instead of a loop."""

CHARGE_TEMPLATE = (
    '{"id":"ch_%s","object":"charge","amount":%d,"amount_captured":%d,"amount_refunded":%d,'
    '"application":null,"application_fee":null,"application_fee_amount":null,'
    '"balance_transaction":%s,"billing_details":%s,'
    '"calculated_statement_descriptor":"RECON DEMO","captured":%s,"created":%d,"currency":"%s",'
    '"customer":"%s","description":%s,"disputed":%s,"failure_balance_transaction":null,'
    '"failure_code":%s,"failure_message":%s,"fraud_details":{},"livemode":false,'
    '"metadata":{"order_id":"ord_%s","channel":"%s"},"on_behalf_of":null,"outcome":%s,'
    '"paid":%s,"payment_intent":"pi_%s","payment_method":"%s","payment_method_details":{"card":'
    '{"amount_authorized":%d,"authorization_code":%s,%s"network_transaction_id":"%s",'
    '"overcapture":{"maximum_amount_capturable":%d,"status":"unavailable"},%s},"type":"card"},'
    '%s"radar_options":{},"receipt_email":%s,"receipt_number":null,'
    '"receipt_url":"https://pay.stripe.com/receipts/payment/CAcaFwoVYWNjdF8xUmVjb24%s",'
    '"refunded":%s,"review":null,"shipping":%s,"source_transfer":null,'
    '"statement_descriptor":null,"statement_descriptor_suffix":null,"status":"%s",'
    '"transfer_data":null,"transfer_group":null}'
)

_OUTCOME_OK = (
    '{"advice_code":null,"network_advice_code":null,"network_decline_code":null,'
    '"network_status":"approved_by_network","reason":null,"risk_level":"%s","risk_score":%d,'
    '"seller_message":"Payment complete.","type":"authorized"}'
)
_OUTCOME_DECLINED = (
    '{"advice_code":"%s","network_advice_code":null,"network_decline_code":"%s",'
    '"network_status":"declined_by_network","reason":"%s","risk_level":"normal","risk_score":%d,'
    '"seller_message":"%s","type":"issuer_declined"}'
)
_OUTCOME_BLOCKED = (
    '{"advice_code":"do_not_try_again","network_advice_code":null,"network_decline_code":null,'
    '"network_status":"not_sent_to_network","reason":"highest_risk_level","risk_level":"highest",'
    '"risk_score":%d,"seller_message":"Stripe blocked this payment as too risky.",'
    '"type":"blocked"}'
)
# (failure_code, failure_message, advice_code, network decline code, reason, seller message)
_DECLINES = (
    ("card_declined", "Your card was declined.", "try_again_later", "05", "generic_decline",
     "The bank did not return any further details with this decline."),
    ("card_declined", "Your card has insufficient funds.", "try_again_later", "51",
     "insufficient_funds", "The bank returned the decline code `insufficient_funds`."),
    ("expired_card", "Your card has expired.", "do_not_try_again", "54", "expired_card",
     "The bank returned the decline code `expired_card`."),
    ("incorrect_cvc", "Your card's security code is incorrect.", "confirm_card_data", "N7",
     "incorrect_cvc", "The bank returned the decline code `incorrect_cvc`."),
    ("card_declined", "Your card was declined.", "do_not_try_again", "05", "do_not_honor",
     "The bank returned the decline code `do_not_honor`."),
    ("processing_error", "An error occurred while processing your card. Try again in a little bit.",
     "try_again_later", "96", "processing_error",
     "The bank returned the decline code `processing_error`."),
    ("card_declined", "Your card was declined.", "try_again_later", "05", "generic_decline",
     "The bank did not return any further details with this decline."),
)  # fmt: skip

_FIRST = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Daniel",
    "Nancy",
    "Matthew",
    "Lisa",
    "Anthony",
    "Betty",
    "Mark",
    "Sandra",
    "Zoë",
    "José",
    "Søren",
    "Chloé",
    "Łukasz",
    "Renée",
]
_LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "O'Brien",
    "Nuñez",
    "Müller",
]
# currency -> (country, [(city, state, postal code)])
_PLACES: dict[str, list[tuple[str, str | None, str, str]]] = {
    "usd": [("US", "NY", "New York", "10001"), ("US", "CA", "San Francisco", "94103"),
            ("US", "TX", "Austin", "73301"), ("US", "IL", "Chicago", "60601"),
            ("US", "WA", "Seattle", "98101"), ("US", "FL", "Miami", "33101")],
    "eur": [("DE", None, "Berlin", "10115"), ("FR", None, "Paris", "75001"),
            ("NL", None, "Amsterdam", "1011"), ("ES", None, "Madrid", "28001"),
            ("IT", None, "Milano", "20121"), ("IE", "D", "Dublin", "D02")],
    "gbp": [("GB", None, "London", "SW1A 1AA"), ("GB", None, "Manchester", "M1 1AE")],
    "cad": [("CA", "ON", "Toronto", "M5H 2N2"), ("CA", "QC", "Montréal", "H2Y 1C6"),
            ("CA", "BC", "Vancouver", "V6B 1A1")],
    "jpy": [("JP", "Tokyo", "Chiyoda-ku", "100-0001"), ("JP", "Osaka", "Kita-ku", "530-0001")],
    "krw": [("KR", "Seoul", "Gangnam-gu", "06000"), ("KR", "Busan", "Haeundae-gu", "48000")],
}  # fmt: skip
_BRANDS = (("visa", 55), ("mastercard", 30), ("amex", 10), ("discover", 5))
CUSTOMERS_PER_CURRENCY = 256


@dataclass(frozen=True)
class _Customer:
    """Pre-rendered JSON fragments of one customer and their saved card."""

    customer: str
    payment_method: str
    billing_details: str
    receipt_email: str
    shipping: str
    card_head: str
    card_tail: str


def _j(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _rand_alnum(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(n))


@functools.lru_cache(maxsize=16)
def _customer_pools(seed: int) -> dict[str, tuple[_Customer, ...]]:
    """Per seed, not per generator: tests build many generators of one config (~70 ms each)."""
    return {c: tuple(_build_customers(seed, c)) for c in CURRENCY_WEIGHTS}


@functools.lru_cache(maxsize=16)
def _amount_tables(seed: int) -> dict[str, tuple[int, ...]]:
    return {c: tuple(_amount_table(seed, c)) for c in CURRENCY_WEIGHTS}


def _build_customers(seed: int, currency: str) -> list[_Customer]:
    rng = random.Random(f"customers:{seed}:{currency}")
    out = []
    for _ in range(CUSTOMERS_PER_CURRENCY):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        country, state, city, postal = rng.choice(_PLACES[currency])
        email = f"{first}.{last}{rng.randint(1, 999)}@example.com".lower().replace("'", "")
        address = {
            "city": city,
            "country": country,
            "line1": f"{rng.randint(1, 9999)} {rng.choice(_LAST)} Street",
            "line2": rng.choice([None, None, None, f"Apt {rng.randint(1, 99)}"]),
            "postal_code": postal,
            "state": state,
        }
        billing = {
            "address": address,
            "email": email,
            "name": f"{first} {last}",
            "phone": rng.choice([None, f"+1555{rng.randint(1000000, 9999999)}"]),
            "tax_id": None,
        }
        shipping = {
            "address": address,
            "carrier": rng.choice([None, "UPS", "USPS", "DHL"]),
            "name": f"{first} {last}",
            "phone": None,
            "tracking_number": None,
        }
        brand = rng.choices([b for b, _ in _BRANDS], [w for _, w in _BRANDS])[0]
        if currency == "jpy" and rng.random() < 0.4:
            brand = "jcb"
        addr_check = rng.choice(["pass", "pass", "pass", "unavailable", "unchecked", None])
        wallet_kind = rng.choices([None, "apple_pay", "google_pay"], [80, 12, 8])[0]
        wallet = (
            None
            if wallet_kind is None
            else {
                wallet_kind: {"type": wallet_kind} if wallet_kind == "apple_pay" else {},
                "dynamic_last4": f"{rng.randint(0, 9999):04d}",
                "type": wallet_kind,
            }
        )
        card_head = (
            _j(
                {
                    "brand": brand,
                    "checks": {
                        "address_line1_check": addr_check,
                        "address_postal_code_check": addr_check,
                        "cvc_check": rng.choice(["pass", "pass", "pass", "pass", "unchecked"]),
                    },
                    "country": country,
                    "exp_month": rng.randint(1, 12),
                    "exp_year": rng.randint(2025, 2032),
                    "extended_authorization": {"status": "disabled"},
                    "fingerprint": _rand_alnum(rng, 16),
                    "funding": rng.choices(["credit", "debit", "prepaid"], [60, 35, 5])[0],
                    "incremental_authorization": {"status": "unavailable"},
                    "installments": None,
                    "last4": f"{rng.randint(0, 9999):04d}",
                    "mandate": None,
                    "multicapture": {"status": "unavailable"},
                    "network": brand,
                    "network_token": {"used": False},
                }
            )[1:-1]
            + ","
        )
        card_tail = _j(
            {"regulated_status": rng.choice(["unregulated", "regulated"]),
             "three_d_secure": None, "wallet": wallet}
        )[1:-1]  # fmt: skip
        out.append(
            _Customer(
                customer="cus_" + _rand_alnum(rng, 14),
                payment_method="pm_1" + _rand_alnum(rng, 23),
                billing_details=_j(billing),
                receipt_email=_j(email if rng.random() < 0.7 else None),
                shipping=_j(shipping),
                card_head=card_head,
                card_tail=card_tail,
            )
        )
    return out


def _amount_table(seed: int, currency: str) -> list[int]:
    """4096 realistic amounts in minor units (whole units for zero-decimal currencies)."""
    rng = random.Random(f"amounts:{seed}:{currency}")
    out = []
    for _ in range(4096):
        if currency == "jpy":
            a = int(min(max(rng.lognormvariate(math.log(4500), 1.0), 500), 200_000)) // 10 * 10
        elif currency == "krw":
            a = int(min(max(rng.lognormvariate(math.log(45000), 1.0), 5000), 2_000_000))
            a = a // 100 * 100
        else:
            a = int(min(max(rng.lognormvariate(math.log(3500), 1.1), 50), 500_000))
            if rng.random() < 0.5:
                a = max(99, a // 100 * 100 + 99)  # $19.99-style prices
        out.append(a)
    return out


def seeded_changes(h: int, created: int) -> list[tuple[int, str]]:
    """The moments a charge's seeded life changes it, as (unix time, event type).

    The same bits `_render_day` reads, so the events the account lists are exactly the changes
    its charges show (a test renders each charge just before and at each moment). A refund or a
    dispute of a charge that is captured late lands no earlier than the capture.
    """
    scen = h & 0xFFFF
    out: list[tuple[int, str]] = []
    captured_from: int | None = created
    if scen < _P_PENDING_RESOLVES:
        captured_from = None
        if scen >= _P_PENDING_FOREVER:
            t = created + HOUR + ((h >> 46) & 0x3FFFF) % _DELAY_SPAN
            if ((h >> 64) & 0xFF) < 218:
                out.append((t, "charge.succeeded"))
                captured_from = t
            else:
                out.append((t, "charge.failed"))
    elif scen < _P_FAILED:
        captured_from = None
    elif scen < _P_PARTIAL:
        if (h >> 252) & 1:
            t = created + HOUR + ((h >> 46) & 0x3FFFF) % _DELAY_SPAN
            out.append((t, "charge.captured"))
            captured_from = t
        elif scen < _P_UNCAPTURED:
            captured_from = None
    if captured_from is not None:
        if ((h >> 96) & 0xFFFF) < _P_REFUND:
            t = created + HOUR + ((h >> 112) & 0x3FFFF) % _DELAY_SPAN
            out.append((max(t, captured_from), "charge.refunded"))
        if ((h >> 138) & 0xFFFF) < _P_DISPUTE:
            t = created + HOUR + ((h >> 154) & 0x3FFFF) % _DELAY_SPAN
            out.append((max(t, captured_from), "charge.dispute.created"))
    return out


CHANGE_EVENT = {
    "capture": "charge.captured",
    "refund": "charge.refunded",
    "refund_fail": "refund.failed",
    "dispute": "charge.dispute.created",
    "dispute_close": "charge.dispute.closed",
    "update": "charge.updated",
}
"""The event each hand-made change emits (`settle` emits charge.succeeded or charge.failed)."""


def change_event_type(change: ChargeChange) -> str:
    if change.kind == "settle":
        return f"charge.{change.outcome}"
    return CHANGE_EVENT[change.kind]


@dataclass(frozen=True)
class HandRefund:
    """A refund a hand-made change made: its index among the charge's refunds, when, how much,
    and when it failed (None: it did not, by the time asked about)."""

    n: int
    created: int
    amount: int
    failed_at: int | None


def apply_changes(
    text: str, changes: list[ChargeChange], now: int, refunds: list[HandRefund] | None = None
) -> str:
    """A charge's JSON with its hand-made changes (sorted by `at`) as they stand at `now`.

    Refunds add up: a seeded refund already in `amount_refunded` is refund 0, each hand-made
    `refund` a new one (of what is left, by default), and a `refund_fail` gives the latest
    refund's money back. With `refunds`, the hand-made refunds are appended to it, so the
    account's refund objects come from the very replay that sets the charge's amount_refunded.
    """
    c = json.loads(text)
    active: list[list[int]] = [[0, c["amount_refunded"]]] if c["amount_refunded"] else []
    made: list[HandRefund] = []
    for ch in changes:
        due = now >= ch.at
        if ch.kind == "settle":
            c.update(amount_refunded=0, refunded=False, disputed=False)
            active.clear()
            if not due:
                c.update(status="pending", paid=False, failure_code=None, failure_message=None)
            elif ch.outcome == "failed":
                c.update(
                    status="failed", paid=False, captured=False, amount_captured=0,
                    balance_transaction=None, failure_code="insufficient_funds",
                    failure_message="Your account has insufficient funds.",
                )  # fmt: skip
            else:
                c.update(status="succeeded", paid=True, captured=True, failure_code=None,
                         failure_message=None, amount_captured=c["amount"])  # fmt: skip
        elif ch.kind == "capture":
            if due:
                amount = c["amount"] if ch.amount is None else min(ch.amount, c["amount"])
                c.update(status="succeeded", paid=True, captured=True, amount_captured=amount)
            else:
                c.update(captured=False, amount_captured=0, amount_refunded=0, refunded=False,
                         disputed=False)  # fmt: skip
                active.clear()
        elif not due:
            continue
        elif ch.kind == "refund":
            left = c["amount_captured"] - sum(a for _, a in active)
            amount = left if ch.amount is None else min(ch.amount, left)
            if amount > 0:  # refund 0 is the seeded one's, whether or not the charge has it
                n = 1 + sum(1 for r in made if r.n > 0)
                made.append(HandRefund(n, ch.at, amount, None))
                active.append([n, amount])
        elif ch.kind == "refund_fail":
            if active:
                n, amount = active.pop()
                if n == 0:  # the seeded refund failed: a marker, its creation is the seed's
                    made.append(HandRefund(0, -1, amount, ch.at))
                made = [
                    HandRefund(r.n, r.created, r.amount, ch.at) if r.n == n else r for r in made
                ]
        elif ch.kind == "dispute":
            c["disputed"] = True
        elif ch.kind == "dispute_close":
            pass  # the dispute's own (disputes.py): the charge stays disputed
        else:
            c["description"] = ch.description
        refunded = sum(a for _, a in active)
        c.update(amount_refunded=refunded,
                 refunded=bool(refunded) and refunded == c["amount_captured"])  # fmt: skip
    if refunds is not None:
        refunds += made
    return json.dumps(c, separators=(",", ":"))


class ChargeGenerator:
    """The emulated account's charges: deterministic from the config, generated on demand.

    Positions are ranks in the total order (created, id), ascending; see `timeline`. Only charges
    with `created <= now` exist.
    """

    def __init__(self, cfg: EmulatorConfig) -> None:
        self.cfg = cfg
        self.timeline = Timeline(cfg.seed, cfg.charges_per_day, cfg.start_date, cfg.end_date)
        seed = cfg.seed
        cur_rng = random.Random(f"currency-table:{seed}")
        names = list(CURRENCY_WEIGHTS)
        self._currency_of = cur_rng.choices(names, list(CURRENCY_WEIGHTS.values()), k=1024)
        self._customers = _customer_pools(seed)
        self._amounts = _amount_tables(seed)
        # Stripe's levels: normal below 65, elevated 65..74; "highest" (75+) is blocked by default.
        self._outcome_ok = [
            _OUTCOME_OK % ("normal" if s < 65 else "elevated", s) for s in range(75)
        ]
        self._hashers: list[hashlib._Hash | None] = [None] * len(self.timeline.days)
        self._prefixes = [day_prefix(d) for d in self.timeline.days]
        self._literals = re.split(r"%[sd]", CHARGE_TEMPLATE)
        self.changes: dict[int, list[ChargeChange]] = {}
        """Hand-made changes by charge position, each list in `at` order."""
        self._day_changes: dict[int, list[tuple[int, str, int]]] = {}
        """Seeded changes per day index, computed on first use (`day_changes`)."""
        for ch in sorted(cfg.changes, key=lambda c: (c.at, c.kind)):
            if ch.kind == "payout_fail":
                continue  # a payout's (payouts.PayoutBook)
            g = self.position_of(ch.charge_id, now=2**62)
            if g is None:
                raise ValueError(f"a change names {ch.charge_id!r}, which the account never has")
            if ch.at <= self.created_at(g):
                raise ValueError(f"a change to {ch.charge_id} is dated before the charge exists")
            self.changes.setdefault(g, []).append(ch)

    # -- clock and visibility ---------------------------------------------------------------

    def now(self) -> int:
        return self.cfg.now if self.cfg.now is not None else int(time.time())

    def visible_end(self, now: int) -> int:
        """One past the last position that exists at `now`."""
        return self.timeline.lower(now + 1)

    def bounds(self, gte: int | None, lt: int | None, now: int) -> tuple[int, int]:
        """Positions [lo, hi) of existing charges with gte <= created < lt (None: unbounded)."""
        tl = self.timeline
        lo = 0 if gte is None else tl.lower(gte)
        hi = self.visible_end(now)
        if lt is not None:
            hi = min(hi, tl.lower(lt))
        return lo, max(lo, hi)

    # -- ids --------------------------------------------------------------------------------

    def _digest(self, k: int, i: int) -> bytes:
        h = self._hashers[k]
        if h is None:
            h = hashlib.blake2b(digest_size=64, person=b"recon-charge")
            h.update(f"{self.cfg.seed}:{self.timeline.days[k].toordinal()}:".encode())
            self._hashers[k] = h
        h = h.copy()
        h.update(i.to_bytes(4, "little"))
        return h.digest()

    def charge_id(self, g: int) -> str:
        k, i = self.timeline.locate(g)
        dig = self._digest(k, i)
        return (
            CHARGE_PREFIX
            + self._prefixes[k]
            + _P2[i // 3844]
            + _P2[i % 3844]
            + dig[:16].translate(ALNUM_TABLE).decode()
        )

    def position_of(self, charge_id: str, now: int | None = None) -> int | None:
        """The position an id stands for, or None if no such charge exists (at `now`)."""
        parts = split_charge_id(charge_id)
        if parts is None:
            return None
        day, i, check = parts
        k = self.timeline.day_index(day)
        if k is None or i >= self.timeline.counts[k]:
            return None
        if self._digest(k, i)[:16].translate(ALNUM_TABLE).decode() != check:
            return None
        g = self.timeline.position(k, i)
        if g >= self.visible_end(self.now() if now is None else now):
            return None
        return g

    @staticmethod
    def decode_id(charge_id: str) -> tuple[date, int] | None:
        """(day, index inside the day) an id encodes, without checking that it exists."""
        parts = split_charge_id(charge_id)
        return None if parts is None else (parts[0], parts[1])

    # -- rendering --------------------------------------------------------------------------

    def render_span(self, g0: int, g1: int, now: int) -> list[str]:
        """JSON texts of positions [g0, g1), ascending."""
        out: list[str] = []
        tl = self.timeline
        g = g0
        while g < g1:
            k, i = tl.locate(g)
            n = min(tl.counts[k] - i, g1 - g)
            out += self._render_day(k, i, i + n, now)
            g += n
        if self.changes:
            for pos, changes in self.changes.items():
                if g0 <= pos < g1:
                    out[pos - g0] = apply_changes(out[pos - g0], changes, now)
        return out

    def created_at(self, g: int) -> int:
        k, i = self.timeline.locate(g)
        return self.timeline.timestamps(k)[i]

    def day_changes(self, k: int) -> list[tuple[int, str, int]]:
        """Every seeded change of day k's charges as (time, event type, position), cached: the
        same digests as rendering, about 30 ms for 15 k charges."""
        got = self._day_changes.get(k)
        if got is not None:
            return got
        ts = self.timeline.timestamps(k)
        self._digest(k, 0)
        base = self._hashers[k]
        assert base is not None
        g0 = self.timeline.position(k, 0)
        out: list[tuple[int, str, int]] = []
        for i in range(self.timeline.counts[k]):
            hasher = base.copy()
            hasher.update(i.to_bytes(4, "little"))
            h = int.from_bytes(hasher.digest()[32:], "little")
            for t, kind in seeded_changes(h, ts[i]):
                out.append((t, kind, g0 + i))
        if len(self._day_changes) > 64:
            self._day_changes.clear()
        self._day_changes[k] = out
        return out

    def capture_times(self, k: int) -> dict[int, int]:
        """Day k's charges whose seeded life captures them after `created` (a late capture, a
        pending charge that succeeds): position -> when. Every other captured charge was captured
        at its `created`. From the cached `day_changes`."""
        return {
            g: t
            for t, kind, g in self.day_changes(k)
            if kind in ("charge.succeeded", "charge.captured")
        }

    def capture_time(self, g: int, now: int) -> int | None:
        """When charge g was captured and succeeded, as it stands at `now` with its hand-made
        changes (None: not captured and succeeded at `now`): when its balance transaction was
        created."""
        k, i = self.timeline.locate(g)
        at = self.capture_times(k).get(g)
        if at is None:
            c = json.loads(self._render_day(k, i, i + 1, now)[0])
            at = self.created_at(g) if c["status"] == "succeeded" and c["captured"] else None
        for ch in self.changes.get(g, ()):
            due = now >= ch.at
            if ch.kind == "settle":
                at = ch.at if due and ch.outcome == "succeeded" else None
            elif ch.kind == "capture":
                at = ch.at if due else None
        return at if at is not None and at <= now else None

    def _render_day(self, k: int, i0: int, i1: int, now: int) -> list[str]:
        """Charges i0..i1-1 of day k. The hot path: one loop, locals only, `str.join` of literal
        pieces (twice as fast as `%` on a 2 KB template, which rescans the literal text)."""
        lit = self._literals
        ts = self.timeline.timestamps(k)
        self._digest(k, 0)  # make sure the day's pre-keyed hasher exists
        base = self._hashers[k]
        assert base is not None
        prefix = self._prefixes[k]
        currency_of, customers, amounts = self._currency_of, self._customers, self._amounts
        outcome_ok = self._outcome_ok
        out: list[str] = []
        append = out.append
        for i in range(i0, i1):
            hasher = base.copy()
            hasher.update(i.to_bytes(4, "little"))
            dig = hasher.digest()
            body = (
                prefix + _P2[i // 3844] + _P2[i % 3844] + dig[:16].translate(ALNUM_TABLE).decode()
            )
            tails = dig[16:32].translate(ALNUM_TABLE).decode()
            h = int.from_bytes(dig[32:], "little")
            created = ts[i]
            currency = currency_of[(h >> 16) & 0x3FF]
            cust = customers[currency][(h >> 26) & 0xFF]
            amount = amounts[currency][(h >> 34) & 0xFFF]
            amount_s = str(amount)
            scen = h & 0xFFFF
            age = now - created

            status = "succeeded"
            captured = True
            amount_captured = amount
            amount_refunded = 0
            disputed = False
            risk = ((h >> 80) & 0x7F) % 100
            if scen < _P_PENDING_RESOLVES:
                status = "pending"
                if scen >= _P_PENDING_FOREVER and age >= HOUR + ((h >> 46) & 0x3FFFF) % _DELAY_SPAN:
                    status = "succeeded" if ((h >> 64) & 0xFF) < 218 else "failed"
            elif scen < _P_FAILED:
                status = "failed"
            elif scen < _P_UNCAPTURED:
                captured = False
                amount_captured = 0
                if (h >> 252) & 1 and age >= HOUR + ((h >> 46) & 0x3FFFF) % _DELAY_SPAN:
                    captured = True  # an authorization captured late, in full
                    amount_captured = amount
            elif scen < _P_PARTIAL:
                if (h >> 252) & 1 and age < HOUR + ((h >> 46) & 0x3FFFF) % _DELAY_SPAN:
                    captured = False  # authorized now, captured for less later
                    amount_captured = 0
                else:
                    amount_captured = max(1, amount * (50 + ((h >> 72) & 0x3F) % 46) // 100)

            presentment = ""
            if currency == "usd" and ((h >> 172) & 0xFF) < _P_PRESENTMENT:
                pcur, fx = _PRESENTMENT_FX[(h >> 180) & 3]
                presentment = (
                    f'"presentment_details":{{"presentment_amount":{int(amount * fx)},'
                    f'"presentment_currency":"{pcur}"}},'
                )
            if status == "failed":
                variant = ((h >> 88) & 0x7) % 8
                if variant == 7:
                    failure_code, failure_message = '"card_declined"', '"Your card was declined."'
                    outcome = _OUTCOME_BLOCKED % (75 + risk % 25)
                else:
                    code, msg, advice, ndc, reason, seller = _DECLINES[variant]
                    failure_code, failure_message = f'"{code}"', f'"{msg}"'
                    outcome = _OUTCOME_DECLINED % (advice, ndc, reason, risk % 65, seller)
                append(
                    "".join(
                        (
                            lit[0], body, lit[1], amount_s, lit[2], "0", lit[3], "0",
                            lit[4], "null", lit[5], cust.billing_details, lit[6], "false",
                            lit[7], str(created), lit[8], currency, lit[9], cust.customer,
                            lit[10], _DESCRIPTION[(h >> 182) & 3] or f'"Order {body[10:18]}"',
                            lit[11], "false", lit[12], failure_code, lit[13], failure_message,
                            lit[14], body[12:24], lit[15], _CHANNELS[(h >> 184) & 3], lit[16],
                            outcome, lit[17], "false", lit[18], body[:16] + tails[8:16],
                            lit[19], cust.payment_method, lit[20], amount_s, lit[21], "null",
                            lit[22], cust.card_head, lit[23], str((h >> 206) % 10**15).zfill(15),
                            lit[24], amount_s, lit[25], cust.card_tail, lit[26], presentment,
                            lit[27], cust.receipt_email, lit[28], body + tails[:12], lit[29],
                            "false", lit[30], cust.shipping if (h >> 250) & 3 == 0 else "null",
                            lit[31], "failed", lit[32],
                        )
                    )
                )  # fmt: skip
                continue

            outcome = outcome_ok[risk % 75]
            if status == "succeeded" and captured:
                if ((h >> 96) & 0xFFFF) < _P_REFUND and age >= HOUR + (
                    (h >> 112) & 0x3FFFF
                ) % _DELAY_SPAN:
                    if (h >> 130) & 1:
                        amount_refunded = amount_captured
                    else:
                        amount_refunded = max(1, amount_captured * (10 + (h >> 131) % 80) // 100)
                if ((h >> 138) & 0xFFFF) < _P_DISPUTE and age >= HOUR + (
                    (h >> 154) & 0x3FFFF
                ) % _DELAY_SPAN:
                    disputed = True
            append(
                "".join(
                    (
                        lit[0], body, lit[1], amount_s, lit[2], str(amount_captured),
                        lit[3], str(amount_refunded), lit[4], '"txn_', body[:16], tails[:8], '"',
                        lit[5], cust.billing_details, lit[6], "true" if captured else "false",
                        lit[7], str(created), lit[8], currency, lit[9], cust.customer,
                        lit[10], _DESCRIPTION[(h >> 182) & 3] or f'"Order {body[10:18]}"',
                        lit[11], "true" if disputed else "false", lit[12], "null", lit[13],
                        "null", lit[14], body[12:24], lit[15], _CHANNELS[(h >> 184) & 3],
                        lit[16], outcome, lit[17], "true" if status == "succeeded" else "false",
                        lit[18], body[:16] + tails[8:16], lit[19], cust.payment_method,
                        lit[20], amount_s, lit[21], '"', str((h >> 186) % 1000000).zfill(6),
                        '"', lit[22], cust.card_head, lit[23],
                        str((h >> 206) % 10**15).zfill(15), lit[24], amount_s, lit[25],
                        cust.card_tail, lit[26], presentment, lit[27], cust.receipt_email,
                        lit[28], body + tails[:12], lit[29],
                        "true" if amount_refunded and amount_refunded == amount_captured
                        else "false",
                        lit[30], cust.shipping if (h >> 250) & 3 == 0 else "null", lit[31],
                        status, lit[32],
                    )
                )
            )  # fmt: skip
        return out

    # -- the Python view ----------------------------------------------------------------------

    def iter_charges(self, gte: int, lt: int, now: int | None = None) -> Iterator[dict]:
        """Charges with gte <= created < lt, oldest first, as the server would serve them
        (before fault injection)."""
        now = self.now() if now is None else now
        lo, hi = self.bounds(gte, lt, now)
        step = 1000
        for g in range(lo, hi, step):
            for text in self.render_span(g, min(g + step, hi), now):
                yield json.loads(text)

    def count(self, gte: int, lt: int, now: int | None = None) -> int:
        """How many charges have gte <= created < lt: two binary searches, nothing rendered."""
        lo, hi = self.bounds(gte, lt, self.now() if now is None else now)
        return hi - lo

    def get(self, charge_id: str, now: int | None = None) -> dict | None:
        now = self.now() if now is None else now
        g = self.position_of(charge_id, now)
        return None if g is None else json.loads(self.render_span(g, g + 1, now)[0])
