"""The parts of a Stripe Charge that reconciliation needs, and how they are validated.

Strict types: Stripe sends amounts as JSON integers, so an amount of `"12.50"` is a malformed
record for the quarantine, not something to coerce. Unknown top-level fields are ignored by the
model (new Stripe fields must not break a night's run) but counted as schema drift by the pull;
`status` is a plain string for the same reason, with its known values listed here so drift in
them is visible rather than fatal.

Two ways in, one definition: `CHARGE_LIST` validates a whole page as the client already parsed it
(python mode, the pull's fast path), and the models validate JSON text record by record (the
path that writes quarantine reasons). Strict python mode over the client's parsed JSON rejects
exactly what strict JSON mode rejects for these fields (checked on wrong types, floats, bools, nulls,
missing keys, big ints, bad nested values). The parsers differ in two corners: a lone UTF-16
surrogate escape, which the pull routes to the JSON path, and nesting deeper than 200 levels,
which pydantic's JSON parser refuses and Python's accepts; such a record would now be staged if
its fields are valid, where it was quarantined before. Stripe objects are a few levels deep.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, NotRequired, Union, get_args, get_origin

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


def _fields_typed_dict(model: type[BaseModel]) -> Any:
    """A TypedDict with `model`'s fields, types, constraints, optionality and config.

    Why: validating the dicts the client has already parsed (`parse_response`) into such a
    TypedDict (python mode) costs about 5 us a charge, against about 9 us for re-parsing the
    page's JSON into models, and plain dicts are quicker to turn into columns than model instances. Generating it
    from the model keeps one definition of what a valid charge is. Every optional field defaults
    to None, so an absent key and `None` mean the same to the reader (`row.get(name)`).
    """
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        ann = _swap_models(info.annotation)
        if info.metadata:
            ann = Annotated[(ann, *info.metadata)]
        if info.is_required():
            fields[name] = ann
        elif info.default is None:
            fields[name] = NotRequired[ann]
        else:
            raise TypeError(f"{model.__name__}.{name}: only None defaults can be mirrored")
    td = TypedDict(f"{model.__name__}Fields", fields)  # type: ignore[operator]
    return with_config(ConfigDict(**model.model_config))(td)


def _swap_models(ann: Any) -> Any:
    """The annotation with every BaseModel (also inside `X | None`) replaced by its TypedDict."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return _fields_typed_dict(ann)
    if get_origin(ann) in (Union, types.UnionType):
        return Union[tuple(_swap_models(a) for a in get_args(ann))]  # noqa: UP007
    return ann


ChargeFields = _fields_typed_dict(Charge)
"""`Charge` as a TypedDict: same fields, same strictness, output is a plain dict."""

CHARGE_LIST = TypeAdapter(list[ChargeFields])
"""Validates a page's `data` (as the client parsed it) in one call: the pull's fast path."""
