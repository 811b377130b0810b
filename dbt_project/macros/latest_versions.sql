{#-
  The latest synced version of each raw record, optionally only for the charge ids a build
  rebuilds.

  Raw tables can hold several versions of a record (a day re-pulled, a charge reloaded by id from
  an event, a ledger entry edited): a whole-day reload deletes only rows synced up to its own
  snapshot, so a newer version loaded by id survives it. The staging views call these macros
  without a scope (every record: ad-hoc reading, documentation); the build's own models
  (int_stripe__charges_in_build, int_ledger__entries_in_build) pass the touched charge ids, so a
  nightly ranks the versions of a few thousand records, not of every charge ever loaded.

  Which version is the latest is `latest_versions`' to say (one dispatch per adapter): on DuckDB
  a hash aggregate picks each record's row, on Snowflake a window ranks them.
-#}

{% macro stripe_charges_latest(charge_ids=none) -%}
{%- set src = source('raw', 'stripe_charges') -%}
{%- set scope %}
    {%- if charge_ids is not none %}id in (select charge_id from {{ charge_ids }}){% endif %}
{%- endset %}
with latest as (

    select
        id as charge_id,
        {{ recon.utc_instant(src, 'created') }} as created_at,
        lower(status) as status,
        captured,
        paid,
        refunded,
        disputed,
        livemode,
        upper(currency) as currency,
        amount,
        amount_captured,
        amount_refunded,
        balance_transaction as balance_transaction_id,
        customer as customer_id,
        payment_intent as payment_intent_id,
        failure_code,
        failure_message,
        outcome_type,
        description,
        metadata,
        _partition_date as partition_date,
        {{ recon.utc_instant(src, '_synced_at') }} as synced_at,
        _run_id as run_id,
        {{ recon.utc_instant(src, '_loaded_at') }} as loaded_at
    {#- every version of an id or none of them: the scope is on the ranking's key #}
    from {{ recon.latest_versions(src, 'id', ['_synced_at', '_loaded_at', '_partition_date'], scope) }}

)

select
    charge_id,
    created_at,
    {{ recon.et_date('created_at') }} as created_date_et,
    status,
    captured,
    paid,
    refunded,
    disputed,
    livemode,
    currency,
    amount,
    amount_captured,
    amount_refunded,
    balance_transaction_id,
    customer_id,
    payment_intent_id,
    failure_code,
    failure_message,
    outcome_type,
    description,
    metadata,
    partition_date,
    synced_at,
    run_id,
    loaded_at
from latest
{%- endmacro %}


{% macro stripe_refunds_latest(refund_ids=none) -%}
{%- set src = source('raw', 'stripe_refunds') -%}
{%- set scope %}
    {%- if refund_ids is not none %}id in (select charge_id from {{ refund_ids }}){% endif %}
{%- endset %}
with latest as (

    select
        id as refund_id,
        {{ recon.utc_instant(src, 'created') }} as created_at,
        lower(status) as status,
        charge as charge_id,
        payment_intent as payment_intent_id,
        upper(currency) as currency,
        amount,
        balance_transaction as balance_transaction_id,
        failure_balance_transaction as failure_balance_transaction_id,
        failure_reason,
        reason,
        metadata,
        _partition_date as partition_date,
        {{ recon.utc_instant(src, '_synced_at') }} as synced_at,
        _run_id as run_id,
        {{ recon.utc_instant(src, '_loaded_at') }} as loaded_at
    from {{ recon.latest_versions(src, 'id', ['_synced_at', '_loaded_at', '_partition_date'], scope) }}

)

select
    refund_id,
    created_at,
    {{ recon.et_date('created_at') }} as created_date_et,
    status,
    charge_id,
    payment_intent_id,
    currency,
    amount,
    balance_transaction_id,
    failure_balance_transaction_id,
    failure_reason,
    reason,
    metadata,
    partition_date,
    synced_at,
    run_id,
    loaded_at
from latest
{%- endmacro %}


{% macro stripe_balance_transactions_latest(source_ids=none) -%}
{%- set src = source('raw', 'stripe_balance_transactions') -%}
{#- With `source_ids` (a relation with a `charge_id` column: the touched item ids), only the
    transactions of those sources: a fee item is keyed by the object its fee was taken on. -#}
{%- set scope %}
    {#- a transaction of no source is keyed '' (as an entry naming nothing is): the tie-out's #}
    {%- if source_ids is not none %}coalesce(source, '') in (select charge_id from {{ source_ids }}){% endif %}
{%- endset %}
with latest as (

    select
        id as balance_transaction_id,
        {{ recon.utc_instant(src, 'created') }} as created_at,
        {{ recon.utc_instant(src, 'available_on') }} as available_on,
        lower(status) as status,
        lower(type) as type,
        reporting_category,
        source as source_id,
        upper(currency) as currency,
        amount,
        fee,
        net,
        exchange_rate,
        description,
        _partition_date as partition_date,
        {{ recon.utc_instant(src, '_synced_at') }} as synced_at,
        _run_id as run_id,
        {{ recon.utc_instant(src, '_loaded_at') }} as loaded_at
    from {{ recon.latest_versions(src, 'id', ['_synced_at', '_loaded_at', '_partition_date'], scope) }}

)

select
    balance_transaction_id,
    created_at,
    {{ recon.et_date('created_at') }} as created_date_et,
    available_on,
    status,
    type,
    reporting_category,
    source_id,
    currency,
    amount,
    fee,
    net,
    exchange_rate,
    description,
    partition_date,
    synced_at,
    run_id,
    loaded_at
from latest
{%- endmacro %}


{% macro stripe_payouts_latest(payout_ids=none) -%}
{%- set src = source('raw', 'stripe_payouts') -%}
{%- set scope %}
    {%- if payout_ids is not none %}id in (select charge_id from {{ payout_ids }}){% endif %}
{%- endset %}
with latest as (

    select
        id as payout_id,
        {{ recon.utc_instant(src, 'created') }} as created_at,
        {{ recon.utc_instant(src, 'arrival_date') }} as arrival_at,
        lower(status) as status,
        upper(currency) as currency,
        amount,
        automatic,
        method,
        balance_transaction as balance_transaction_id,
        failure_balance_transaction as failure_balance_transaction_id,
        failure_code,
        failure_message,
        description,
        metadata,
        _partition_date as partition_date,
        {{ recon.utc_instant(src, '_synced_at') }} as synced_at,
        _run_id as run_id,
        {{ recon.utc_instant(src, '_loaded_at') }} as loaded_at
    from {{ recon.latest_versions(src, 'id', ['_synced_at', '_loaded_at', '_partition_date'], scope) }}

)

select
    payout_id,
    created_at,
    arrival_at,
    {#- Stripe sends the bank's date as 00:00 UTC of it: that date is the reporting day #}
    {{ recon.utc_date('arrival_at') }} as arrival_date,
    status,
    currency,
    amount,
    automatic,
    method,
    balance_transaction_id,
    failure_balance_transaction_id,
    failure_code,
    failure_message,
    description,
    metadata,
    partition_date,
    synced_at,
    run_id,
    loaded_at
from latest
{%- endmacro %}


{% macro reconciled_entry_types() -%}
{#- The ledger entry types reconciliation reads, each an item type of its own. -#}
{{ return(['charge', 'refund', 'fee', 'dispute', 'payout']) }}
{%- endmacro %}


{% macro names_a_charge_in(charge_ids) -%}
{#- An entry version names a charge of `charge_ids` (a relation of `charge_id`; '' for none). -#}
coalesce(external_ref, '') in (select charge_id from {{ charge_ids }})
{%- endmacro %}


{% macro is_of_types(entry_type) -%}
{#- An entry version is of `entry_type` (one type, or a list). -#}
{%- set types = [entry_type] if entry_type is string else entry_type -%}
lower(entry_type) in ('{{ types | join("', '") }}')
{%- endmacro %}


{% macro ledger_entry_ids_naming(charge_ids, entry_type) -%}
{#- The entries any version of which names a scoped charge (or names none: the id ''), so an
    entry re-pointed from one charge to another is ranked whole; entries naming no charge are
    many (fees, payouts...): only those that were ever of the type can be of it now. -#}
select distinct id as entry_id
from {{ source('raw', 'ledger_entries') }}
where {{ recon.names_a_charge_in(charge_ids) }}
  and (coalesce(external_ref, '') <> '' or {{ recon.is_of_types(entry_type) }})
{%- endmacro %}


{% macro ledger_entries_latest(charge_ids=none, entry_type=none, reverses=none, entry_ids=none) -%}
{%- set src = source('raw', 'ledger_entries') -%}
{#- Every version of each entry any version of which names a scoped charge (`entry_ids`, written
    by `ledger_entry_ids_naming`), so an entry re-pointed from one charge to another is ranked
    whole; which charge its latest version names (`charge_ids`) is filtered after the ranking.
    With `reverses` (a relation with an `entry_id` column) instead: the reversals whose latest
    version cancels one of those entries, whatever charge (if any) the reversal itself names:
    `reversal_of` is what ties a reversal to its item. -#}
{%- set names_a_scoped_charge = none if charge_ids is none else recon.names_a_charge_in(charge_ids) %}
{%- set reverses_a_scoped_entry = none if reverses is none
      else "reversal_of in (select entry_id from " ~ reverses ~ ")" %}
{%- set is_of_the_type = none if entry_type is none else recon.is_of_types(entry_type) %}
{%- set scope %}
    {%- if entry_ids is not none %}
    id in (select entry_id from {{ entry_ids }})
    {%- elif reverses is not none %}
    id in (select id from {{ src }} where {{ reverses_a_scoped_entry }})
    {%- endif %}
{%- endset %}
{#- Which charge and type the latest version names, handed to `latest_versions` as a condition
    on the raw columns so it is checked before whole rows are read (see there). #}
{%- set latest_where = [names_a_scoped_charge, reverses_a_scoped_entry, is_of_the_type] | reject('none') | join(' and ') %}
with latest as (

    select
        id as entry_id,
        lower(entry_type) as entry_type,
        external_ref,
        account,
        amount_minor,
        upper(currency) as currency,
        {{ recon.utc_instant(src, 'posted_at') }} as posted_at,
        {{ recon.utc_instant(src, 'created_at') }} as created_at,
        {{ recon.utc_instant(src, 'updated_at') }} as updated_at,
        journal_id,
        reversal_of,
        _partition_date as partition_date,
        {{ recon.utc_instant(src, '_synced_at') }} as synced_at,
        _run_id as run_id,
        {{ recon.utc_instant(src, '_loaded_at') }} as loaded_at
    from {{ recon.latest_versions(src, 'id', ['_synced_at', 'updated_at', '_loaded_at'], scope, latest_where) }}

)

select
    entry_id,
    entry_type,
    external_ref,
    account,
    amount_minor,
    currency,
    posted_at,
    {{ recon.et_date('posted_at') }} as posted_date_et,
    created_at,
    updated_at,
    journal_id,
    reversal_of,
    partition_date,
    synced_at,
    run_id,
    loaded_at
from latest
{%- endmacro %}


{#-
  The latest version of each `key` of `src` (within `scope`, a condition on `src` that keeps
  every version of a key or none): the row with the greatest `order_by` columns, compared in
  order, a NULL lower than any value. Exact ties (every column equal) keep one of the tied rows,
  as a ranking would. `latest_where`, a condition on `src`'s columns, then keeps only the latest
  versions that meet it (never an older version that does). Returns a subquery with every column
  of `src`.
-#}
{% macro latest_versions(src, key, order_by, scope='', latest_where='') -%}
    {{ return(adapter.dispatch('latest_versions', 'recon')(src, key, order_by, scope, latest_where)) }}
{%- endmacro %}

{#- DuckDB: a window ranking every version carries every column through its sort, and at 8 M
    charges it cannot finish within 128MB; picking each key's row id with arg_max is a hash
    aggregate over the key and the order columns (it spills), and only the rows picked are read
    whole. 60 -> 32 s for 8.2 M charges at 256MB, 0.14 -> 0.08 s for a nightly's 20 k at 540
    days loaded (docs/benchmarks.md, "First builds"). `latest_where` is checked on the picked row
    ids with only its own columns read: as a filter on the whole rows, DuckDB planned its `in
    (select ...)` as a join whose hash table held every column of every latest version, and a
    first backfill of 600 k charges ran out of 256MB there ("A first backfill at 600 k charges").
    `rowid` is stable within the statement. #}
{% macro duckdb__latest_versions(src, key, order_by, scope, latest_where) -%}
(
    select *
    from {{ src }}
    where rowid in (
        {%- if latest_where | trim %}
        select rowid
        from {{ src }}
        where ({{ latest_where }})
          and rowid in (
        {%- endif %}
        select arg_max(
            rowid,
            struct_pack(
                {%- for c in order_by %}
                k{{ loop.index }} := {{ c }} is not null,
                v{{ loop.index }} := {{ c }}{% if not loop.last %},{% endif %}
                {%- endfor %}
            )
        )
        from {{ src }}
        {%- if scope | trim %}
        where {{ scope }}
        {%- endif %}
        group by {{ key }}
        {%- if latest_where | trim %}
          )
        {%- endif %}
    )
) as versions
{%- endmacro %}

{% macro default__latest_versions(src, key, order_by, scope, latest_where) -%}
(
    select *
    from (
        select *
        from {{ src }}
        {%- if scope | trim %}
        where {{ scope }}
        {%- endif %}
        qualify row_number() over (
            partition by {{ key }}
            order by {% for c in order_by %}{{ c }} desc nulls last{% if not loop.last %}, {% endif %}{% endfor %}
        ) = 1
    ) as latest
    {%- if latest_where | trim %}
    where {{ latest_where }}
    {%- endif %}
) as versions
{%- endmacro %}


{% macro stripe_disputes_latest() -%}
{#- Disputes are few (under one charge in a hundred) and every build reads them whole: no scope -#}
{%- set src = source('raw', 'stripe_disputes') -%}
with latest as (

    select
        id as dispute_id,
        {{ recon.utc_instant(src, 'created') }} as created_at,
        lower(status) as status,
        charge as charge_id,
        payment_intent as payment_intent_id,
        upper(currency) as currency,
        amount,
        reason,
        is_charge_refundable,
        metadata,
        _partition_date as partition_date,
        {{ recon.utc_instant(src, '_synced_at') }} as synced_at,
        _run_id as run_id,
        {{ recon.utc_instant(src, '_loaded_at') }} as loaded_at
    from {{ recon.latest_versions(src, 'id', ['_synced_at', '_loaded_at', '_partition_date'], '') }}

)

select
    dispute_id,
    created_at,
    {{ recon.et_date('created_at') }} as created_date_et,
    status,
    charge_id,
    payment_intent_id,
    currency,
    amount,
    reason,
    is_charge_refundable,
    metadata,
    partition_date,
    synced_at,
    run_id,
    loaded_at
from latest
{%- endmacro %}
