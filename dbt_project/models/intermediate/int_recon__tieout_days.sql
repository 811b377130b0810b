{{ config(materialized='table') }}
{#-
  The US-Eastern days whose balance tie-out this build restates: the days the movements it
  replaced fell on or belonged to (int_recon__tieout_days_before) and the days the movements it
  wrote fall on or belong to. No other day's sums can have changed: every movement of an id the
  build did not touch is the one int_recon__balance_moves already held.
-#}
-- depends_on: {{ ref('stg_recon__load_log') }}
{#- one read of the movements for both days (two took 0.18-0.45 s at 540 days, one 0.09) #}
with written as (
    select moved_on, reporting_date
    from {{ ref('int_recon__balance_moves') }}
    where ref_id in (select charge_id from {{ ref('int_recon__touched_charges') }})
)
select reporting_date from {{ ref('int_recon__tieout_days_before') }}
union
select moved_on as reporting_date from written
union
select reporting_date from written where reporting_date is not null
{%- set w = recon.reporting_window() %}
{%- if w is not none %}
{# the run's own days: a day whose transactions are loaded now for the first time (or again)
   is restated even if nothing on it moved #}
union
select partition_date as reporting_date
from {{ ref('stg_recon__load_log') }}
where dataset = 'stripe_balance_transactions'
  and load_kind = 'day'
  and partition_date >= cast('{{ w.min }}' as date)
  and partition_date < cast('{{ w.max_exclusive }}' as date)
{%- endif %}
