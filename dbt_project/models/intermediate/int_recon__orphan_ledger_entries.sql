{#-
  Ledger `charge` entries whose external_ref is no Stripe charge we hold, `refund` entries
  whose external_ref is no refund we hold and `payout` entries whose external_ref is no payout
  we hold (`item_type`), one row per entry,
  reported on the US-Eastern day the entry was posted. What they are depends on what Stripe said
  when the charge was looked up by id (stg_stripe__charge_lookups), never on what happens to be
  loaded:
    - 404: `missing_in_stripe`, a real break;
    - Stripe has it but it failed validation (quarantined): `unreadable_in_stripe`, a break of
      its own, never `missing_in_stripe`;
    - not looked up yet: `pending_stripe_lookup` (not a break; the day stays preliminary).
  An entry with no reference at all names nothing to look up: `missing_in_stripe` at once.
  A charge found by the look-up is staged and reconciled on its own day (int_recon__charges).
  Net of the ledger's corrections (int_ledger__net_entries_in_build): an entry its reversals
  cancel leaves no item at all; a partly reversed one counts by what is left, and lists its
  reversals after its own id.
-#}
select
    e.entry_type as item_type,
    e.posted_date_et as reporting_date,
    e.external_ref as item_id,
    e.external_ref as charge_id,
    case
        when e.reversal_ids is null then cast(e.entry_id as varchar)
        else cast(e.entry_id as varchar) || ',' || e.reversal_ids
    end as ledger_entry_ids,
    case
        when coalesce(e.external_ref, '') = '' then 'missing_in_stripe'
        when lk.lookup_result = 'not_found' then 'missing_in_stripe'
        when lk.lookup_result = 'quarantined' then 'unreadable_in_stripe'
        else 'pending_stripe_lookup'
    end as recon_status,
    e.currency,
    e.net_amount as ledger_amount,
    e.entry_id,
    e.posted_at as ledger_posted_at,
    e.loaded_at as ledger_loaded_at
from {{ ref('int_ledger__net_entries_in_build') }} as e
left join {{ ref('int_stripe__charges_in_build') }} as c
    on e.entry_type = 'charge'
    and c.charge_id = e.external_ref
left join {{ ref('int_stripe__refunds_in_build') }} as r
    on e.entry_type = 'refund'
    and r.refund_id = e.external_ref
left join {{ ref('int_stripe__payouts_in_build') }} as p
    on e.entry_type = 'payout'
    and p.payout_id = e.external_ref
left join {{ ref('stg_stripe__charge_lookups') }} as lk
    on lk.charge_id = e.external_ref
where not e.is_reversed_out
  and e.entry_type in ('charge', 'refund', 'payout')
  and c.charge_id is null
  and r.refund_id is null
  and p.payout_id is null
