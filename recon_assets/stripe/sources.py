"""The Stripe objects recon pulls, each as one spec: where it is listed, how it is validated,
what is staged of it and into which dataset.

Why specs: a charge and a refund go through the same pull (time windows, paging, one rate
limiter, retries, validation, quarantine, drift counts, conserved counts), the same staging and
the same load; only these facts differ. A new object is a new `StripeSource`, never a copy of
the pull.
"""

from __future__ import annotations

import dataclasses
import json
import json.encoder
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import msgspec
import pyarrow as pa
from pydantic import BaseModel, TypeAdapter

from recon_assets.stage.schemas import (
    STRIPE_BALANCE_TRANSACTIONS_SCHEMA,
    STRIPE_CHARGES_SCHEMA,
    STRIPE_DISPUTES_SCHEMA,
    STRIPE_PAYOUT_TRANSACTIONS_SCHEMA,
    STRIPE_PAYOUTS_SCHEMA,
    STRIPE_REFUNDS_SCHEMA,
)
from recon_assets.stripe.models import (
    BALANCE_TRANSACTION_LIST,
    CHARGE_LIST,
    CLEAN_BALANCE_TRANSACTION_PAGE,
    CLEAN_CHARGE_PAGE,
    CLEAN_DISPUTE_PAGE,
    CLEAN_PAYOUT_PAGE,
    CLEAN_REFUND_PAGE,
    DISPUTE_LIST,
    KNOWN_BALANCE_TRANSACTION_FIELDS,
    KNOWN_BALANCE_TRANSACTION_STATUSES,
    KNOWN_CHARGE_FIELDS,
    KNOWN_DISPUTE_FIELDS,
    KNOWN_DISPUTE_STATUSES,
    KNOWN_PAYOUT_FIELDS,
    KNOWN_PAYOUT_STATUSES,
    KNOWN_REFUND_FIELDS,
    KNOWN_REFUND_STATUSES,
    KNOWN_STATUSES,
    PAYOUT_LIST,
    REFUND_LIST,
    BalanceTransaction,
    BalanceTransactionPage,
    BalanceTransactionStruct,
    Charge,
    ChargePage,
    ChargeStruct,
    Dispute,
    DisputePage,
    DisputeStruct,
    Payout,
    PayoutPage,
    PayoutStruct,
    Refund,
    RefundPage,
    RefundStruct,
)
from recon_assets.timewindows import (
    Window,
    business_day_of,
    day_window,
    utc_date_of,
    utc_date_window,
)


def _metadata_encoder() -> Callable[[dict[str, str]], str]:
    """`json.dumps(metadata, sort_keys=True)`, the same text at half the cost per record.

    `json.dumps` builds an encoder object per call; for a validated `dict[str, str]` (no
    nesting, so no circular check is needed) the stdlib's own C encoder can be built once. Falls
    back to a reused `JSONEncoder` where the C accelerator is missing.
    """
    enc = json.JSONEncoder(sort_keys=True)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return enc.encode
    c_encode = make(
        None, enc.default, json.encoder.encode_basestring_ascii, None, ": ", ", ", True, False, True
    )
    return lambda m: "".join(c_encode(m, 0))


metadata_json = _metadata_encoder()


def _columns_builder(
    copied: tuple[str, ...],
    derived: Mapping[str, Callable[[Any], Any]],
    *,
    metadata: bool = True,
) -> Callable[[Sequence[Any]], dict[str, list[Any]]]:
    """Validated records (msgspec structs) as staged columns: the `copied` fields as they are,
    in one C-level transpose, and each derived column by its function. Every source has
    `created` (unix seconds, staged as microseconds) and a lower-case `currency`; `metadata` as
    JSON text where the object has it; amounts stay integers in minor units."""
    get = operator.attrgetter(*copied)

    def columns(records: Sequence[Any]) -> dict[str, list[Any]]:
        cols = [list(c) for c in zip(*map(get, records), strict=True)]
        out = dict(zip(copied, cols or [[] for _ in copied], strict=True))
        out["created"] = [r.created * 1_000_000 for r in records]
        out["currency"] = [r.currency.lower() for r in records]
        if metadata:
            out["metadata"] = [metadata_json(m) if (m := r.metadata) else None for r in records]
        for name, fn in derived.items():
            out[name] = [fn(r) for r in records]
        return out

    return columns


