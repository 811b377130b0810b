{#-
  The ledger's view of each item this build rebuilds: a Stripe charge's `charge` entries, a
  refund's `refund` entries, grouped by (entry type, external_ref) as (`item_type`, `item_id`)
  (a `dispute` entry by the movement it books: macros/item_ledger_side.sql, `ledger_item_id`),
  net of the ledger's corrections (int_ledger__net_entries_in_build). Charges and refunds are
  rows of the same rules (macros/item_status.sql). An entry
  whose reversals cancel it drops out: `ledger_entry_count`, `ledger_amount` and the currencies
  are of the entries that still stand (a partly reversed entry counts by what is left), while
  `first_posted_at` is the item's first booking, reversed or not: timeliness is judged by it,
  so a later correction does not make a booking late. With exactly one standing entry, min = max
  currency; min <> max flags a mixed group. `reversal_count` says the ledger corrected the item.

  `ledger_entry_ids` lists every entry of the item ascending, its reversals included. The
  ordered string aggregate is the costly one: over a first build's 11.6 M entries (8 M charges)
  it took 29.5 s at 256MB on DuckDB, where the same grouping without it took 6.1. Nearly every
  charge has one entry and no correction, whose list is its id, so only the others go through it
  (7.4 s in all). It was also what ran out of the default 256MB in a first build of 8 M charges
  (in assert_amounts_fit_in_int64, the first reader of every item); the build now completes
  there (docs/benchmarks.md, "First builds"). Neither the entries nor `by_item` is a CTE
  read twice: DuckDB materializes such a CTE whole, and it materialized ran out of 256MB at
  8 M charges.
-#}
{%- set entries = ref('int_ledger__net_entries_in_build') %}
{%- set item_id = recon.ledger_item_id('entry_type', 'external_ref', 'amount_minor') %}
{#- grouped by the id and a short movement suffix, never by the concatenated key: the hash of
    a first build's 2.5 M entries keeps the id column as it is (the key is made after) -#}
{%- set leg = "case when entry_type = 'dispute' then case when amount_minor < 0 then '#withdrawal' else '#reinstatement' end else '' end" %}
with by_item as (

    select
        entry_type as item_type,
        external_ref || {{ leg }} as item_id,
        count(case when not is_reversed_out then 1 end) as ledger_entry_count,
        min(entry_id) as first_entry_id,
        sum(case when not is_reversed_out then net_amount end) as ledger_amount,
        min(case when not is_reversed_out then currency end) as ledger_currency,
        max(case when not is_reversed_out then currency end) as ledger_currency_max,
        min(posted_at) as first_posted_at,
        max(case when not is_reversed_out then posted_at end) as last_posted_at,
        sum(reversal_count) as reversal_count
    from {{ entries }}
    where external_ref is not null
    group by entry_type, external_ref, {{ leg }}

),

several as (

    select
        item_type,
        item_id,
        {{ recon.string_agg_ordered('cast(id as varchar)', 'id') }} as ledger_entry_ids
    from (
        select e.entry_type as item_type, {{ item_id }} as item_id, e.entry_id as id
        from {{ entries }} as e
        where e.external_ref is not null
          and e.entry_type || ':' || {{ item_id }} in (
              select entry_type || ':' || {{ item_id }}
              from {{ entries }}
              where external_ref is not null
              group by entry_type, {{ item_id }}
              having count(*) > 1 or sum(reversal_count) > 0
          )
        union all
        select e.entry_type as item_type,
               {{ recon.ledger_item_id('e.entry_type', 'e.external_ref', 'e.amount_minor') }} as item_id,
               r.entry_id as id
        from {{ ref('int_ledger__reversals_in_build') }} as r
        inner join {{ ref('int_ledger__entries_in_build') }} as e
            on e.entry_id = r.reversal_of
        where e.external_ref is not null
    ) as ids
    group by item_type, item_id

)

select
    b.item_type,
    b.item_id,
    b.ledger_entry_count,
    coalesce(s.ledger_entry_ids, cast(b.first_entry_id as varchar)) as ledger_entry_ids,
    case when b.ledger_entry_count > 0 then b.ledger_amount end as ledger_amount,
    b.ledger_currency,
    b.ledger_currency_max,
    b.first_posted_at,
    b.last_posted_at,
    b.reversal_count
from by_item as b
left join several as s
    on s.item_type = b.item_type
    and s.item_id = b.item_id
