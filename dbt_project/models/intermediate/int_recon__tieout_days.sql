{{ config(materialized='table') }}
{#-
  The US-Eastern days whose balance tie-out this build restates: the days the movements it
  replaced fell on or belonged to (int_recon__tieout_days_before) and the days the movements it
  wrote fall on or belong to. No other day's sums can have changed: every movement of an id the
  build did not touch is the one int_recon__balance_moves already held.
-#}
-- depends_on: {{ ref('stg_recon__load_log') }}
{# the movements this build wrote, by the build instant they carry: they are the table's last
    row groups, which its zone maps find without reading the 5.2 M rows' ids at 540 days loaded
    (0.26 -> 0.045 s); one read for both days #}
with written as (
    select moved_on, reporting_date
    from {{ ref('int_recon__balance_moves') }}
    where written_at = {{ recon.build_instant() }}
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
