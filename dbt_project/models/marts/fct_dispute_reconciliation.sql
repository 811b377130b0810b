{{ config(unique_key='recon_key', touched_column='dispute_id') }}
{#-
  One row per dispute movement (the withdrawal, and the reinstatement of a won dispute, each on
  the US-Eastern day of its balance transaction) and one per orphan ledger dispute entry (on the
  day it was posted): built as the refund fact is (key-based, incremental, delete+insert of
  every row of the ids a build touches, macros/delete_insert_touched.sql). `dispute_leg` says
  which movement; `stripe_amount` is what it took out of the balance (minus it for a
  reinstatement), `ledger_amount` the standing dispute entries of that movement, so
  `amount_diff` = ledger + stripe: 0 when the ledger booked the money as it moved.
-#}
-- depends_on: {{ ref('int_recon__touched_charges') }}
-- depends_on: {{ ref('stg_recon__load_log') }}
{{ recon.item_fact(ref('int_recon__dispute_items'), 'dispute_id', ['dispute_id', 'dispute_leg', 'balance_transaction_id', 'charge_id'], 'dispute_synced_at', ['dispute_created_at']) }}
