{#-
  The ops report: per US-Eastern day, currency and status, how many items and how much money
  (integer minor units; a side with no amount sums to 0). is_break marks every status except
  matched, not_booked and pending_*. Incremental on the same window as the fact table.
-#}
select
    reporting_date,
    currency,
    recon_status,
    cast(count(*) as bigint) as item_count,
    cast(coalesce(sum(stripe_amount), 0) as bigint) as stripe_amount,
    cast(coalesce(sum(ledger_amount), 0) as bigint) as ledger_amount,
    {{ recon.is_break('recon_status') }} as is_break
from {{ ref('fct_charge_reconciliation') }}
{{ recon.reporting_window_filter('reporting_date') }}
group by reporting_date, currency, recon_status
