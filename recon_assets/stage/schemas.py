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
