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
with entries as (

    -- Filtered before any join: the fee entries (as many as the charges) never reach one.
    select *
    from {{ ref('int_ledger__net_entries_in_build') }}
    where not is_reversed_out
      and entry_type in ('charge', 'refund', 'payout')

),

held as (

    -- One anti-join against every held id (by type) instead of one left join per type: three
    -- left joins on a 540-day first backfill (1.2 M entries) ran out of DuckDB's 256MB.
    select 'charge' as item_type, charge_id as item_id
    from {{ ref('int_stripe__charges_in_build') }}
    union all
    select 'refund' as item_type, refund_id as item_id
    from {{ ref('int_stripe__refunds_in_build') }}
    union all
    select 'payout' as item_type, payout_id as item_id
    from {{ ref('int_stripe__payouts_in_build') }}

)

select
    e.entry_type as item_type,
    e.posted_date_et as reporting_date,
    e.external_ref as item_id,
    e.external_ref as charge_id,
    {{ recon.orphan_entry_ids('e') }} as ledger_entry_ids,
    case
        {{ recon.orphan_lookup_status('e.external_ref', 'lk') }}
    end as recon_status,
    e.currency,
    e.net_amount as ledger_amount,
    e.entry_id,
    e.posted_at as ledger_posted_at,
    e.loaded_at as ledger_loaded_at
from entries as e
left join held as h
    on h.item_type = e.entry_type
    and h.item_id = e.external_ref
left join {{ ref('stg_stripe__charge_lookups') }} as lk
    on lk.charge_id = e.external_ref
where h.item_id is null
