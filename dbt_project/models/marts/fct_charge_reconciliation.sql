{#-
  One row per Stripe charge created on reporting_date (US-Eastern) and one per orphan ledger charge
  entry (missing_in_stripe, on the ET day it was posted). Incremental by reporting_date: a run
  with the window vars rebuilds exactly those days (delete+insert over the whole window,
  macros/delete_insert_window.sql), so re-running any day or range gives the same rows.
  Amounts are integer minor units; amount_diff = ledger - stripe with missing sides as 0.
-#}
with charges as (

    select
        reporting_date,
        charge_id,
        ledger_entry_ids,
        recon_status,
        currency,
        cast(stripe_amount as bigint) as stripe_amount,
        cast(ledger_amount as bigint) as ledger_amount,
        charge_synced_at,
        'charge:' || charge_id as recon_key,
        charge_created_at,
        stripe_status,
        stripe_captured,
        cast(ledger_entry_count as bigint) as ledger_entry_count,
        ledger_posted_at,
        booking_deadline,
        recon_as_of
    from {{ ref('int_recon__charges') }}

),

orphans as (

    select
        reporting_date,
        charge_id,
        ledger_entry_ids,
        recon_status,
        currency,
        cast(null as bigint) as stripe_amount,
        cast(ledger_amount as bigint) as ledger_amount,
        cast(null as {{ recon.instant_type() }}) as charge_synced_at,
        'ledger_entry:' || cast(entry_id as varchar) as recon_key,
        cast(null as {{ recon.instant_type() }}) as charge_created_at,
        cast(null as varchar) as stripe_status,
        cast(null as boolean) as stripe_captured,
        cast(1 as bigint) as ledger_entry_count,
        ledger_posted_at,
        cast(null as {{ recon.instant_type() }}) as booking_deadline,
        cast(null as {{ recon.instant_type() }}) as recon_as_of
    from {{ ref('int_recon__orphan_ledger_entries') }}

),

unioned as (

    select * from charges
    union all
    select * from orphans

)

select
    reporting_date,
    charge_id,
    ledger_entry_ids,
    recon_status,
    currency,
    stripe_amount,
    ledger_amount,
    cast(coalesce(ledger_amount, 0) - coalesce(stripe_amount, 0) as bigint) as amount_diff,
    charge_synced_at,
    recon_key,
    {{ recon.is_break('recon_status') }} as is_break,
    charge_created_at,
    stripe_status,
    stripe_captured,
    ledger_entry_count,
    ledger_posted_at,
    booking_deadline,
    recon_as_of
from unioned
{{ recon.reporting_window_filter('reporting_date') }}
