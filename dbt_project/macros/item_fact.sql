{#-
  The select of an item's fact table (refunds, fees, payouts: each an item of its own, built the
  charges' way), one macro so the three never drift apart: key-based and incremental, every row
  of the ids a build touches deleted and re-inserted (macros/delete_insert_touched.sql), amounts
  cast to the marts' int64 once. `stripe_amount` is Stripe's amount (positive, as Stripe gives
  it); `ledger_amount` the standing entries' sum (negative when booked right: money out), so
  `amount_diff` = ledger + Stripe, 0 when the ledger booked minus it.
    items        the item model (int_recon__<type>_items), every column before the casts
    id_column    the item's own id, which the touched ids name
    ids          the columns after reporting_date: the id, then what it points at
    synced       the column of when Stripe's side was read
    created      the columns of Stripe's instants, after is_break
-#}
{% macro item_fact(items, id_column, ids, synced, created) -%}
select
    i.reporting_date,
    {%- for c in ids %}
    i.{{ c }},
    {%- endfor %}
    i.ledger_entry_ids,
    i.recon_status,
    i.currency,
    cast(i.stripe_amount as bigint) as stripe_amount,
    cast(i.ledger_amount as bigint) as ledger_amount,
    cast(coalesce(i.ledger_amount, 0) + coalesce(i.stripe_amount, 0) as bigint) as amount_diff,
    i.{{ synced }},
    i.recon_key,
    {{ recon.is_break('i.recon_status') }} as is_break,
    {%- for c in created %}
    i.{{ c }},
    {%- endfor %}
    i.stripe_status,
    i.ledger_currency,
    cast(i.ledger_entry_count as bigint) as ledger_entry_count,
    i.ledger_posted_at,
    i.booking_deadline,
    {%- if is_incremental() %}
    t.loaded_through as raw_loaded_through
from {{ items }} as i
inner join {{ ref('int_recon__touched_charges') }} as t
    on t.charge_id = coalesce(i.{{ id_column }}, '')
    {%- else %}
    (select max(loaded_at) from {{ ref('stg_recon__load_log') }}) as raw_loaded_through
from {{ items }} as i
    {%- endif %}
{%- endmacro %}
