{{ config(unique_key='recon_key', touched_column='source_id') }}
{#-
  One row per Stripe fee (per object Stripe took a fee on, on the US-Eastern day of its
  balance transaction) and one per orphan ledger fee entry (on the day it was posted): the fees'
  twin of fct_refund_reconciliation, built the same way (key-based, incremental, delete+insert of
  every row of the ids a build touches). `stripe_amount` is the fee (positive, as Stripe gives
  it); `ledger_amount` the standing fee entries' sum (negative when booked right), so
  `amount_diff` = ledger + stripe: 0 when the ledger booked minus the fee.
-#}
-- depends_on: {{ ref('int_recon__touched_charges') }}
-- depends_on: {{ ref('stg_recon__load_log') }}
{{ recon.item_fact(ref('int_recon__fee_items'), 'source_id', ['source_id', 'balance_transaction_id'], 'fee_synced_at', ['fee_created_at']) }}
