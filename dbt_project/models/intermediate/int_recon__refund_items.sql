{#-
  Every refund reconciliation item, a refund or an orphan ledger refund entry (one naming a
  refund we do not hold: looked up by id, as charges are), with every column of
  fct_refund_reconciliation before its int64 casts.
-#}
with refunds as (

    select
        reporting_date,
        refund_id,
        charge_id,
        ledger_entry_ids,
        recon_status,
        currency,
        stripe_amount,
        ledger_amount,
        refund_synced_at,
        'refund:' || refund_id as recon_key,
        refund_created_at,
        stripe_status,
        ledger_currency,
        ledger_entry_count,
        ledger_posted_at,
        booking_deadline
    from {{ ref('int_recon__refunds') }}

),

orphans as (

    select
        reporting_date,
        item_id as refund_id,
        cast(null as varchar) as charge_id,
        ledger_entry_ids,
        recon_status,
        currency,
        cast(null as bigint) as stripe_amount,
        ledger_amount,
        cast(null as {{ recon.instant_type() }}) as refund_synced_at,
        'refund_entry:' || cast(entry_id as varchar) as recon_key,
        cast(null as {{ recon.instant_type() }}) as refund_created_at,
        cast(null as varchar) as stripe_status,
        currency as ledger_currency,
        1 as ledger_entry_count,
        ledger_posted_at,
        cast(null as {{ recon.instant_type() }}) as booking_deadline
    from {{ ref('int_recon__orphan_ledger_entries') }}
    where item_type = 'refund'

)

select * from refunds
union all
select * from orphans
