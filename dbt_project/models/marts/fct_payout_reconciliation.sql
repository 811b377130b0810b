{{ config(unique_key='recon_key', touched_column='payout_id') }}
{#-
  One row per Stripe payout (on its arrival date) and one per orphan ledger payout entry (on the
  day it was posted): built as the refund fact is (key-based, incremental, delete+insert of every
  row of the ids a build touches, macros/delete_insert_touched.sql). `stripe_amount` is the
  payout's amount (positive, as Stripe gives it); `ledger_amount` the standing payout entries'
  sum (negative when booked right), so `amount_diff` = ledger + stripe: 0 when the ledger booked
  minus the payout.
-#}
-- depends_on: {{ ref('int_recon__touched_charges') }}
-- depends_on: {{ ref('stg_recon__load_log') }}
{{ recon.item_fact(ref('int_recon__payout_items'), 'payout_id', ['payout_id', 'balance_transaction_id'], 'payout_synced_at', ['payout_created_at', 'payout_arrival_at']) }}
