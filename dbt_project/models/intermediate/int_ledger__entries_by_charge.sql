{#-
  The ledger's view of each Stripe charge this build rebuilds: its `charge` entries (only that entry type takes part in
  reconciliation) grouped by external_ref. With exactly one entry, min = max, so
  ledger_currency / last_posted_at are that entry's; min <> max currency flags a mixed group.

  `ledger_entry_ids` lists the ids in order. The ordered string aggregate is the costly one: over
  a first build's 11.6 M entries (8 M charges) it took 29.5 s at 256MB on DuckDB, where the same
  grouping without it took 6.1. Nearly every charge has one entry, whose list is its id, so only
  charges with several entries go through it (7.4 s in all). It was also what ran out of the
  default 256MB in a first build of 8 M charges (in assert_amounts_fit_in_int64, the first reader
  of every item); the build now completes there (docs/benchmarks.md, "First builds").
  Neither the entries model nor `by_charge` is a CTE read twice: DuckDB materializes such a CTE
  whole, and `by_charge` materialized ran out of 256MB at 8 M charges.
-#}
with by_charge as (

    select
        external_ref as charge_id,
        count(*) as ledger_entry_count,
        min(entry_id) as first_entry_id,
        sum(amount_minor) as ledger_amount,
        min(currency) as ledger_currency,
        max(currency) as ledger_currency_max,
        min(posted_at) as first_posted_at,
        max(posted_at) as last_posted_at
    from {{ ref('int_ledger__entries_in_build') }}
    where entry_type = 'charge'
      and external_ref is not null
    group by external_ref

),

several as (

    select
        external_ref as charge_id,
        {{ recon.string_agg_ordered('cast(entry_id as varchar)', 'entry_id') }} as ledger_entry_ids
    from {{ ref('int_ledger__entries_in_build') }}
    where entry_type = 'charge'
      and external_ref in (
          select external_ref
          from {{ ref('int_ledger__entries_in_build') }}
          where entry_type = 'charge'
            and external_ref is not null
          group by external_ref
          having count(*) > 1
      )
    group by external_ref

)

select
    b.charge_id,
    b.ledger_entry_count,
    coalesce(s.ledger_entry_ids, cast(b.first_entry_id as varchar)) as ledger_entry_ids,
    b.ledger_amount,
    b.ledger_currency,
    b.ledger_currency_max,
    b.first_posted_at,
    b.last_posted_at
from by_charge as b
left join several as s
    on s.charge_id = b.charge_id
