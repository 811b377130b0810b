{{ config(materialized='table') }}
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
  A table rebuilt whole by every build, after the facts: it reads every balance transaction
  and entry (its cost grows with the history; docs/benchmarks.md), once per build, where a view
  was evaluated again by each reader (the days view, the daily view, the report), and the
  report's reads of a 30-day backfill ran out of 256MB.
-#}
{%- set item_types = "('charge', 'refund', 'fee', 'dispute', 'payout')" %}
with txns as (

    select balance_transaction_id, source_id, type, created_date_et, currency, amount, fee, net
    from {{ ref('stg_stripe__balance_transactions') }}

),

entries as (

    select entry_id, entry_type, external_ref, currency, amount_minor, posted_date_et, reversal_of
    from {{ ref('stg_ledger__entries') }}

),

{#- every movement of money, by the item it belongs to, on the day it moved: a transaction's
    gross to its charge, refund, dispute movement or payout, its fee to the fee item of its source; an entry to the item
    it names, a reversal to the item of the entry it cancels -#}
moves as (

    select
        case
            when type in ('charge', 'payment') then 'charge'
            when type in ('refund', 'refund_failure') then 'refund'
            when type in ('payout', 'payout_failure', 'payout_cancel') then 'payout'
            when substr(source_id, 1, 3) = 'dp_' then 'dispute'
            else type
        end as item_type,
        {#- a dispute's movement by its sign, as the ledger's dispute entries are -#}
        case
            when substr(source_id, 1, 3) = 'dp_'
                then {{ recon.ledger_item_id("'dispute'", 'source_id', 'amount') }}
            else source_id
        end as item_id,
        created_date_et as moved_on,
        currency,
        amount as stripe_amount,
        0 as ledger_amount,
        1 as is_stripe,
        1 as is_transaction
    from txns
    union all
    select 'fee', source_id, created_date_et, currency, -fee, 0, 1, 0
    from txns
    where fee <> 0
    union all
    select entry_type, {{ recon.ledger_item_id('entry_type', 'external_ref', 'amount_minor') }},
           posted_date_et, currency, 0, amount_minor, 0, 0
    from entries
    where entry_type in {{ item_types }}
    union all
    select t.entry_type,
           {{ recon.ledger_item_id('t.entry_type', 't.external_ref', 't.amount_minor') }},
           r.posted_date_et, r.currency, 0, r.amount_minor, 0, 0
    from entries as r
    inner join entries as t
        on t.entry_id = r.reversal_of
    where t.entry_type in {{ item_types }}

),

{#- the items the facts hold for a Stripe object (orphan entries are not: they are open) -#}
items as (

    select 'charge' as item_type, charge_id as item_id, reporting_date, recon_status
    from {{ ref('fct_charge_reconciliation') }}
    where recon_key = 'charge:' || charge_id
    union all
    select 'refund', refund_id, reporting_date, recon_status
    from {{ ref('fct_refund_reconciliation') }}
    where recon_key = 'refund:' || refund_id
    union all
    select 'fee', source_id, reporting_date, recon_status
    from {{ ref('fct_fee_reconciliation') }}
    where recon_key = 'fee:' || source_id
    union all
    select 'payout', payout_id, reporting_date, recon_status
    from {{ ref('fct_payout_reconciliation') }}
    where recon_key = 'payout:' || payout_id
    union all
    select 'dispute', dispute_id || '#' || dispute_leg, reporting_date, recon_status
    from {{ ref('fct_dispute_reconciliation') }}
    where recon_key = 'dispute:' || dispute_id || '#' || dispute_leg

),

{#- the transactions each object names, where the object says Stripe moved its money -#}
named_txns as (

    select 'charge' as item_type, charge_id as item_id, balance_transaction_id as txn_id
    from {{ ref('stg_stripe__charges') }}
    where status = 'succeeded' and captured and balance_transaction_id is not null
    union all
    select 'refund', refund_id, balance_transaction_id
    from {{ ref('stg_stripe__refunds') }}
    where balance_transaction_id is not null
    union all
    select 'refund', refund_id, failure_balance_transaction_id
    from {{ ref('stg_stripe__refunds') }}
    where failure_balance_transaction_id is not null
    union all
    select 'payout', payout_id, balance_transaction_id
    from {{ ref('stg_stripe__payouts') }}
    where balance_transaction_id is not null
    union all
    select 'payout', payout_id, failure_balance_transaction_id
    from {{ ref('stg_stripe__payouts') }}
    where failure_balance_transaction_id is not null

),

awaiting as (

    select distinct n.item_type, n.item_id
    from named_txns as n
    left join txns as t
        on t.balance_transaction_id = n.txn_id
    where t.balance_transaction_id is null

),

judged as (

    select
        m.*,
        i.reporting_date,
        i.item_id is not null as has_item,
        i.item_id is not null
            and i.recon_status in ('matched', 'not_booked')
            and a.item_id is null as is_closed,
        a.item_id is not null as is_awaiting
    from moves as m
    left join items as i
        on i.item_type = m.item_type
        and i.item_id = m.item_id
    left join awaiting as a
        on a.item_type = m.item_type
        and a.item_id = m.item_id

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
