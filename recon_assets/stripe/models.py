"""The parts of a Stripe Charge that reconciliation needs, and how they are validated.

Strict types: Stripe sends amounts as JSON integers, so an amount of `"12.50"` is a malformed
record for the quarantine, not something to coerce. Unknown top-level fields are ignored by the
model (new Stripe fields must not break a night's run) but counted as schema drift by the pull;
`status` is a plain string for the same reason, with its known values listed here so drift in
them is visible rather than fatal.

Three ways in, one definition: `CLEAN_CHARGE_PAGE` (a msgspec decoder generated from the models)
decodes a clean page's bytes straight into charges (the pull's fast path); `CHARGE_LIST`
validates a page the client parsed as JSON because it was not clean (python mode); and the
models validate JSON text record by record (the path that writes quarantine reasons). Strict
python mode over the client's parsed JSON rejects
exactly what strict JSON mode rejects for these fields (checked on wrong types, floats, bools, nulls,
missing keys, big ints, bad nested values). The parsers differ in two corners: a lone UTF-16
surrogate escape, which the pull routes to the JSON path, and nesting deeper than 200 levels,
which pydantic's JSON parser refuses and Python's accepts; such a record would now be staged if
its fields are valid, where it was quarantined before. Stripe objects are a few levels deep.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any, Literal, NotRequired, Union, get_args, get_origin

import annotated_types
import msgspec
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

KNOWN_STATUSES = frozenset({"succeeded", "pending", "failed"})

# Every top-level field of Stripe's Charge object as of the pinned API version. A field outside
# this set in a response is schema drift: recorded, not fatal.
KNOWN_CHARGE_FIELDS = frozenset(
    {
        "id", "object", "amount", "amount_captured", "amount_refunded", "application",
        "application_fee", "application_fee_amount", "balance_transaction", "billing_details",
        "calculated_statement_descriptor", "captured", "created", "currency", "customer",
        "description", "disputed", "failure_balance_transaction", "failure_code",
        "failure_message", "fraud_details", "invoice", "level3", "livemode", "metadata",
        "on_behalf_of", "outcome", "paid", "payment_intent", "payment_method",
        "payment_method_details", "presentment_details", "radar_options", "receipt_email",
        "receipt_number", "receipt_url", "refunded", "refunds", "review", "shipping", "source",
        "source_transfer", "statement_descriptor", "statement_descriptor_suffix", "status",
        "transfer", "transfer_data", "transfer_group",
    }
)  # fmt: skip


class Outcome(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    type: str | None = None


class Charge(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    id: str = Field(min_length=3)
    created: int
    livemode: bool | None = None
    status: str
    paid: bool | None = None
    captured: bool
    refunded: bool | None = None
    disputed: bool | None = None
    currency: str = Field(min_length=3, max_length=3)
    amount: int
    amount_captured: int
    amount_refunded: int | None = None
    balance_transaction: str | None = None
    customer: str | None = None
    payment_intent: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    outcome: Outcome | None = None
    description: str | None = None
    metadata: dict[str, str] | None = None


class ChargePage(BaseModel):
    """One `GET /v1/charges` page; validating it whole is the fast path for clean pages."""

    model_config = ConfigDict(extra="ignore", strict=True)

    object: Literal["list"]
    data: list[Charge]
    has_more: bool


def _mirrored_fields(model: type[BaseModel]) -> Iterator[tuple[str, Any, list[Any], bool]]:
    """`(name, annotation, constraints, required)` of each field, for a mirror of `model`.

    Only required fields and fields defaulting to None can be mirrored faithfully (an absent key
    and `None` must mean the same to the reader), so anything else raises.
    """
    for name, info in model.model_fields.items():
        if not info.is_required() and info.default is not None:
            raise TypeError(f"{model.__name__}.{name}: only None defaults can be mirrored")
        yield name, info.annotation, info.metadata, info.is_required()


def _swap_models(ann: Any, mirror: Callable[[type[BaseModel]], Any]) -> Any:
    """The annotation with every BaseModel (also inside `X | None`) replaced by `mirror(model)`."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return mirror(ann)
    if get_origin(ann) in (Union, types.UnionType):
        return Union[tuple(_swap_models(a, mirror) for a in get_args(ann))]  # noqa: UP007
    return ann


