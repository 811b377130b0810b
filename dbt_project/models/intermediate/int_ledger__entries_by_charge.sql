{#-
  The ledger's view of each Stripe charge this build rebuilds: its `charge` entries (only that entry type takes part in
  reconciliation) grouped by external_ref. With exactly one entry, min = max, so
  ledger_currency / last_posted_at are that entry's; min <> max currency flags a mixed group.
-#}
select
    external_ref as charge_id,
    count(*) as ledger_entry_count,
    {{ recon.string_agg_ordered('cast(entry_id as varchar)', 'entry_id') }} as ledger_entry_ids,
    sum(amount_minor) as ledger_amount,
    min(currency) as ledger_currency,
    max(currency) as ledger_currency_max,
    min(posted_at) as first_posted_at,
    max(posted_at) as last_posted_at
from {{ ref('int_ledger__entries_in_build') }}
where entry_type = 'charge'
  and external_ref is not null
group by external_ref
