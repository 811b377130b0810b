{{ config(unique_key='history_key', full_refresh=false) }}
{#-
  Every state each reconciliation item (charge, refund or orphan entry) has had: one row per
  version (`charge_id` holds the item's id: a refund's is its `re_...`),
  valid from the build that first showed it until the build that replaced it (`valid_to` NULL:
  the current version), with the Dagster run that made the change. A version is the item's
  status plus everything ops see change on it: Stripe's status, capture, captured / refunded
  amounts and dispute flag, and the ledger's entries and amount. So a late capture, a refund or
  a dispute is a new version even when the status stays the same.

  Incremental and flat with history: only items the fact table rebuilt since the history last
  saw it are compared (fact rows whose raw_loaded_through is after the newest one recorded here,
  plus the ids this build touched), against their open versions. An open version whose item is
  gone from the fact table (an orphan entry whose charge arrived) is closed without a successor.
  `full_refresh=false`: a --full-refresh of the marts never drops the history.
-#}
-- depends_on: {{ ref('int_recon__touched_charges') }}
{%- set now = recon.build_instant() %}
{#- The fact rows not compared yet: written after the newest one recorded here (H), or by this
    build (the touched charges, whose rows carry the fact table's newest raw_loaded_through F,
    which equals H when nothing was loaded since). Both are read now and written in as
    constants, so the scan of the fact table prunes by them instead of reading every row:
    `> H or >= F`, a superset of "after H or touched" only by rows of F that were compared
    before (their versions are unchanged, so they open and close nothing). -#}
{%- set since_seen = "1 = 0" %}
{%- if is_incremental() and execute %}
    {%- set fct = ref('fct_charge_reconciliation') %}
    {%- set refunds = ref('fct_refund_reconciliation') %}
    {%- set fees = ref('fct_fee_reconciliation') %}
    {%- set payouts = ref('fct_payout_reconciliation') %}
    {%- set disputes = ref('fct_dispute_reconciliation') %}
    {#- the newest of the fact tables: a build can rebuild refunds, fees or payouts and no charge #}
    {%- set seen, newest = run_query("select (select max(raw_loaded_through) from " ~ this ~ "), (select max(t) from (select max(raw_loaded_through) as t from " ~ fct ~ " union all select max(raw_loaded_through) from " ~ refunds ~ " union all select max(raw_loaded_through) from " ~ fees ~ " union all select max(raw_loaded_through) from " ~ payouts ~ " union all select max(raw_loaded_through) from " ~ disputes ~ ") as f)").rows[0] %}
    {%- if newest is not none %}
        {%- set since_seen = "f.raw_loaded_through >= " ~ recon.instant_literal(newest) %}
        {%- if seen is not none %}
            {%- set since_seen = "f.raw_loaded_through > " ~ recon.instant_literal(seen) ~ " or " ~ since_seen %}
        {%- endif %}
    {%- endif %}
{%- endif %}
{%- set tracked = ['recon_status', 'stripe_status', 'stripe_captured', 'stripe_amount',
                   'stripe_amount_refunded', 'stripe_disputed', 'currency', 'ledger_entry_ids',
                   'ledger_amount'] %}
{%- set cols = ['recon_key', 'charge_id', 'reporting_date', 'recon_status', 'is_break',
                'currency', 'stripe_status', 'stripe_captured', 'stripe_amount',
                'stripe_amount_refunded', 'stripe_disputed', 'ledger_entry_ids', 'ledger_amount',
                'amount_diff', 'raw_loaded_through'] %}
with current_items as (

    select
        {%- for c in cols %}
        f.{{ c }},
        {%- endfor %}
        {% for c in tracked -%}
        coalesce(cast(f.{{ c }} as varchar), '~'){% if not loop.last %} || '|' || {% endif %}
        {%- endfor %} as version_text
    from (
        {#- the filter in each branch, on the fact table itself, so its scan prunes by it #}
        select {{ cols | join(', ') }} from {{ ref('fct_charge_reconciliation') }} as f
        {%- if is_incremental() %}
        where {{ since_seen }}
        {%- endif %}
        {#- every other item is an item of its own: its id in the item-id column (a fee's is the
            object it was taken on: 'fee:' || its id) #}
        {%- for fact, id_column in [('fct_refund_reconciliation', 'refund_id'),
                                    ('fct_fee_reconciliation', 'source_id'),
                                    ('fct_payout_reconciliation', 'payout_id'),
                                    ('fct_dispute_reconciliation', 'dispute_id')] %}
        union all
        select recon_key, {{ id_column }} as charge_id, reporting_date, recon_status, is_break,
               currency, stripe_status, cast(null as boolean) as stripe_captured, stripe_amount,
               cast(null as bigint) as stripe_amount_refunded,
               cast(null as boolean) as stripe_disputed, ledger_entry_ids, ledger_amount,
               amount_diff, raw_loaded_through
        from {{ ref(fact) }} as f
        {%- if is_incremental() %}
        where {{ since_seen }}
        {%- endif %}
        {%- endfor %}
    ) as f

),
{%- if is_incremental() %}

open_versions as (

    select h.*
    from {{ this }} as h
    where h.valid_to is null
      and coalesce(h.charge_id, '') in (
          select coalesce(charge_id, '') from current_items
          union
          select charge_id from {{ ref('int_recon__touched_charges') }}
      )

),

changed as (

    select c.*, o.recon_status as previous_status
    from current_items as c
    left join open_versions as o
        on o.recon_key = c.recon_key
    where o.recon_key is null or o.version_text <> c.version_text

),

closed as (

    select
        o.history_key,
        {%- for c in cols %}
        o.{{ c }},
        {%- endfor %}
        o.version_text,
        o.previous_status,
        o.valid_from,
        {{ now }} as valid_to,
        o.changed_by_run
    from open_versions as o
    where o.recon_key in (select recon_key from changed)
       or o.recon_key not in (select recon_key from current_items)
    {#- an open version of a touched id whose item is gone: its charge id was compared, the
        key has no current row -#}

),
{%- else %}

changed as (

    select c.*, cast(null as varchar) as previous_status
    from current_items as c

),
{%- endif %}

opened as (

    select
        c.recon_key || '@' || '{{ invocation_id }}' as history_key,
        {%- for c in cols %}
        c.{{ c }},
        {%- endfor %}
        c.version_text,
        c.previous_status,
        {{ now }} as valid_from,
        cast(null as {{ recon.instant_type() }}) as valid_to,
        cast('{{ recon.run_var("dagster_run_id") or invocation_id }}' as varchar) as changed_by_run
    from changed as c

)

select * from opened
{%- if is_incremental() %}
union all
select * from closed
{%- endif %}
