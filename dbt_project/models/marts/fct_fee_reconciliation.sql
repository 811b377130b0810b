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
select
    i.reporting_date,
    i.source_id,
    i.balance_transaction_id,
    i.ledger_entry_ids,
    i.recon_status,
    i.currency,
    cast(i.stripe_amount as bigint) as stripe_amount,
    cast(i.ledger_amount as bigint) as ledger_amount,
    cast(coalesce(i.ledger_amount, 0) + coalesce(i.stripe_amount, 0) as bigint) as amount_diff,
    i.fee_synced_at,
    i.recon_key,
    {{ recon.is_break('i.recon_status') }} as is_break,
    i.fee_created_at,
    i.stripe_status,
    i.ledger_currency,
    cast(i.ledger_entry_count as bigint) as ledger_entry_count,
    i.ledger_posted_at,
    i.booking_deadline,
    {%- if is_incremental() %}
    t.loaded_through as raw_loaded_through
from {{ ref('int_recon__fee_items') }} as i
inner join {{ ref('int_recon__touched_charges') }} as t
    on t.charge_id = coalesce(i.source_id, '')
    {%- else %}
    (select max(loaded_at) from {{ ref('stg_recon__load_log') }}) as raw_loaded_through
from {{ ref('int_recon__fee_items') }} as i
    {%- endif %}
