{{ config(materialized='table') }}
{#-
  The days whose tie-out the movements this build replaces weighed before it (the movements of
  the ids it touches, as int_recon__balance_moves held them when the build began): the day each
  moved on and its item's day. Read before the movements are rebuilt, so a movement that leaves
  a day (an entry re-posted to another, an orphan that became an item's) still restates the day
  it left (rpt_balance_tieout). When the movements table is new (a first build, an upgrade,
  --full-refresh), every loaded day: the tie-out is restated whole from the complete table.
-#}
-- depends_on: {{ ref('stg_recon__load_log') }}
-- depends_on: {{ ref('int_recon__touched_charges') }}
{%- set moves = none -%}
{%- if execute and not flags.FULL_REFRESH -%}
    {%- set moves = adapter.get_relation(database=target.database, schema='intermediate', identifier='int_recon__balance_moves') -%}
{%- endif %}
{%- if moves is none %}
select distinct partition_date as reporting_date
from {{ ref('stg_recon__load_log') }}
where dataset = 'stripe_balance_transactions'
{%- else %}
{#- one read of the movements for both days (two took 0.18-0.45 s at 540 days, one 0.09) #}
with replaced as (
    select moved_on, reporting_date
    from {{ moves }}
    where ref_id in (select charge_id from {{ ref('int_recon__touched_charges') }})
)
select moved_on as reporting_date from replaced
union
select reporting_date from replaced where reporting_date is not null
{%- endif %}
