{{ config(materialized='view') }}
{#-
  One row per US-Eastern reporting day: is it final, and if not, why. A view over the fact
  tables (charges, refunds, fees, disputes and payouts: a day is final only when all its items are) and the load log,
  so it can never disagree with them.
  Final = the Stripe day was loaded whole, the ledger is loaded without gaps from the day through
  its last booking deadline (the day's end + T), no item of the day is still pending
  (in Stripe, in the ledger, or awaiting a look-up by id), every paid payout arriving that day
  carried exactly its amount (rpt_payout_composition), and the day's Stripe balance ties
  out (rpt_balance_tieout: nothing unexplained). Anything else is preliminary, and
  `day_status_reason` says which of these is missing.
-#}
{%- set t = recon.tolerance_days() -%}
with facts as (

    select reporting_date, recon_status, is_break from {{ ref('fct_charge_reconciliation') }}
    union all
    select reporting_date, recon_status, is_break from {{ ref('fct_refund_reconciliation') }}
    union all
    select reporting_date, recon_status, is_break from {{ ref('fct_fee_reconciliation') }}
    union all
    select reporting_date, recon_status, is_break from {{ ref('fct_payout_reconciliation') }}
    union all
    select reporting_date, recon_status, is_break from {{ ref('fct_dispute_reconciliation') }}

),

items as (

    select
        reporting_date,
        count(*) as item_count,
        sum(case when is_break then 1 else 0 end) as break_count,
        sum(case when recon_status = 'pending_in_stripe' then 1 else 0 end) as pending_in_stripe,
        sum(case when recon_status = 'pending_in_ledger' then 1 else 0 end) as pending_in_ledger,
        sum(case when recon_status = 'pending_stripe_lookup' then 1 else 0 end) as pending_lookup
    from facts
    group by reporting_date

),

{#- A Stripe day is loaded when every Stripe object of it is (charges, refunds, balance
    transactions, the payouts arriving that day and what they carried). -#}
stripe_days as (

    select partition_date
    from {{ ref('stg_recon__load_log') }}
    where dataset in ('stripe_charges', 'stripe_refunds', 'stripe_balance_transactions',
                      'stripe_payouts', 'stripe_payout_transactions', 'stripe_disputes')
      and load_kind = 'day'
    group by partition_date
    having count(distinct dataset) = 6

),

{#- money the balance tie-out cannot explain: an alert, and the day is not final -#}
unexplained as (

    select reporting_date, count(*) as currencies
    from {{ ref('rpt_balance_tieout') }}
    where unexplained <> 0
    group by reporting_date

),

{#- paid payouts whose carried transactions do not sum to their amount: our pull of them is
    incomplete (Stripe's own invariant), so the day cannot be final -#}
incomplete_payouts as (

    select reporting_date, count(*) as payouts
    from {{ ref('rpt_payout_composition') }}
    where not is_complete
    group by reporting_date

),

judged as (

    select
        i.*,
        coalesce(u.currencies, 0) as unexplained_currencies,
        coalesce(ip.payouts, 0) as incomplete_payouts,
        s.partition_date is not null as stripe_day_loaded,
        cov.last_day as ledger_loaded_through,
        cov.covered_until is not null
            and cov.covered_until >= {{ recon.add_days(recon.et_day_start(recon.date_add_days('i.reporting_date', 1)), t) }}
            as ledger_complete,
        {{ recon.date_add_days('i.reporting_date', t) }} as ledger_needed_through
    from items as i
    left join stripe_days as s
        on s.partition_date = i.reporting_date
    left join unexplained as u
        on u.reporting_date = i.reporting_date
    left join incomplete_payouts as ip
        on ip.reporting_date = i.reporting_date
    left join {{ ref('int_recon__ledger_coverage') }} as cov
        on i.reporting_date >= cov.first_day
        and i.reporting_date < cov.end_day_exclusive

)

select
    reporting_date,
    case
        when stripe_day_loaded and ledger_complete
            and pending_in_stripe = 0 and pending_in_ledger = 0 and pending_lookup = 0
            and unexplained_currencies = 0 and incomplete_payouts = 0
            then 'final'
        else 'preliminary'
    end as day_status,
    rtrim(trim(
        case when stripe_day_loaded then '' else 'Stripe day not loaded; ' end
        || case
            when ledger_complete then ''
            when ledger_loaded_through is null then 'ledger day not loaded; '
            else 'ledger loaded through ' || cast(ledger_loaded_through as varchar)
                || ', bookings can arrive through ' || cast(ledger_needed_through as varchar) || '; '
        end
        || case when pending_in_stripe > 0
            then cast(pending_in_stripe as varchar) || ' pending in Stripe; ' else '' end
        || case when pending_in_ledger > 0
            then cast(pending_in_ledger as varchar) || ' pending in the ledger; ' else '' end
        || case when pending_lookup > 0
            then cast(pending_lookup as varchar) || ' awaiting a Stripe look-up; ' else '' end
        || case when unexplained_currencies > 0
            then 'the Stripe balance does not tie out (unexplained in '
                || cast(unexplained_currencies as varchar) || ' currencies); ' else '' end
        || case when incomplete_payouts > 0
            then cast(incomplete_payouts as varchar)
                || ' paid payouts whose transactions do not sum to their amount; ' else '' end
    ), ';') as day_status_reason,
    stripe_day_loaded,
    {#- everything final but the tie-out: such a day with money unexplained is the alert -#}
    stripe_day_loaded and ledger_complete
        and pending_in_stripe = 0 and pending_in_ledger = 0 and pending_lookup = 0
        and incomplete_payouts = 0
        as is_complete,
    ledger_loaded_through,
    ledger_complete,
    cast(item_count as bigint) as item_count,
    cast(break_count as bigint) as break_count
from judged