def _fields_typed_dict(model: type[BaseModel]) -> Any:
    """A TypedDict with `model`'s fields, types, constraints, optionality and config.

    Why: validating the dicts the client parsed (`parse_response`) into such a TypedDict (python
    mode) costs about 5 us a charge, against about 9 us for re-parsing the page's JSON into
    models, and plain dicts are quicker to turn into columns than model instances. Generating it
    from the model keeps one definition of what a valid charge is. Every optional field defaults
    to None, so an absent key and `None` mean the same to the reader (`row.get(name)`).
    """
    fields: dict[str, Any] = {}
    for name, ann, constraints, required in _mirrored_fields(model):
        ann = _swap_models(ann, _fields_typed_dict)
        if constraints:
            ann = Annotated[(ann, *constraints)]
        fields[name] = ann if required else NotRequired[ann]
    td = TypedDict(f"{model.__name__}Fields", fields)  # type: ignore[operator]
    return with_config(ConfigDict(**model.model_config))(td)


ChargeFields = _fields_typed_dict(Charge)
"""`Charge` as a TypedDict: same fields, same strictness, output is a plain dict."""

CHARGE_LIST = TypeAdapter(list[ChargeFields])
"""Validates a page's `data` (as the client parsed it, because the decoder refused the page) in
one call: a page that only carries an undocumented field is still staged whole."""


def _msgspec_bounds(constraints: Sequence[Any]) -> msgspec.Meta | None:
    """Length bounds as `msgspec.Meta`; any other constraint raises, so a rule added to a model
    can never be silently left out of the fast path's decoder."""
    bounds: dict[str, int] = {}
    for c in constraints:
        if isinstance(c, annotated_types.MinLen):
            bounds["min_length"] = c.min_length
        elif isinstance(c, annotated_types.MaxLen):
            bounds["max_length"] = c.max_length
        else:
            raise TypeError(f"no msgspec equivalent for the constraint {c!r}")
    return msgspec.Meta(**bounds) if bounds else None


def _msgspec_struct(
    model: type[BaseModel], *, declared_only: frozenset[str] | None = None
) -> type[msgspec.Struct]:
    """A msgspec Struct with `model`'s fields, types, bounds and optionality (None defaults).

    With `declared_only`, every name in it that the model does not use is declared as a raw
    (skipped, never parsed) field and any other key is refused: a record carrying a field
    outside that set fails to decode, which sends its page to the path that counts drift.
    Without it, unknown keys are ignored, as the model ignores them.
    """
    if model.model_config.get("extra", "ignore") != "ignore" or not model.model_config.get(
        "strict"
    ):
        raise TypeError(f"{model.__name__}: only strict models that ignore extras are mirrored")
    required: list[tuple[str, Any]] = []
    optional: list[tuple[str, Any, Any]] = []
    for name, ann, constraints, is_required in _mirrored_fields(model):
        ann = _swap_models(ann, _msgspec_struct)
        if (meta := _msgspec_bounds(constraints)) is not None:
            ann = Annotated[ann, meta]
        if is_required:
            required.append((name, ann))
        else:
            optional.append((name, ann, None))
    raw = sorted((declared_only or frozenset()) - model.model_fields.keys())
    optional += [(name, msgspec.Raw, msgspec.UNSET) for name in raw]
    return msgspec.defstruct(
        f"{model.__name__}Struct",
        [*required, *optional],
        forbid_unknown_fields=declared_only is not None,
        kw_only=True,
    )


ChargeStruct = _msgspec_struct(Charge, declared_only=KNOWN_CHARGE_FIELDS)
"""`Charge` as a msgspec Struct that also refuses any top-level field Stripe did not document."""


class CleanChargePage(msgspec.Struct):
    """A `GET /v1/charges` page whose every record is a valid charge with no drift."""

    object: Literal["list"]
    data: list[ChargeStruct]  # type: ignore[valid-type]
    has_more: bool


CLEAN_CHARGE_PAGE = msgspec.json.Decoder(CleanChargePage)
"""Decodes page bytes straight into validated charges, or raises: the pull's fast path.

It accepts a page exactly when the record-by-record models would accept every charge on it and
none carries an undocumented field (tests/test_stripe_pull.py checks both ways on generated
pages), so a page it refuses only takes the slower path, which quarantines and counts drift.
One corner is refused where the models accept: a lone UTF-16 surrogate escape (msgspec refuses
it; the pull routes such pages to the JSON path, as before).
"""


