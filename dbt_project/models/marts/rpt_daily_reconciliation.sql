{{ config(materialized='view') }}
{#-
  The ops report: per US-Eastern day, item type (`charge` | `refund` | `fee` | `dispute` | `payout`), currency and status, how
  many items and how much money (integer minor units; a side with no amount sums to 0; a refund's or
  a fee's Stripe amount is positive, its ledger amount negative when booked right), plus whether the
  day is final and why. `item_type` is the last column, so readers of the charge columns by
  position keep them.
  A view over the fact table: it changes in the same transaction as the facts, so the two can
  never disagree (the overflow test before the fact table guarantees the sums fit int64).
-#}
with facts as (

    select reporting_date, 'charge' as item_type, currency, recon_status, stripe_amount,
           ledger_amount
    from {{ ref('fct_charge_reconciliation') }}
    union all
    select reporting_date, 'refund' as item_type, currency, recon_status, stripe_amount,
           ledger_amount
    from {{ ref('fct_refund_reconciliation') }}
    union all
    select reporting_date, 'fee' as item_type, currency, recon_status, stripe_amount,
           ledger_amount
    from {{ ref('fct_fee_reconciliation') }}
    union all
    select reporting_date, 'payout' as item_type, currency, recon_status, stripe_amount,
           ledger_amount
    from {{ ref('fct_payout_reconciliation') }}
    union all
    select reporting_date, 'dispute' as item_type, currency, recon_status, stripe_amount,
           ledger_amount
    from {{ ref('fct_dispute_reconciliation') }}

)

select
    f.reporting_date,
    f.currency,
    f.recon_status,
    cast(count(*) as bigint) as item_count,
    cast(coalesce(sum(f.stripe_amount), 0) as bigint) as stripe_amount,
    cast(coalesce(sum(f.ledger_amount), 0) as bigint) as ledger_amount,
    {{ recon.is_break('f.recon_status') }} as is_break,
    d.day_status,
    d.day_status_reason,
    f.item_type
from facts as f
inner join {{ ref('rpt_reconciliation_days') }} as d
    on d.reporting_date = f.reporting_date
group by f.reporting_date, f.item_type, f.currency, f.recon_status, d.day_status, d.day_status_reason
