{#-
  What each paid payout carried: one row per (payout, balance transaction), the latest version
  synced (Stripe's GET /v1/balance_transactions?payout=po_...), the payout's own transaction
  included. For reading: rpt_payout_composition reads the raw versions of the payouts a
  build touches itself, never this view of every payout.
-#}
{%- set src = source('raw', 'stripe_payout_transactions') %}
select
    payout as payout_id,
    id as balance_transaction_id,
    {{ recon.utc_instant(src, 'created') }} as created_at,
    lower(type) as type,
    reporting_category,
    source as source_id,
    upper(currency) as currency,
    amount,
    fee,
    net,
    _partition_date as partition_date,
    {{ recon.utc_instant(src, '_synced_at') }} as synced_at
from {{ recon.latest_versions(src, 'payout, id', ['_synced_at', '_loaded_at']) }}
