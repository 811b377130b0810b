{#-
  Every payout reconciliation item, a payout or an orphan ledger payout entry (one naming a
  payout we do not hold: looked up by id, as charges are), with every column of
  fct_payout_reconciliation before its int64 casts.
-#}
with payouts as (

    select
        reporting_date,
        payout_id,
        balance_transaction_id,
        ledger_entry_ids,
        recon_status,
        currency,
        stripe_amount,
        ledger_amount,
        payout_synced_at,
        'payout:' || payout_id as recon_key,
        payout_created_at,
        payout_arrival_at,
        stripe_status,
        ledger_currency,
        ledger_entry_count,
        ledger_posted_at,
        booking_deadline
    from {{ ref('int_recon__payouts') }}

),

orphans as (

    select
        reporting_date,
        item_id as payout_id,
        cast(null as varchar) as balance_transaction_id,
        ledger_entry_ids,
        recon_status,
        currency,
        cast(null as bigint) as stripe_amount,
        ledger_amount,
        cast(null as {{ recon.instant_type() }}) as payout_synced_at,
        'payout_entry:' || cast(entry_id as varchar) as recon_key,
        cast(null as {{ recon.instant_type() }}) as payout_created_at,
        cast(null as {{ recon.instant_type() }}) as payout_arrival_at,
        cast(null as varchar) as stripe_status,
        currency as ledger_currency,
        1 as ledger_entry_count,
        ledger_posted_at,
        cast(null as {{ recon.instant_type() }}) as booking_deadline
    from {{ ref('int_recon__orphan_ledger_entries') }}
    where item_type = 'payout'

)

select * from payouts
union all
select * from orphans