# -- refunds ----------------------------------------------------------------------------------

KNOWN_REFUND_STATUSES = frozenset({"pending", "requires_action", "succeeded", "failed", "canceled"})

KNOWN_REFUND_FIELDS = frozenset(
    {
        "id", "object", "amount", "balance_transaction", "charge", "created", "currency",
        "customer", "customer_account", "description", "destination_details",
        "failure_balance_transaction", "failure_reason", "instructions_email", "metadata",
        "next_action", "payment_intent", "payment_method", "pending_reason",
        "presentment_details", "reason", "receipt_number", "source_transfer_reversal", "status",
        "transfer_reversal",
    }
)  # fmt: skip
"""Every top-level field of Stripe's Refund object as of the pinned API version (its published
example, plus the fields it shows only for some refunds: failure, pending, next action)."""


class Refund(BaseModel):
    """The parts of a Stripe Refund that reconciliation needs: each refund is an item of its
    own, held against the ledger's `refund` entry that names it."""

    model_config = ConfigDict(extra="ignore", strict=True)

    id: str = Field(min_length=3)
    created: int
    status: str
    amount: int
    currency: str = Field(min_length=3, max_length=3)
    charge: str | None = None
    payment_intent: str | None = None
    balance_transaction: str | None = None
    failure_balance_transaction: str | None = None
    failure_reason: str | None = None
    reason: str | None = None
    metadata: dict[str, str] | None = None


class RefundPage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    object: Literal["list"]
    data: list[Refund]
    has_more: bool


RefundFields = _fields_typed_dict(Refund)
REFUND_LIST = TypeAdapter(list[RefundFields])
RefundStruct = _msgspec_struct(Refund, declared_only=KNOWN_REFUND_FIELDS)


class CleanRefundPage(msgspec.Struct):
    object: Literal["list"]
    data: list[RefundStruct]  # type: ignore[valid-type]
    has_more: bool


CLEAN_REFUND_PAGE = msgspec.json.Decoder(CleanRefundPage)


# -- balance transactions -------------------------------------------------------------------

KNOWN_BALANCE_TRANSACTION_STATUSES = frozenset({"pending", "available"})

KNOWN_BALANCE_TRANSACTION_FIELDS = frozenset(
    {
        "id", "object", "amount", "available_on", "balance_type", "created", "currency",
        "description", "exchange_rate", "fee", "fee_details", "net", "reporting_category",
        "source", "status", "type",
    }
)  # fmt: skip
"""Every top-level field of Stripe's BalanceTransaction as of the pinned API version (its
published example)."""


