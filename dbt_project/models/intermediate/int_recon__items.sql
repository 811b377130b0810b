{#-
  Every reconciliation item, charge or orphan entry, with every column of the fact table, before
  any cast to the marts' int64 amounts: the overflow test (tests/assert_amounts_fit_in_int64.sql)
  reads this view, so an amount that cannot be stored stops the build before the fact table (and
  the report views over it) changes at all.
-#}
with charges as (

    select
        reporting_date,
        charge_id,
        ledger_entry_ids,
        recon_status,
        currency,
        stripe_amount,
        ledger_amount,
        charge_synced_at,
        'charge:' || charge_id as recon_key,
        charge_created_at,
        stripe_status,
        stripe_captured,
        stripe_amount_refunded,
        stripe_disputed,
        customer_id,
        ledger_currency,
        ledger_entry_count,
        ledger_posted_at,
        booking_deadline
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
        ledger_amount,
        cast(null as {{ recon.instant_type() }}) as charge_synced_at,
        'ledger_entry:' || cast(entry_id as varchar) as recon_key,
        cast(null as {{ recon.instant_type() }}) as charge_created_at,
        cast(null as varchar) as stripe_status,
        cast(null as boolean) as stripe_captured,
        cast(null as bigint) as stripe_amount_refunded,
        cast(null as boolean) as stripe_disputed,
        cast(null as varchar) as customer_id,
        currency as ledger_currency,
        1 as ledger_entry_count,
        ledger_posted_at,
        cast(null as {{ recon.instant_type() }}) as booking_deadline
    from {{ ref('int_recon__orphan_ledger_entries') }}
    where item_type = 'charge'

)

select * from charges
union all
select * from orphans
