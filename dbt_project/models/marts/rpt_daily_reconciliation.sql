{{ config(materialized='view') }}
{#-
  The ops report: per US-Eastern day, currency and status, how many items and how much money
  (integer minor units; a side with no amount sums to 0), plus whether the day is final and why.
  A view over the fact table: it changes in the same transaction as the facts, so the two can
  never disagree (the overflow test before the fact table guarantees the sums fit int64).
-#}
select
    f.reporting_date,
    f.currency,
    f.recon_status,
    cast(count(*) as bigint) as item_count,
    cast(coalesce(sum(f.stripe_amount), 0) as bigint) as stripe_amount,
    cast(coalesce(sum(f.ledger_amount), 0) as bigint) as ledger_amount,
    {{ recon.is_break('f.recon_status') }} as is_break,
    d.day_status,
    d.day_status_reason
from {{ ref('fct_charge_reconciliation') }} as f
inner join {{ ref('rpt_reconciliation_days') }} as d
    on d.reporting_date = f.reporting_date
group by f.reporting_date, f.currency, f.recon_status, d.day_status, d.day_status_reason
