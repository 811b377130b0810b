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
select
    i.reporting_date,
    i.refund_id,
    i.charge_id,
    i.ledger_entry_ids,
    i.recon_status,
    i.currency,
    cast(i.stripe_amount as bigint) as stripe_amount,
    cast(i.ledger_amount as bigint) as ledger_amount,
    cast(coalesce(i.ledger_amount, 0) + coalesce(i.stripe_amount, 0) as bigint) as amount_diff,
    i.refund_synced_at,
    i.recon_key,
    {{ recon.is_break('i.recon_status') }} as is_break,
    i.refund_created_at,
    i.stripe_status,
    i.ledger_currency,
    cast(i.ledger_entry_count as bigint) as ledger_entry_count,
    i.ledger_posted_at,
    i.booking_deadline,
    {%- if is_incremental() %}
    t.loaded_through as raw_loaded_through
from {{ ref('int_recon__refund_items') }} as i
inner join {{ ref('int_recon__touched_charges') }} as t
    on t.charge_id = coalesce(i.refund_id, '')
    {%- else %}
    (select max(loaded_at) from {{ ref('stg_recon__load_log') }}) as raw_loaded_through
from {{ ref('int_recon__refund_items') }} as i
    {%- endif %}
