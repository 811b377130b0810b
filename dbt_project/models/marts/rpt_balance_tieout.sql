{{ config(unique_key='reporting_date', restated_days='int_recon__tieout_days') }}
{#-
  The daily tie-out of the Stripe balance (docs/design.md, "The balance tie-out"): one row per
  US-Eastern day whose balance transactions are loaded and currency. Stripe's side is how much
  the balance moved (the sum of the day's transactions' `net`); the ledger's side is the day's
  entries that move the same money (every `charge`, `refund`, `fee`, `dispute` and `payout` entry
  posted that day,
  and the reversals of such entries, posted that day). `difference` = ledger - Stripe, split in:
    - `explained_open`: the money of the day's open items (breaks and pending of every type, by
      what their ledger and Stripe sides differ), and of orphan entries;
    - `explained_timing`: money an item moved on another day than its own (a booking posted the
      day after its charge, a capture or a refund's failure on a later day);
    - `unexplained`: the rest. It is what items that reconcile (`matched`, `not_booked`) do not
      account for: a transaction that is no item of ours (a type recon does not read, an object
      never pulled), or a closed item whose transactions and ledger still differ. On a true
      ledger and a complete pull it is 0; anything else is an alert.
  An item whose Stripe money sits in a transaction not loaded yet (its charge names it, its day
  is not loaded) counts as open (`items_awaiting_transactions`), never as unexplained.
  Incremental by day: the movements are int_recon__balance_moves (each judged by its item),
  and a build restates exactly the days its movements fell on or belonged to
  (int_recon__tieout_days: every row of those days deleted, then written again), from the
  movements of those days alone. Rebuilt whole, it read every transaction and entry ever loaded
  (11.5 s of a nightly at 540 days loaded, growing with the history; docs/benchmarks.md).
-#}
{%- set days = ref('int_recon__tieout_days') %}
with judged as (

    select *
    from {{ ref('int_recon__balance_moves') }}
    {%- if is_incremental() %}
    where moved_on in (select reporting_date from {{ days }})
       or reporting_date in (select reporting_date from {{ days }})
    {%- endif %}

),

by_day as (

    select
        moved_on as reporting_date,
        currency,
        sum(stripe_amount) as stripe_net,
        sum(ledger_amount) as ledger_net,
        sum(is_transaction) as transactions,
        sum(1 - is_stripe) as ledger_entries
    from judged
    group by moved_on, currency

),

{#- open items by their own day: all of their money, whichever day it moved -#}
open_items as (

    select reporting_date, currency, sum(ledger_amount - stripe_amount) as amount,
           count(distinct case when is_awaiting then item_type || ':' || item_id end) as awaiting
    from judged
    where has_item and not is_closed
    group by reporting_date, currency

),

{#- closed items by their own day, and money of no item at all (a transaction of a type or
    an object recon holds no item for; an entry of no item is an orphan, which is open) -#}
rest as (

    select reporting_date, currency, sum(ledger_amount - stripe_amount) as amount
    from judged
    where is_closed
    group by reporting_date, currency
    union all
    select moved_on, currency, sum(ledger_amount - stripe_amount)
    from judged
    where not has_item and is_stripe = 1
    group by moved_on, currency

),

orphans as (

    select moved_on as reporting_date, currency, sum(ledger_amount) as amount
    from judged
    where not has_item and is_stripe = 0
    group by moved_on, currency

),

loaded_days as (

    select distinct partition_date as reporting_date
    from {{ ref('stg_recon__load_log') }}
    where dataset = 'stripe_balance_transactions'
      and load_kind = 'day'

),

keys as (

    select reporting_date, currency from by_day
    union
    select reporting_date, currency from open_items
    union
    select reporting_date, currency from rest
    union
    select reporting_date, currency from orphans

),

rest_by_day as (

    select reporting_date, currency, sum(amount) as amount
    from rest
    group by reporting_date, currency

)

select
    k.reporting_date,
    k.currency,
    cast(coalesce(b.stripe_net, 0) as bigint) as stripe_net,
    cast(coalesce(b.ledger_net, 0) as bigint) as ledger_net,
    cast(coalesce(b.ledger_net, 0) - coalesce(b.stripe_net, 0) as bigint) as difference,
    cast(coalesce(o.amount, 0) + coalesce(p.amount, 0) as bigint) as explained_open,
    cast(
        coalesce(b.ledger_net, 0) - coalesce(b.stripe_net, 0)
        - coalesce(o.amount, 0) - coalesce(p.amount, 0) - coalesce(r.amount, 0) as bigint
    ) as explained_timing,
    cast(
        coalesce(b.ledger_net, 0) - coalesce(b.stripe_net, 0) - coalesce(r.amount, 0) as bigint
    ) as explained,
    cast(coalesce(r.amount, 0) as bigint) as unexplained,
    cast(coalesce(b.transactions, 0) as bigint) as transactions,
    cast(coalesce(b.ledger_entries, 0) as bigint) as ledger_entries,
    cast(coalesce(o.awaiting, 0) as bigint) as items_awaiting_transactions
from keys as k
inner join loaded_days as d
    on d.reporting_date = k.reporting_date
{%- if is_incremental() %}
inner join {{ days }} as restated
    on restated.reporting_date = k.reporting_date
{%- endif %}
left join by_day as b
    on b.reporting_date = k.reporting_date
    and b.currency = k.currency
left join open_items as o
    on o.reporting_date = k.reporting_date
    and o.currency = k.currency
left join orphans as p
    on p.reporting_date = k.reporting_date
    and p.currency = k.currency
left join rest_by_day as r
    on r.reporting_date = k.reporting_date
    and r.currency = k.currency
