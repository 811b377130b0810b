{{ config(materialized='incremental', incremental_strategy='delete+insert',
          unique_key='recon_key', touched_column='ref_id', on_schema_change='append_new_columns',
          tmp_relation_type='transient') }}
{#-
  Every movement of money the balance tie-out weighs (docs/design.md, "The balance tie-out"),
  one row each, judged by the item it belongs to: a balance transaction's gross to its charge,
  refund, dispute movement or payout, its fee to the fee item of its source; a ledger entry of
  an item type to the item it names, a reversal to the item of the entry it cancels, on the day
  the reversal was posted. `reporting_date` is the item's own day (from its fact), `is_closed`
  says the item reconciles (`matched`, `not_booked`) with every transaction it names loaded,
  `is_awaiting` that a transaction it names is not loaded yet; a movement of no item
  (`has_item` false) is a transaction of a type or object recon holds no item for, or an orphan
  entry.

  Incremental, keyed by the raw id each movement is filed under (`ref_id`: a transaction's
  source, an entry's external_ref, '' for none): a build deletes and rebuilds the movements of
  exactly the ids it touches (int_recon__touched_charges, macros/delete_insert_touched.sql), from
  the build's own scoped reads, after the facts are rebuilt. rpt_balance_tieout then sums the
  days those movements fall on instead of every transaction and entry ever loaded (a table
  rebuilt whole took 11.5 s at 540 days loaded, and grew with the history).
-#}
-- depends_on: {{ ref('int_recon__tieout_days_before') }}
-- depends_on: {{ ref('stg_stripe__balance_transactions') }}
-- depends_on: {{ ref('stg_ledger__entries') }}
-- depends_on: {{ ref('stg_stripe__charges') }}
-- depends_on: {{ ref('stg_stripe__refunds') }}
-- depends_on: {{ ref('stg_stripe__payouts') }}
-- depends_on: {{ ref('int_stripe__balance_transactions_in_build') }}
-- depends_on: {{ ref('int_ledger__entries_in_build') }}
-- depends_on: {{ ref('int_ledger__reversals_in_build') }}
-- depends_on: {{ ref('int_stripe__charges_in_build') }}
-- depends_on: {{ ref('int_stripe__refunds_in_build') }}
-- depends_on: {{ ref('int_stripe__payouts_in_build') }}
{%- set item_types = "('charge', 'refund', 'fee', 'dispute', 'payout')" %}
{#- The build's scoped reads; a first build of this table (a new install, an upgrade, or
    --full-refresh) reads every record instead, so the table starts complete whatever the
    build touches. -#}
{%- set scoped = is_incremental() %}
{%- set in_build = {
    'txns': ref('int_stripe__balance_transactions_in_build') if scoped else ref('stg_stripe__balance_transactions'),
    'entries': ref('int_ledger__entries_in_build') if scoped else ref('stg_ledger__entries'),
    'charges': ref('int_stripe__charges_in_build') if scoped else ref('stg_stripe__charges'),
    'refunds': ref('int_stripe__refunds_in_build') if scoped else ref('stg_stripe__refunds'),
    'payouts': ref('int_stripe__payouts_in_build') if scoped else ref('stg_stripe__payouts'),
} %}
with txns as (

    select balance_transaction_id, source_id, type, created_date_et, currency, amount, fee,
           exchange_rate
    from {{ in_build['txns'] }}

),

entries as (

    select entry_id, entry_type, external_ref, currency, amount_minor, posted_date_et
    from {{ in_build['entries'] }}
    where entry_type in {{ item_types }}

),

reversals as (

    {%- if scoped %}
    select entry_id, reversal_of, posted_date_et, currency, amount_minor
    from {{ ref('int_ledger__reversals_in_build') }}
    {%- else %}
    select entry_id, reversal_of, posted_date_et, currency, amount_minor
    from {{ ref('stg_ledger__entries') }}
    where entry_type = 'reversal' and reversal_of is not null
    {%- endif %}

),

touched as (

    select charge_id from {{ ref('int_recon__touched_charges') }}

),

moves as (

    select
        'txn:' || balance_transaction_id as recon_key,
        coalesce(source_id, '') as ref_id,
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
        1 as is_transaction,
        exchange_rate is not null as is_converted
    from txns
    union all
    select 'fee:' || balance_transaction_id, coalesce(source_id, ''), 'fee', source_id,
           created_date_et, currency, -fee, 0, 1, 0, exchange_rate is not null
    from txns
    where fee <> 0
    union all
    select 'entry:' || cast(entry_id as varchar), coalesce(external_ref, ''), entry_type,
           {{ recon.ledger_item_id('entry_type', 'external_ref', 'amount_minor') }},
           posted_date_et, currency, 0, amount_minor, 0, 0, false
    from entries
    union all
    select 'entry:' || cast(r.entry_id as varchar), coalesce(t.external_ref, ''), t.entry_type,
           {{ recon.ledger_item_id('t.entry_type', 't.external_ref', 't.amount_minor') }},
           r.posted_date_et, r.currency, 0, r.amount_minor, 0, 0, false
    from reversals as r
    inner join entries as t
        on t.entry_id = r.reversal_of

),

{#- the items the facts hold for a Stripe object (orphan entries are not: they are open):
    (item type, fact, the item's id as movements name it, the fact's id column) -#}
{%- set facts = [
    ('charge', 'fct_charge_reconciliation', 'charge_id', 'charge_id'),
    ('refund', 'fct_refund_reconciliation', 'refund_id', 'refund_id'),
    ('fee', 'fct_fee_reconciliation', 'source_id', 'source_id'),
    ('payout', 'fct_payout_reconciliation', 'payout_id', 'payout_id'),
    ('dispute', 'fct_dispute_reconciliation', "dispute_id || '#' || dispute_leg", 'dispute_id'),
] %}
items as (
    {%- for item_type, fact, item_id, id_column in facts %}

    select '{{ item_type }}' as item_type, {{ item_id }} as item_id, reporting_date, recon_status
    from {{ ref(fact) }}
    where recon_key = '{{ item_type }}:' || {{ item_id }}
      {%- if scoped %}
      and {{ id_column }} in (select charge_id from touched)
      {%- endif %}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

{#- the transactions each object names, where the object says Stripe moved its money -#}
named_txns as (

    select 'charge' as item_type, charge_id as item_id, balance_transaction_id as txn_id
    from {{ in_build['charges'] }}
    where status = 'succeeded' and captured and balance_transaction_id is not null
    union all
    select 'refund', refund_id, balance_transaction_id
    from {{ in_build['refunds'] }}
    where balance_transaction_id is not null
    union all
    select 'refund', refund_id, failure_balance_transaction_id
    from {{ in_build['refunds'] }}
    where failure_balance_transaction_id is not null
    union all
    select 'payout', payout_id, balance_transaction_id
    from {{ in_build['payouts'] }}
    where balance_transaction_id is not null
    union all
    select 'payout', payout_id, failure_balance_transaction_id
    from {{ in_build['payouts'] }}
    where failure_balance_transaction_id is not null

),

{#- an item Stripe converted into another currency is never closed: its money is in two
    currencies, open (currency_conversion) until ops settle it -#}
converted as (

    select distinct item_type, item_id from moves where is_converted

),

awaiting as (

    select distinct n.item_type, n.item_id
    from named_txns as n
    left join txns as t
        on t.balance_transaction_id = n.txn_id
    where t.balance_transaction_id is null

)

select
    m.recon_key,
    m.ref_id,
    m.item_type,
    m.item_id,
    m.moved_on,
    m.currency,
    cast(m.stripe_amount as bigint) as stripe_amount,
    cast(m.ledger_amount as bigint) as ledger_amount,
    m.is_stripe,
    m.is_transaction,
    i.reporting_date,
    i.item_id is not null as has_item,
    i.item_id is not null
        and i.recon_status in ('matched', 'not_booked')
        and a.item_id is null
        and c.item_id is null as is_closed,
    a.item_id is not null as is_awaiting,
    {#- the build that wrote the row: int_recon__tieout_days finds this build's rows by it in the
        table's last row groups (zone maps) instead of scanning every row's ref_id; rows of a
        table built before the column existed hold NULL -#}
    {{ recon.build_instant() }} as written_at
from moves as m
left join items as i
    on i.item_type = m.item_type
    and i.item_id = m.item_id
left join awaiting as a
    on a.item_type = m.item_type
    and a.item_id = m.item_id
left join converted as c
    on c.item_type = m.item_type
    and c.item_id = m.item_id
