{#-
  Every fee reconciliation item, a Stripe fee or an orphan ledger `fee` entry, with every column
  of fct_fee_reconciliation before its int64 casts. An orphan fee entry is one naming an object
  that has no fee in the warehouse, reported on the day the entry was posted:
    - a charge we hold that is settled and names a balance transaction we do not hold (its
      capture fell on a day never loaded): that transaction is looked up by id (404:
      `missing_in_stripe`; not yet: `pending_stripe_lookup`), never a break made by a gap;
    - a charge or refund we hold on which Stripe took no fee: `unexpected_ledger_entry`;
    - an object we do not hold: looked up by id as a charge or refund entry's would be (404:
      `missing_in_stripe`; not yet: `pending_stripe_lookup`; quarantined: `unreadable_in_stripe`).
  Net of reversals: an entry its reversals cancel leaves no item.
-#}
with fees as (

    select
        reporting_date,
        source_id,
        balance_transaction_id,
        ledger_entry_ids,
        recon_status,
        currency,
        stripe_amount,
        ledger_amount,
        fee_synced_at,
        'fee:' || source_id as recon_key,
        fee_created_at,
        stripe_status,
        ledger_currency,
        ledger_entry_count,
        ledger_posted_at,
        booking_deadline
    from {{ ref('int_recon__fees') }}

),

orphans as (

    select
        e.posted_date_et as reporting_date,
        e.external_ref as source_id,
        cast(null as varchar) as balance_transaction_id,
        {{ recon.orphan_entry_ids('e') }} as ledger_entry_ids,
        case
            when awaited.balance_transaction_id is not null
                then case when tl.lookup_result = 'not_found' then 'missing_in_stripe'
                          else 'pending_stripe_lookup' end
            when c.charge_id is not null or r.refund_id is not null then 'unexpected_ledger_entry'
            {{ recon.orphan_lookup_status('e.external_ref', 'lk') }}
        end as recon_status,
        e.currency,
        cast(null as bigint) as stripe_amount,
        e.net_amount as ledger_amount,
        cast(null as {{ recon.instant_type() }}) as fee_synced_at,
        'fee_entry:' || cast(e.entry_id as varchar) as recon_key,
        cast(null as {{ recon.instant_type() }}) as fee_created_at,
        cast(null as varchar) as stripe_status,
        e.currency as ledger_currency,
        1 as ledger_entry_count,
        e.posted_at as ledger_posted_at,
        cast(null as {{ recon.instant_type() }}) as booking_deadline
    from {{ ref('int_ledger__net_entries_in_build') }} as e
    left join {{ ref('int_recon__fees') }} as f
        on f.source_id = e.external_ref
    left join {{ ref('int_stripe__charges_in_build') }} as c
        on c.charge_id = e.external_ref
    left join {{ ref('int_stripe__refunds_in_build') }} as r
        on r.refund_id = e.external_ref
    left join {{ ref('stg_stripe__charge_lookups') }} as lk
        on lk.charge_id = e.external_ref
    -- a settled charge's transaction not loaded: the fee cannot be judged before it is
    left join (
        select ch.charge_id, ch.balance_transaction_id
        from {{ ref('int_stripe__charges_in_build') }} as ch
        where ch.status = 'succeeded' and ch.captured
          and ch.balance_transaction_id is not null
          and ch.balance_transaction_id not in (
              select balance_transaction_id
              from {{ ref('int_stripe__balance_transactions_in_build') }}
          )
    ) as awaited
        on awaited.charge_id = e.external_ref
    left join {{ ref('stg_stripe__charge_lookups') }} as tl
        on tl.charge_id = awaited.balance_transaction_id
    where e.entry_type = 'fee'
      and not e.is_reversed_out
      and f.source_id is null

)

select * from fees
union all
select * from orphans
