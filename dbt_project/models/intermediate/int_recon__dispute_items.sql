{#-
  Every dispute reconciliation item, a dispute movement (int_recon__disputes) or an orphan
  ledger `dispute` entry, with every column of fct_dispute_reconciliation before its int64
  casts. An orphan entry is one booking a movement we hold no transaction for, reported on the
  day the entry was posted:
    - a dispute we hold whose movement Stripe made but whose transaction's day is not loaded
      yet (the withdrawal, or the reinstatement of a dispute Stripe says is won):
      `pending_in_stripe`, never a break made by a gap;
    - a dispute we hold that has no such movement (a reinstatement booked for a dispute that is
      not won): `unexpected_ledger_entry`;
    - a dispute we do not hold: looked up by id as a charge entry's would be (404:
      `missing_in_stripe`; not yet: `pending_stripe_lookup`; quarantined: `unreadable_in_stripe`).
  Net of reversals: an entry its reversals cancel leaves no item.
-#}
with movements as (

    select
        reporting_date,
        dispute_id,
        dispute_leg,
        balance_transaction_id,
        charge_id,
        ledger_entry_ids,
        recon_status,
        currency,
        stripe_amount,
        ledger_amount,
        dispute_synced_at,
        'dispute:' || dispute_item_id as recon_key,
        dispute_created_at,
        stripe_status,
        ledger_currency,
        ledger_entry_count,
        ledger_posted_at,
        booking_deadline
    from {{ ref('int_recon__disputes') }}

),

entries as (

    select
        e.*,
        {{ recon.ledger_item_id('e.entry_type', 'e.external_ref', 'e.amount_minor') }} as item_id,
        case when e.amount_minor < 0 then 'withdrawal' else 'reinstatement' end as dispute_leg
    from {{ ref('int_ledger__net_entries_in_build') }} as e
    where e.entry_type = 'dispute'
      and not e.is_reversed_out

),

orphans as (

    select
        e.posted_date_et as reporting_date,
        e.external_ref as dispute_id,
        e.dispute_leg,
        cast(null as varchar) as balance_transaction_id,
        d.charge_id,
        {{ recon.orphan_entry_ids('e') }} as ledger_entry_ids,
        case
            when d.dispute_id is not null
                then case when e.dispute_leg = 'withdrawal' or d.status = 'won'
                          then 'pending_in_stripe' else 'unexpected_ledger_entry' end
            {{ recon.orphan_lookup_status('e.external_ref', 'lk') }}
        end as recon_status,
        e.currency,
        cast(null as bigint) as stripe_amount,
        e.net_amount as ledger_amount,
        cast(null as {{ recon.instant_type() }}) as dispute_synced_at,
        'dispute_entry:' || cast(e.entry_id as varchar) as recon_key,
        cast(null as {{ recon.instant_type() }}) as dispute_created_at,
        d.status as stripe_status,
        e.currency as ledger_currency,
        1 as ledger_entry_count,
        e.posted_at as ledger_posted_at,
        cast(null as {{ recon.instant_type() }}) as booking_deadline
    from entries as e
    left join {{ ref('int_recon__disputes') }} as m
        on m.dispute_item_id = e.item_id
    left join {{ ref('stg_stripe__disputes') }} as d
        on d.dispute_id = e.external_ref
    left join {{ ref('stg_stripe__charge_lookups') }} as lk
        on lk.charge_id = e.external_ref
    where m.dispute_item_id is null

)

select * from movements
union all
select * from orphans
