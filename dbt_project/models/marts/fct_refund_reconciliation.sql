{{ config(unique_key='recon_key', touched_column='refund_id') }}
{#-
  One row per Stripe refund (on the US-Eastern day it was created) and one per orphan ledger
  refund entry (on the day it was posted): the refunds' twin of fct_charge_reconciliation, built
  the same way (key-based, incremental, delete+insert of every row of the ids a build touches,
  macros/delete_insert_touched.sql). `stripe_amount` is the refund's amount (positive, as Stripe
  gives it); `ledger_amount` the standing refund entries' sum (negative when booked right), so
  `amount_diff` = ledger + stripe: 0 when the ledger booked minus the refund.
-#}
-- depends_on: {{ ref('int_recon__touched_charges') }}
-- depends_on: {{ ref('stg_recon__load_log') }}
{{ recon.item_fact(ref('int_recon__refund_items'), 'refund_id', ['refund_id', 'charge_id'], 'refund_synced_at', ['refund_created_at']) }}
