"""The fixed Parquet schemas of what we stage: the contract between the extracts, the loaders
and the dbt sources.

Every staged file of a dataset has exactly this schema (column order included), so the warehouse
can COPY any of them with `MATCH_BY_COLUMN_NAME` and a schema change is a reviewed code change,
never a surprise from an API. Amounts are int64 minor units; timestamps are UTC microseconds.
Lineage columns start with `_`: `_partition_date` (the US-Eastern day the row belongs to),
`_synced_at` (when we read this version from the source: reconciliation names the charge
version it used by it) and `_run_id` (the Dagster run that staged it). The warehouse adds
`_loaded_at` itself.
"""

from __future__ import annotations

import pyarrow as pa

UTC_US = pa.timestamp("us", tz="UTC")

LINEAGE_FIELDS = [
    pa.field("_partition_date", pa.date32(), nullable=False),
    pa.field("_synced_at", UTC_US, nullable=False),
    pa.field("_run_id", pa.string(), nullable=False),
]

STRIPE_CHARGES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("created", UTC_US, nullable=False),
        pa.field("livemode", pa.bool_()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("paid", pa.bool_()),
        pa.field("captured", pa.bool_()),
        pa.field("refunded", pa.bool_()),
        pa.field("disputed", pa.bool_()),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("amount", pa.int64(), nullable=False),
        pa.field("amount_captured", pa.int64()),
        pa.field("amount_refunded", pa.int64()),
        pa.field("balance_transaction", pa.string()),
        pa.field("customer", pa.string()),
        pa.field("payment_intent", pa.string()),
        pa.field("failure_code", pa.string()),
        pa.field("failure_message", pa.string()),
        pa.field("outcome_type", pa.string()),
        pa.field("description", pa.string()),
        pa.field("metadata", pa.string()),  # JSON text of Stripe's metadata map
        *LINEAGE_FIELDS,
    ]
)

STRIPE_REFUNDS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("created", UTC_US, nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("charge", pa.string()),
        pa.field("payment_intent", pa.string()),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("amount", pa.int64(), nullable=False),
        pa.field("balance_transaction", pa.string()),
        pa.field("failure_balance_transaction", pa.string()),
        pa.field("failure_reason", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("metadata", pa.string()),  # JSON text of Stripe's metadata map
        *LINEAGE_FIELDS,
    ]
)
"""`raw.stripe_refunds`: one row per refund version, `_partition_date` the US-Eastern day the
refund was created (its reporting day, whatever its charge's)."""

STRIPE_BALANCE_TRANSACTIONS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("created", UTC_US, nullable=False),
        pa.field("available_on", UTC_US, nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("reporting_category", pa.string()),
        pa.field("source", pa.string()),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("amount", pa.int64(), nullable=False),
        pa.field("fee", pa.int64(), nullable=False),
        pa.field("net", pa.int64(), nullable=False),
        pa.field("exchange_rate", pa.float64()),
        pa.field("description", pa.string()),
        *LINEAGE_FIELDS,
    ]
)
"""`raw.stripe_balance_transactions`: one row per balance transaction version,
`_partition_date` the US-Eastern day it was created (a fee's reporting day, and the tie-out's)."""

STRIPE_PAYOUTS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("created", UTC_US, nullable=False),
        pa.field("arrival_date", UTC_US, nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("amount", pa.int64(), nullable=False),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("automatic", pa.bool_()),
        pa.field("method", pa.string()),
        pa.field("balance_transaction", pa.string()),
        pa.field("failure_balance_transaction", pa.string()),
        pa.field("failure_code", pa.string()),
        pa.field("failure_message", pa.string()),
        pa.field("description", pa.string()),
        pa.field("metadata", pa.string()),
        *LINEAGE_FIELDS,
    ]
)
"""`raw.stripe_payouts`: one row per payout version, `_partition_date` its arrival date (the
UTC date Stripe sends as `arrival_date`: the bank's date, a payout's reporting day)."""

STRIPE_PAYOUT_TRANSACTIONS_SCHEMA = pa.schema(
    [
        pa.field("payout", pa.string(), nullable=False),
        *(f for f in STRIPE_BALANCE_TRANSACTIONS_SCHEMA if not f.name.startswith("_")),
        *LINEAGE_FIELDS,
    ]
)
"""`raw.stripe_payout_transactions`: the balance transactions each paid payout carried (Stripe's
`GET /v1/balance_transactions?payout=`), one row per (payout, transaction) version,
`_partition_date` the payout's arrival date. Their `net` sums to the payout's amount."""

