{{ config(unique_key='payout_id') }}
{#-
  Each payout on its arrival date with what it carried (docs/design.md, "Payouts"): the
  charges, refunds, fees and disputes among the balance transactions Stripe lists for it
  (GET /v1/balance_transactions?payout=po_...), and whether the ledger booked it
  (fct_payout_reconciliation). Stripe's invariant: the `net` of what a payout carried (its own
  transaction aside) sums to its amount. Where a paid payout's does not, our pull of its
  transactions is incomplete: `is_complete` is false, and its day is preliminary, never final
  (rpt_reconciliation_days). A payout that is not paid (pending, in transit, failed) carries
  nothing to check. Incremental by payout: a build rebuilds the payouts it touches (a payout
  loaded or re-pulled since, or what it carried loaded since: int_recon__touched_charges), so a
  nightly reads a few dozen payouts' transactions instead of every one ever carried (a table
  rebuilt whole took 1.8 s at 540 days loaded and grew with the history).
-#}
-- depends_on: {{ ref('int_recon__touched_charges') }}
-- depends_on: {{ ref('int_stripe__payouts_in_build') }}
-- depends_on: {{ ref('stg_stripe__payouts') }}
{%- set src = source('raw', 'stripe_payout_transactions') %}
with transactions as (

    select
        payout as payout_id,
        lower(type) as type,
        reporting_category,
        amount,
        fee,
        net
    {# scoped by the touched payouts when incremental; a first build reads every one unscoped
       (an `in` over every id ever touched ran out of 256MB at 540 days) #}
    from {{ recon.latest_versions(src, 'payout, id', ['_synced_at', '_loaded_at'],
                                  "payout in (select charge_id from " ~ ref('int_recon__touched_charges') ~ ")"
                                  if is_incremental() else '') }}

),

carried as (

    select
        payout_id,
        count(*) as transactions,
        sum(case when type in ('charge', 'payment') then 1 else 0 end) as charges,
        sum(case when type in ('charge', 'payment') then amount else 0 end) as charges_amount,
        sum(case when type in ('refund', 'refund_failure') then 1 else 0 end) as refunds,
        sum(case when type in ('refund', 'refund_failure') then amount else 0 end) as refunds_amount,
        sum(fee) as fees_amount,
        sum(case when reporting_category in ('dispute', 'dispute_reversal') then 1 else 0 end) as disputes,
        sum(case when reporting_category in ('dispute', 'dispute_reversal') then amount else 0 end) as disputes_amount,
        sum(net) as carried_net
    from transactions
    where type not in ('payout', 'payout_failure', 'payout_cancel')
    group by payout_id

),

listed as (

    select distinct payout_id from transactions

)

select
    p.arrival_date as reporting_date,
    p.payout_id,
    p.currency,
    p.status as stripe_status,
    cast(p.amount as bigint) as amount,
    cast(coalesce(c.transactions, 0) as bigint) as transactions,
    cast(coalesce(c.charges, 0) as bigint) as charges,
    cast(coalesce(c.charges_amount, 0) as bigint) as charges_amount,
    cast(coalesce(c.refunds, 0) as bigint) as refunds,
    cast(coalesce(c.refunds_amount, 0) as bigint) as refunds_amount,
    cast(coalesce(c.fees_amount, 0) as bigint) as fees_amount,
    cast(coalesce(c.disputes, 0) as bigint) as disputes,
    cast(coalesce(c.disputes_amount, 0) as bigint) as disputes_amount,
    cast(coalesce(c.carried_net, 0) as bigint) as carried_net,
    cast(p.amount - coalesce(c.carried_net, 0) as bigint) as composition_difference,
    l.payout_id is not null as composition_loaded,
    p.status <> 'paid' or coalesce(c.carried_net, 0) = p.amount as is_complete,
    f.recon_status,
    f.ledger_amount,
    f.is_break
from {{ ref('int_stripe__payouts_in_build') if is_incremental() else ref('stg_stripe__payouts') }} as p
left join carried as c
    on c.payout_id = p.payout_id
left join listed as l
    on l.payout_id = p.payout_id
left join {{ ref('fct_payout_reconciliation') }} as f
    on f.recon_key = 'payout:' || p.payout_id
