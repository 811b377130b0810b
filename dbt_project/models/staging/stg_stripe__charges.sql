{#-
  One row per Stripe charge: the latest version we synced (a charge can be re-pulled, e.g. by the
  trailing re-statement window, and reconciliation must name the version it used).
  Timestamps become canonical instants (macros/time.sql); currency is upper-cased to compare with
  the ledger's ISO codes; amounts stay integer minor units.
-#}
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
