{{ config(materialized='table') }}
{#-
  A table built once per build, `days_open` as of that build: as a view each reader evaluated
  it again (its two tests and the report: 0.35 s each at 540 days loaded, since fees made 37 k
  items ever-broken), and the report is written right after the build.
-#}
{#-
  Every item that has ever been a break: when it was first seen as one, how long it has been (or
  was) open, whether it is still open, and if not, when and how it was resolved, read from the
  status history. "How": what changed between its last break version and the version after it
  (the ledger booked it late, the ledger was corrected, Stripe refunded or changed the charge),
  or `went_away` when the item no longer exists (an orphan entry whose charge arrived, an entry
  removed); an orphan entry that left because the ledger reversed it is `corrected_in_ledger`. Whether a break is new, still open or resolved *since the last report* is the
  report's to say: it knows when that was.
-#}
{#- Every read below is of `versions`, int_recon__break_versions: the versions of the items
    that were ever a break (~60 k of 2.7 M versions at 540 days loaded), kept up to date by what
    each build wrote. -#}
with versions as (

    select * from {{ ref('int_recon__break_versions') }}

),

break_versions as (

    select
        recon_key,
        min(valid_from) as first_seen,
        max(valid_from) as last_break_from
    from versions
    where is_break
    group by recon_key

),

last_break as (

    select h.*
    from versions as h
    inner join break_versions as b
        on b.recon_key = h.recon_key
        and b.last_break_from = h.valid_from

),

current_version as (

    select * from versions where valid_to is null

),

{#- Orphan entries the ledger reversed: such an item leaves the facts (nothing is left to
    match), which is the ledger's correction, not the item going away on its own. Few rows:
    reversals only. -#}
reversed_entries as (

    select distinct prefix || cast(reversal_of as varchar) as recon_key
    from {{ source('raw', 'ledger_entries') }}
    cross join (select 'ledger_entry:' as prefix union all select 'refund_entry:' as prefix
                union all select 'fee_entry:' as prefix
                union all select 'payout_entry:' as prefix
                union all select 'dispute_entry:' as prefix) as p
    where reversal_of is not null

)

select
    lb.recon_key,
    lb.charge_id,
    coalesce(cv.reporting_date, lb.reporting_date) as reporting_date,
    coalesce(cv.currency, lb.currency) as currency,
    bv.first_seen,
    lb.recon_status as last_break_status,
    cv.recon_status as current_status,
    coalesce(cv.is_break, false) as is_open,
    case when coalesce(cv.is_break, false) then null else lb.valid_to end as resolved_at,
    case
        when coalesce(cv.is_break, false) then null
        when nx.recon_key is null and lb.recon_key in (select recon_key from reversed_entries)
            then 'corrected_in_ledger'
        when nx.recon_key is null then 'went_away'
        when lb.ledger_entry_ids is null and nx.ledger_entry_ids is not null then 'booked_late'
        when coalesce(lb.ledger_entry_ids, '') <> coalesce(nx.ledger_entry_ids, '')
            or coalesce(lb.ledger_amount, -1) <> coalesce(nx.ledger_amount, -1)
            then 'corrected_in_ledger'
        when coalesce(lb.stripe_amount_refunded, 0) <> coalesce(nx.stripe_amount_refunded, 0)
            then 'refunded'
        when coalesce(lb.stripe_status, '') <> coalesce(nx.stripe_status, '')
            or coalesce(lb.stripe_amount, -1) <> coalesce(nx.stripe_amount, -1)
            or coalesce(cast(lb.stripe_captured as varchar), '') <> coalesce(cast(nx.stripe_captured as varchar), '')
            then 'changed_in_stripe'
        else 'rules_reevaluated'
    end as resolution,
    nx.changed_by_run as resolved_by_run,
    {{ recon.days_between('bv.first_seen', 'coalesce(case when coalesce(cv.is_break, false) then null else lb.valid_to end, ' ~ recon.now_instant() ~ ')') }} as days_open,
    coalesce(cv.stripe_amount, lb.stripe_amount) as stripe_amount,
    coalesce(cv.ledger_amount, lb.ledger_amount) as ledger_amount,
    coalesce(cv.amount_diff, lb.amount_diff) as amount_diff,
    coalesce(cv.ledger_entry_ids, lb.ledger_entry_ids) as ledger_entry_ids
from last_break as lb
inner join break_versions as bv
    on bv.recon_key = lb.recon_key
left join current_version as cv
    on cv.recon_key = lb.recon_key
left join versions as nx
    on nx.recon_key = lb.recon_key
    and nx.valid_from = lb.valid_to
