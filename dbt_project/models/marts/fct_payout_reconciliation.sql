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
select
    i.reporting_date,
    i.payout_id,
    i.balance_transaction_id,
    i.ledger_entry_ids,
    i.recon_status,
    i.currency,
    cast(i.stripe_amount as bigint) as stripe_amount,
    cast(i.ledger_amount as bigint) as ledger_amount,
    cast(coalesce(i.ledger_amount, 0) + coalesce(i.stripe_amount, 0) as bigint) as amount_diff,
    i.payout_synced_at,
    i.recon_key,
    {{ recon.is_break('i.recon_status') }} as is_break,
    i.payout_created_at,
    i.payout_arrival_at,
    i.stripe_status,
    i.ledger_currency,
    cast(i.ledger_entry_count as bigint) as ledger_entry_count,
    i.ledger_posted_at,
    i.booking_deadline,
    {%- if is_incremental() %}
    t.loaded_through as raw_loaded_through
from {{ ref('int_recon__payout_items') }} as i
inner join {{ ref('int_recon__touched_charges') }} as t
    on t.charge_id = coalesce(i.payout_id, '')
    {%- else %}
    (select max(loaded_at) from {{ ref('stg_recon__load_log') }}) as raw_loaded_through
from {{ ref('int_recon__payout_items') }} as i
    {%- endif %}