STRIPE_DISPUTES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("created", UTC_US, nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("charge", pa.string()),
        pa.field("payment_intent", pa.string()),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("amount", pa.int64(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("is_charge_refundable", pa.bool_()),
        pa.field("metadata", pa.string()),
        *LINEAGE_FIELDS,
    ]
)
"""`raw.stripe_disputes`: one row per dispute version, `_partition_date` the US-Eastern day it
was opened. Its money is in its balance transactions (raw.stripe_balance_transactions)."""

LEDGER_ENTRIES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("entry_type", pa.string(), nullable=False),
        pa.field("external_ref", pa.string()),
        pa.field("account", pa.string(), nullable=False),
        pa.field("amount_minor", pa.int64(), nullable=False),
        pa.field("currency", pa.string(), nullable=False),  # ISO 4217, upper case
        pa.field("posted_at", UTC_US, nullable=False),
        pa.field("created_at", UTC_US, nullable=False),
        pa.field("updated_at", UTC_US, nullable=False),
        # The batch the entry was posted in, and for a `reversal` the entry it cancels: the
        # ledger corrects by reversal, never by an edit, so reconciliation nets each pair.
        pa.field("journal_id", pa.int64()),
        pa.field("reversal_of", pa.int64()),
        *LINEAGE_FIELDS,
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),  # e.g. "stripe_charges"
        pa.field("record_id", pa.string()),  # the id, when the payload had a readable one
        pa.field("raw_payload", pa.string(), nullable=False),  # exactly as received (JSON text)
        pa.field("error", pa.string(), nullable=False),
        *LINEAGE_FIELDS,
    ]
)


# -- the warehouse's own bookkeeping tables (raw schema), written inside the load transactions --

LOAD_LOG_SCHEMA = pa.schema(
    [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("partition_date", pa.date32(), nullable=False),
        # "day": the whole day was replaced (an empty day is a loaded day); "lookup"/"changes":
        # rows replaced by id only, which says nothing about the day's completeness.
        pa.field("load_kind", pa.string(), nullable=False),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("loaded_at", UTC_US, nullable=False),
    ]
)
"""`raw.load_log`: one row per dataset and day of every committed load. Completeness (is the
ledger loaded without gaps through a charge's booking deadline?) is read from it, never from
which days happen to have rows."""

STRIPE_LOOKUPS_SCHEMA = pa.schema(
    [
        pa.field("charge_id", pa.string(), nullable=False),
        pa.field("result", pa.string(), nullable=False),  # found | not_found | quarantined
        pa.field("detail", pa.string()),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("looked_up_at", UTC_US, nullable=False),
    ]
)
"""`raw.stripe_charge_lookups`: what `GET /v1/charges/{id}` said of each id a ledger entry named
that the warehouse did not hold. `not_found` is the only proof of `missing_in_stripe`."""

STRIPE_LOOKUP_SCANS_SCHEMA = pa.schema(
    [
        pa.field("scanned_through", UTC_US, nullable=False),
        pa.field("read_from", UTC_US, nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("loaded_at", UTC_US, nullable=False),
    ]
)
"""`raw.stripe_lookup_scans`: every look-up run that ended well. Every row loaded after its
`read_from` and at or before its `scanned_through` (a `raw.load_log` instant) was read for ids
to look up, and each such id is now held or recorded in `raw.stripe_charge_lookups`, so a later
run reads only the rows loaded since (`recon_assets.stripe.lookup.LookupScan`)."""

STRIPE_EVENT_READS_SCHEMA = pa.schema(
    [
        pa.field("read_from", UTC_US, nullable=False),
        pa.field("read_until", UTC_US, nullable=False),
        pa.field("events", pa.int64(), nullable=False),
        pa.field("charges", pa.int64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("loaded_at", UTC_US, nullable=False),
    ]
)
"""`raw.stripe_event_reads`: every committed read of Stripe's charge events. The latest
`read_until` is the events cursor: every charge event created before it has been applied."""

LEDGER_DROPPED_REFS_SCHEMA = pa.schema(
    [
        pa.field("external_ref", pa.string(), nullable=False),
        pa.field("entry_id", pa.int64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("loaded_at", UTC_US, nullable=False),
    ]
)
"""`raw.ledger_dropped_refs`: charge ids a load took a `charge` entry away from (the entry was
re-pointed or vanished), so the marts rebuild those charges too."""


DATASET_SCHEMAS: dict[str, pa.Schema] = {
    "stripe_charges": STRIPE_CHARGES_SCHEMA,
    "stripe_refunds": STRIPE_REFUNDS_SCHEMA,
    "stripe_balance_transactions": STRIPE_BALANCE_TRANSACTIONS_SCHEMA,
    "stripe_payouts": STRIPE_PAYOUTS_SCHEMA,
    "stripe_payout_transactions": STRIPE_PAYOUT_TRANSACTIONS_SCHEMA,
    "stripe_disputes": STRIPE_DISPUTES_SCHEMA,
    "ledger_entries": LEDGER_ENTRIES_SCHEMA,
}
"""Each staged dataset's schema, by the dataset's (and its raw table's) name."""

BOOKKEEPING_SCHEMAS: dict[str, pa.Schema] = {
    "load_log": LOAD_LOG_SCHEMA,
    "stripe_charge_lookups": STRIPE_LOOKUPS_SCHEMA,
    "stripe_event_reads": STRIPE_EVENT_READS_SCHEMA,
    "stripe_lookup_scans": STRIPE_LOOKUP_SCANS_SCHEMA,
    "ledger_dropped_refs": LEDGER_DROPPED_REFS_SCHEMA,
}
"""The loaders' own raw tables, by name."""