@dataclass(frozen=True)
class StripeSource:
    """One Stripe list object: `GET {path}` pages into `dataset` (a raw table of that name).

    `model` judges a record on its own (the quarantine path, with reasons); `page_model` a whole
    page from JSON; `list_adapter` a page the client parsed; `clean_page` decodes a clean page's
    bytes straight into records (the fast path). `known_fields` / `known_statuses` make drift
    visible instead of fatal. `columns` turns validated records into the `schema`'s columns.
    `windows_per_day`: how many parallel slices a day is pulled in (None: the resource's
    setting, sized for charges). `window_field` is the instant a day is a window of, sent as
    Stripe's filter of that name and checked on every record (`created`, or a payout's
    `arrival_date`); `day_window` the instants of a reporting day (US-Eastern, or the UTC
    calendar date for a field Stripe sends as a date), and `day_of` its inverse: the day an
    object fetched by id is staged on. `parent_filter`: the list filter that names a parent
    object (`payout`: the transactions a payout carried), pulled per parent instead of per
    time slice, and the staged column holding the parent's id. `processes_pay`: a long range's
    pull is worth several processes (`RECON_STRIPE_PULL_PROCESSES`), because the client's own
    CPU bounds it when nothing throttles it: so for charges (2 processes pulled 42-46 k/s
    against 32 k/s for one), not for balance or payout transactions, whose pull in 2 processes
    took 142 and 135 s of a 600 k backfill against 66 and 86 s in one (docs/benchmarks.md).
    """

    name: str
    dataset: str
    path: str
    model: type[BaseModel]
    page_model: type[BaseModel]
    list_adapter: TypeAdapter[Any]
    struct: type[msgspec.Struct]
    clean_page: msgspec.json.Decoder[Any]
    known_fields: frozenset[str]
    known_statuses: frozenset[str]
    schema: pa.Schema
    columns: Callable[[Sequence[Any]], dict[str, list[Any]]]
    windows_per_day: int | None = None
    window_field: str = "created"
    day_window: Callable[[date], Window] = day_window
    day_of: Callable[[int], date] = business_day_of
    parent_filter: str | None = None
    processes_pay: bool = False

    @property
    def quarantine_prefix(self) -> str:
        return f"quarantine/{self.dataset}"

    def dict_columns(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """Records the models validated (dicts) as staged columns, through the fast path's
        structs, so both paths build columns one way."""
        return self.columns(msgspec.convert(rows, list[self.struct]))  # type: ignore[name-defined]


CHARGES = StripeSource(
    name="charges",
    dataset="stripe_charges",
    path="/v1/charges",
    model=Charge,
    page_model=ChargePage,
    list_adapter=CHARGE_LIST,
    struct=ChargeStruct,
    clean_page=CLEAN_CHARGE_PAGE,
    known_fields=KNOWN_CHARGE_FIELDS,
    known_statuses=KNOWN_STATUSES,
    schema=STRIPE_CHARGES_SCHEMA,
    processes_pay=True,
    columns=_columns_builder(
        (
            "id",
            "livemode",
            "status",
            "paid",
            "captured",
            "refunded",
            "disputed",
            "amount",
            "amount_captured",
            "amount_refunded",
            "balance_transaction",
            "customer",
            "payment_intent",
            "failure_code",
            "failure_message",
            "description",
        ),
        {"outcome_type": lambda c: o.type if (o := c.outcome) else None},
    ),
)

REFUNDS = StripeSource(
    name="refunds",
    dataset="stripe_refunds",
    path="/v1/refunds",
    model=Refund,
    page_model=RefundPage,
    list_adapter=REFUND_LIST,
    struct=RefundStruct,
    clean_page=CLEAN_REFUND_PAGE,
    known_fields=KNOWN_REFUND_FIELDS,
    known_statuses=KNOWN_REFUND_STATUSES,
    schema=STRIPE_REFUNDS_SCHEMA,
    columns=_columns_builder(
        (
            "id",
            "status",
            "charge",
            "payment_intent",
            "amount",
            "balance_transaction",
            "failure_balance_transaction",
            "failure_reason",
            "reason",
        ),
        {},
    ),
    # a day's refunds are a few hundred (one charge in twenty): one slice pages through them
    windows_per_day=1,
)

BALANCE_TRANSACTIONS = StripeSource(
    name="balance transactions",
    dataset="stripe_balance_transactions",
    path="/v1/balance_transactions",
    model=BalanceTransaction,
    page_model=BalanceTransactionPage,
    list_adapter=BALANCE_TRANSACTION_LIST,
    struct=BalanceTransactionStruct,
    clean_page=CLEAN_BALANCE_TRANSACTION_PAGE,
    known_fields=KNOWN_BALANCE_TRANSACTION_FIELDS,
    known_statuses=KNOWN_BALANCE_TRANSACTION_STATUSES,
    schema=STRIPE_BALANCE_TRANSACTIONS_SCHEMA,
    columns=_columns_builder(
        (
            "id",
            "status",
            "type",
            "reporting_category",
            "source",
            "amount",
            "fee",
            "net",
            "exchange_rate",
            "description",
        ),
        {"available_on": lambda t: t.available_on * 1_000_000},
        metadata=False,
    ),
)

PAYOUTS = StripeSource(
    name="payouts",
    dataset="stripe_payouts",
    path="/v1/payouts",
    model=Payout,
    page_model=PayoutPage,
    list_adapter=PAYOUT_LIST,
    struct=PayoutStruct,
    clean_page=CLEAN_PAYOUT_PAGE,
    known_fields=KNOWN_PAYOUT_FIELDS,
    known_statuses=KNOWN_PAYOUT_STATUSES,
    schema=STRIPE_PAYOUTS_SCHEMA,
    columns=_columns_builder(
        (
            "id",
            "status",
            "amount",
            "automatic",
            "method",
            "balance_transaction",
            "failure_balance_transaction",
            "failure_code",
            "failure_message",
            "description",
        ),
        {"arrival_date": lambda p: p.arrival_date * 1_000_000},
    ),
    # a day's payouts are one per currency: one slice, windowed by the bank's date
    windows_per_day=1,
    window_field="arrival_date",
    day_window=utc_date_window,
    day_of=utc_date_of,
)

PAYOUT_TRANSACTIONS = dataclasses.replace(
    BALANCE_TRANSACTIONS,
    name="payout transactions",
    dataset="stripe_payout_transactions",
    schema=STRIPE_PAYOUT_TRANSACTIONS_SCHEMA,
    parent_filter="payout",
    day_window=utc_date_window,
    day_of=utc_date_of,
)
"""What each paid payout carried (`GET /v1/balance_transactions?payout=po_...`): balance
transactions, staged on the payout's arrival date with its id in `payout`."""

DISPUTES = StripeSource(
    name="disputes",
    dataset="stripe_disputes",
    path="/v1/disputes",
    model=Dispute,
    page_model=DisputePage,
    list_adapter=DISPUTE_LIST,
    struct=DisputeStruct,
    clean_page=CLEAN_DISPUTE_PAGE,
    known_fields=KNOWN_DISPUTE_FIELDS,
    known_statuses=KNOWN_DISPUTE_STATUSES,
    schema=STRIPE_DISPUTES_SCHEMA,
    columns=_columns_builder(
        ("id", "status", "charge", "payment_intent", "amount", "reason", "is_charge_refundable"),
        {},
    ),
    # a day's disputes are a few dozen (under one charge in a hundred): one slice
    windows_per_day=1,
)
"""Disputes by the US-Eastern day they were opened; a decision (won, lost) comes 30 days or
more later and reaches the warehouse through the dispute's events (a re-pull by id)."""

SOURCES: Mapping[str, StripeSource] = {
    s.dataset: s
    for s in (CHARGES, REFUNDS, BALANCE_TRANSACTIONS, PAYOUTS, PAYOUT_TRANSACTIONS, DISPUTES)
}
"""Every Stripe object recon pulls, by dataset."""
