{{ config(unique_key='recon_key') }}
{#-
  One row per Stripe charge (on the US-Eastern day it was created) and one per orphan ledger
  charge entry (on the day it was posted). A function of the raw data alone, never of which days
  were loaded or in what order: an incremental build replaces the rows of exactly the charge ids
  the run touches (int_recon__touched_charges; macros/delete_insert_touched.sql deletes every row
  of those ids, charge and orphan alike, in the same transaction as the insert), so a charge
  whose ledger entry arrives weeks later is rebuilt on its own day, and an orphan whose charge
  appears goes away. Amounts are int64 minor units; amount_diff = ledger - stripe, missing sides
  as 0. `raw_loaded_through` is the load log's latest instant this row's build had seen. The
  "as of" a status was judged against is deliberately not a column: it grows with every ledger
  day loaded, and a row that does not change must not depend on when it was last rebuilt (the
  day's ledger coverage is in rpt_reconciliation_days, which is always current).
-#}
-- depends_on: {{ ref('int_recon__touched_charges') }}
-- depends_on: {{ ref('stg_recon__load_log') }}
select
    i.reporting_date,
    i.charge_id,
    i.ledger_entry_ids,
    i.recon_status,
    i.currency,
    cast(i.stripe_amount as bigint) as stripe_amount,
    cast(i.ledger_amount as bigint) as ledger_amount,
    cast(coalesce(i.ledger_amount, 0) - coalesce(i.stripe_amount, 0) as bigint) as amount_diff,
    i.charge_synced_at,
    i.recon_key,
    {{ recon.is_break('i.recon_status') }} as is_break,
    i.charge_created_at,
    i.stripe_status,
    i.stripe_captured,
    cast(i.stripe_amount_refunded as bigint) as stripe_amount_refunded,
    i.stripe_disputed,
    i.customer_id,
    i.ledger_currency,
    cast(i.ledger_entry_count as bigint) as ledger_entry_count,
    i.ledger_posted_at,
    i.booking_deadline,
    {%- if is_incremental() %}
    t.loaded_through as raw_loaded_through
from {{ ref('int_recon__items') }} as i
inner join {{ ref('int_recon__touched_charges') }} as t
    on t.charge_id = coalesce(i.charge_id, '')
    {%- else %}
    {#- a first build or a full refresh: every item, as of every load so far -#}
    (select max(loaded_at) from {{ ref('stg_recon__load_log') }}) as raw_loaded_through
from {{ ref('int_recon__items') }} as i
    {%- endif %}
