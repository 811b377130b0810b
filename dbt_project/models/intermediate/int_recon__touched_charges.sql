{{ config(materialized='table') }}
{#-
  The charge ids whose fact rows this build rebuilds (orphan entries are keyed by the charge id
  they name, '' for none, so one id covers a charge and the entries pointing at it). Late data
  reopens exactly what it touches:
    - charges and ledger entries loaded since the last build (`_loaded_at` after the fact table's
      `raw_loaded_through`): a charge re-pulled or found by a look-up, an entry posted weeks
      late or edited, whatever their day;
    - charges a ledger load took an entry away from, and every id a look-up answered;
    - charges created within T+1 days before a newly loaded ledger day: their booking deadline
      may now be covered (pending_in_ledger may become missing_in_ledger);
    - the run's own reporting window (the partition range), so re-running a range re-states it.
  Without a fact table yet, every id is touched (the first build is a full build).
  `loaded_through` is the load log's latest instant seen now: the fact rows built from this set
  carry it, and the next build starts from it.
-#}
{%- set fct = none -%}
{%- if execute -%}
    {%- set fct = adapter.get_relation(database=target.database, schema='marts', identifier='fct_charge_reconciliation') -%}
{%- endif -%}
{%- set w = recon.reporting_window() -%}
{%- set t = recon.tolerance_days() %}
-- depends_on: {{ ref('stg_ledger__dropped_refs') }}
-- depends_on: {{ ref('stg_stripe__charge_lookups') }}
with charges as (

    select charge_id, created_date_et, loaded_at from {{ ref('stg_stripe__charges') }}

),

entries as (

    {#- every entry type: an entry that stopped being a `charge` entry reopens its charge too;
        no reference at all is the id '' (the orphan rows of such entries) -#}
    select coalesce(external_ref, '') as charge_id, posted_date_et, loaded_at
    from {{ ref('stg_ledger__entries') }}

),

loads as (

    select * from {{ ref('stg_recon__load_log') }}

),

{%- if fct is none %}

touched as (

    select charge_id from charges
    union
    select charge_id from entries

)

{%- else %}

since as (

    select max(raw_loaded_through) as loaded_through from {{ fct }}

),

new_ledger_days as (

    select distinct l.partition_date
    from loads as l
    cross join since as s
    where l.dataset = 'ledger_entries'
      and l.load_kind = 'day'
      and (s.loaded_through is null or l.loaded_at > s.loaded_through)

),

touched as (

    select c.charge_id from charges as c cross join since as s
    where s.loaded_through is null or c.loaded_at > s.loaded_through
    union
    select e.charge_id from entries as e cross join since as s
    where s.loaded_through is null or e.loaded_at > s.loaded_through
    union
    select r.charge_id from {{ ref('stg_ledger__dropped_refs') }} as r cross join since as s
    where s.loaded_through is null or r.loaded_at > s.loaded_through
    union
    select k.charge_id from {{ ref('stg_stripe__charge_lookups') }} as k cross join since as s
    where s.loaded_through is null or k.looked_up_at > s.loaded_through
    union
    select c.charge_id from charges as c
    inner join new_ledger_days as d
        on c.created_date_et >= {{ recon.date_add_days('d.partition_date', -(t + 1)) }}
        and c.created_date_et <= d.partition_date
    {%- if w is not none %}
    union
    select charge_id from charges
    where created_date_et >= cast('{{ w.min }}' as date)
      and created_date_et < cast('{{ w.max_exclusive }}' as date)
    union
    select charge_id from entries
    where posted_date_et >= cast('{{ w.min }}' as date)
      and posted_date_et < cast('{{ w.max_exclusive }}' as date)
    {%- endif %}

)

{%- endif %}

select distinct
    t.charge_id,
    (select max(loaded_at) from loads) as loaded_through
from touched as t
