{{ config(materialized='view') }}
{#-
  Each entry of int_ledger__entries_in_build net of its reversals (docs/design.md, "Corrections"):
  `net_amount` = its amount plus the amounts of the reversals that cancel it. A pair that nets to
  zero (`is_reversed_out`) drops out of matching; a reversal of another amount counts by its
  amount, so the pair stands for what is left. `reversal_ids` lists the reversals (ascending),
  so an item's entry list shows the correction ops made. A view: the reversals are few, and
  the two readers (by charge, orphans) each filter it first.
-#}
with reversals as (

    select
        reversal_of as entry_id,
        count(*) as reversal_count,
        sum(amount_minor) as reversed_amount,
        {{ recon.string_agg_ordered('cast(entry_id as varchar)', 'entry_id') }} as reversal_ids
    from {{ ref('int_ledger__reversals_in_build') }}
    group by reversal_of

)

select
    e.*,
    e.amount_minor + coalesce(r.reversed_amount, 0) as net_amount,
    coalesce(r.reversal_count, 0) as reversal_count,
    r.reversal_ids,
    coalesce(r.reversal_count, 0) > 0
        and e.amount_minor + coalesce(r.reversed_amount, 0) = 0 as is_reversed_out
from {{ ref('int_ledger__entries_in_build') }} as e
left join reversals as r
    on r.entry_id = e.entry_id