class BalanceTransaction(BaseModel):
    """The parts of a Stripe balance transaction that reconciliation needs: every movement of
    the balance, with the fee Stripe took (`fee`, the sum of `fee_details`) and what is left
    (`net` = amount - fee), in the currency the balance moved in. `exchange_rate` is set only
    when Stripe converted the money (a settlement in another currency)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    id: str = Field(min_length=3)
    created: int
    available_on: int
    status: str
    type: str
    amount: int
    fee: int
    net: int
    currency: str = Field(min_length=3, max_length=3)
    source: str | None = None
    reporting_category: str | None = None
    exchange_rate: float | None = None
    description: str | None = None


class BalanceTransactionPage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    object: Literal["list"]
    data: list[BalanceTransaction]
    has_more: bool


BalanceTransactionFields = _fields_typed_dict(BalanceTransaction)
BALANCE_TRANSACTION_LIST = TypeAdapter(list[BalanceTransactionFields])
BalanceTransactionStruct = _msgspec_struct(
    BalanceTransaction, declared_only=KNOWN_BALANCE_TRANSACTION_FIELDS
)


class CleanBalanceTransactionPage(msgspec.Struct):
    object: Literal["list"]
    data: list[BalanceTransactionStruct]  # type: ignore[valid-type]
    has_more: bool


CLEAN_BALANCE_TRANSACTION_PAGE = msgspec.json.Decoder(CleanBalanceTransactionPage)


# -- payouts -------------------------------------------------------------------------------

KNOWN_PAYOUT_STATUSES = frozenset({"paid", "pending", "in_transit", "canceled", "failed"})

KNOWN_PAYOUT_FIELDS = frozenset(
    {
        "id", "object", "amount", "application_fee", "application_fee_amount", "arrival_date",
        "automatic", "balance_transaction", "created", "currency", "description", "destination",
        "failure_balance_transaction", "failure_code", "failure_message", "livemode",
        "metadata", "method", "original_payout", "payout_method", "reconciliation_status",
        "reversed_by", "source_type", "statement_descriptor", "status", "trace_id", "type",
    }
)  # fmt: skip
"""Every top-level field of Stripe's Payout as of the pinned API version (its published
example)."""


class Payout(BaseModel):
    """The parts of a Stripe payout that reconciliation needs: money leaving the balance for
    the bank (`amount`, positive, in `currency`), expected there on `arrival_date` (00:00 UTC of
    the bank's date). `balance_transaction` is its own movement of the balance;
    `failure_balance_transaction` the one that gives the money back when it fails."""

    model_config = ConfigDict(extra="ignore", strict=True)

    id: str = Field(min_length=3)
    created: int
    arrival_date: int
    status: str
    amount: int
    currency: str = Field(min_length=3, max_length=3)
    automatic: bool | None = None
    method: str | None = None
    balance_transaction: str | None = None
    failure_balance_transaction: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    description: str | None = None
    metadata: dict[str, str] | None = None


class PayoutPage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    object: Literal["list"]
    data: list[Payout]
    has_more: bool


PayoutFields = _fields_typed_dict(Payout)
PAYOUT_LIST = TypeAdapter(list[PayoutFields])
PayoutStruct = _msgspec_struct(Payout, declared_only=KNOWN_PAYOUT_FIELDS)


class CleanPayoutPage(msgspec.Struct):
    object: Literal["list"]
    data: list[PayoutStruct]  # type: ignore[valid-type]
    has_more: bool


CLEAN_PAYOUT_PAGE = msgspec.json.Decoder(CleanPayoutPage)


# -- disputes ----------------------------------------------------------------------------------

KNOWN_DISPUTE_STATUSES = frozenset(
    {
        "warning_needs_response", "warning_under_review", "warning_closed", "needs_response",
        "under_review", "won", "lost", "prevented",
    }
)  # fmt: skip

KNOWN_DISPUTE_FIELDS = frozenset(
    {
        "id", "object", "amount", "balance_transactions", "charge", "created", "currency",
        "enhanced_eligibility_types", "evidence", "evidence_details", "is_charge_refundable",
        "livemode", "metadata", "object_type", "payment_intent", "payment_method_details",
        "reason", "status",
    }
)  # fmt: skip
"""Every top-level field of Stripe's Dispute as of the pinned API version (its published
example, plus `object_type`)."""


class Dispute(BaseModel):
    """The parts of a Stripe dispute that reconciliation needs: the charge it disputes, the
    amount, and its `status` (won: the amount came back). Its money moves in its balance
    transactions (the withdrawal with the dispute fee, the reinstatement if won), which the
    balance-transaction pull holds; each is an item of its own (docs/design.md, "Disputes")."""

    model_config = ConfigDict(extra="ignore", strict=True)

    id: str = Field(min_length=3)
    created: int
    status: str
    amount: int
    currency: str = Field(min_length=3, max_length=3)
    charge: str | None = None
    payment_intent: str | None = None
    reason: str | None = None
    is_charge_refundable: bool | None = None
    metadata: dict[str, str] | None = None


class DisputePage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    object: Literal["list"]
    data: list[Dispute]
    has_more: bool


DisputeFields = _fields_typed_dict(Dispute)
DISPUTE_LIST = TypeAdapter(list[DisputeFields])
DisputeStruct = _msgspec_struct(Dispute, declared_only=KNOWN_DISPUTE_FIELDS)


class CleanDisputePage(msgspec.Struct):
    object: Literal["list"]
    data: list[DisputeStruct]  # type: ignore[valid-type]
    has_more: bool


CLEAN_DISPUTE_PAGE = msgspec.json.Decoder(CleanDisputePage)
