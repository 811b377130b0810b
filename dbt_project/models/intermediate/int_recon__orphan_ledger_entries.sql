{#-
  Ledger `charge` entries whose external_ref is no Stripe charge we hold (or is empty):
  `missing_in_stripe`, one row per entry, reported on the US-Eastern day it was posted.
-#}
select
    e.posted_date_et as reporting_date,
    e.external_ref as charge_id,
    cast(e.entry_id as varchar) as ledger_entry_ids,
    'missing_in_stripe' as recon_status,
    e.currency,
    cast(null as bigint) as stripe_amount,
    e.amount_minor as ledger_amount,
    e.entry_id,
    e.posted_at as ledger_posted_at
from {{ ref('stg_ledger__entries') }} as e
left join {{ ref('stg_stripe__charges') }} as c
    on c.charge_id = e.external_ref
where e.entry_type = 'charge'
  and c.charge_id is null
