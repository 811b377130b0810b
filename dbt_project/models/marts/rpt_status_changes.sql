{{ config(materialized='view') }}
{#-
  Every change to a reconciliation item, with its before and after: one row per version that
  replaced another (or per version closed without a successor: the item went away, e.g. an
  orphan entry whose charge arrived). The report lists, for a day already signed off (its first
  final report), every change made to it afterwards.
-#}
{#- The history table is named in each place rather than in a `history` CTE: a CTE used several
    times is materialized whole by DuckDB (every column of every version), which took ~1 s of
    each read at 540 days loaded against ~0.1-0.25 s read in place (docs/benchmarks.md). -#}
{%- set history = ref('fct_reconciliation_history') %}
select
    a.reporting_date,
    a.recon_key,
    a.charge_id,
    a.currency,
    a.valid_from as changed_at,
    a.changed_by_run,
    b.recon_status as status_before,
    a.recon_status as status_after,
    b.is_break as was_break,
    a.is_break,
    b.stripe_status as stripe_status_before,
    a.stripe_status as stripe_status_after,
    b.stripe_amount as stripe_amount_before,
    a.stripe_amount as stripe_amount_after,
    b.stripe_amount_refunded as stripe_refunded_before,
    a.stripe_amount_refunded as stripe_refunded_after,
    b.stripe_disputed as stripe_disputed_before,
    a.stripe_disputed as stripe_disputed_after,
    b.ledger_entry_ids as ledger_entry_ids_before,
    a.ledger_entry_ids as ledger_entry_ids_after,
    b.ledger_amount as ledger_amount_before,
    a.ledger_amount as ledger_amount_after
from {{ history }} as a
inner join {{ history }} as b
    on b.recon_key = a.recon_key
    and b.valid_to = a.valid_from

union all

select
    b.reporting_date,
    b.recon_key,
    b.charge_id,
    b.currency,
    b.valid_to as changed_at,
    cast(null as varchar) as changed_by_run,
    b.recon_status as status_before,
    cast(null as varchar) as status_after,
    b.is_break as was_break,
    false as is_break,
    b.stripe_status as stripe_status_before,
    cast(null as varchar) as stripe_status_after,
    b.stripe_amount as stripe_amount_before,
    cast(null as bigint) as stripe_amount_after,
    b.stripe_amount_refunded as stripe_refunded_before,
    cast(null as bigint) as stripe_refunded_after,
    b.stripe_disputed as stripe_disputed_before,
    cast(null as boolean) as stripe_disputed_after,
    b.ledger_entry_ids as ledger_entry_ids_before,
    cast(null as varchar) as ledger_entry_ids_after,
    b.ledger_amount as ledger_amount_before,
    cast(null as bigint) as ledger_amount_after
from {{ history }} as b
where b.valid_to is not null
  and not exists (
      select 1 from {{ history }} as a where a.recon_key = b.recon_key and a.valid_from = b.valid_to
  )
