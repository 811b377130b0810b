{#-
  The latest synced version of each raw record, optionally only for the charge ids a build
  rebuilds.

  Raw tables can hold several versions of a record (a day re-pulled, a charge reloaded by id from
  an event, a ledger entry edited): a whole-day reload deletes only rows synced up to its own
  snapshot, so a newer version loaded by id survives it. The staging views call these macros
  without a scope (every record: ad-hoc reading, documentation); the build's own models
  (int_stripe__charges_in_build, int_ledger__entries_in_build) pass the touched charge ids, so a
  nightly ranks the versions of a few thousand records, not of every charge ever loaded.
-#}

{% macro stripe_charges_latest(charge_ids=none) -%}
{%- set src = source('raw', 'stripe_charges') -%}
with ranked as (

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
        {{ recon.utc_instant(src, '_loaded_at') }} as loaded_at,
        row_number() over (
            partition by id
            order by _synced_at desc, _loaded_at desc, _partition_date desc
        ) as version_rank

    from {{ src }}
    {%- if charge_ids is not none %}
    {#- every version of an id or none of them: the filter is on the ranking's key #}
    where id in (select charge_id from {{ charge_ids }})
    {%- endif %}

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
from ranked
where version_rank = 1
{%- endmacro %}


{% macro ledger_entries_latest(charge_ids=none, entry_type=none) -%}
{%- set src = source('raw', 'ledger_entries') -%}
with ranked as (

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
        _partition_date as partition_date,
        {{ recon.utc_instant(src, '_synced_at') }} as synced_at,
        _run_id as run_id,
        {{ recon.utc_instant(src, '_loaded_at') }} as loaded_at,
        row_number() over (
            partition by id
            order by _synced_at desc, updated_at desc, _loaded_at desc
        ) as version_rank

    from {{ src }}
    {%- if charge_ids is not none %}
    {#- Every version of each entry any version of which names a scoped charge (or names none:
        the id ''), so an entry re-pointed from one charge to another is ranked whole; which
        charge its latest version names is filtered after the ranking. #}
    where id in (
        select id from {{ src }}
        where coalesce(external_ref, '') in (select charge_id from {{ charge_ids }})
        {%- if entry_type is not none %}
          {#- entries naming no charge are many (fees, payouts...): only those that were ever
              of the type can be of it now #}
          and (coalesce(external_ref, '') <> '' or lower(entry_type) = '{{ entry_type }}')
        {%- endif %}
    )
    {%- endif %}

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
    partition_date,
    synced_at,
    run_id,
    loaded_at
from ranked
where version_rank = 1
{%- if charge_ids is not none %}
  and coalesce(external_ref, '') in (select charge_id from {{ charge_ids }})
{%- endif %}
{%- if entry_type is not none %}
  and entry_type = '{{ entry_type }}'
{%- endif %}
{%- endmacro %}
