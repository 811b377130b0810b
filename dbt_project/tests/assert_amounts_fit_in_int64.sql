{#-
  The marts store amounts as int64 minor units. A ledger sum, a difference, or a report total
  that does not fit must stop the build before the fact table changes, and say which entries:
  each offending item is turned into a cast that fails with its own description, so the error
  dbt (and Dagster) shows names the ledger entries. With nothing out of range the test returns
  no rows and passes.

  int_recon__items holds only the items this build rebuilds, so a report total adds the rows the
  fact table keeps on the same days (those of the charge ids not rebuilt). The fact table is
  looked up, not ref'd: a ref would order this test after the model it must stop.
-#}
{%- set max_int = '9223372036854775807' -%}
{%- set fct = none -%}
{%- if execute and not flags.FULL_REFRESH -%}
    {%- set fct = adapter.get_relation(database=target.database, schema='marts', identifier='fct_charge_reconciliation') -%}
{%- endif %}
-- depends_on: {{ ref('int_recon__touched_charges') }}
with items as (

    select
        reporting_date,
        charge_id,
        coalesce(ledger_entry_ids, '') as ledger_entry_ids,
        recon_status,
        currency,
        cast(stripe_amount as decimal(38, 0)) as stripe_amount,
        cast(ledger_amount as decimal(38, 0)) as ledger_amount
    from {{ ref('int_recon__items') }}

),

per_item as (

    select
        'ledger entries ' || ledger_entry_ids || ' of charge ' || coalesce(charge_id, '?')
            || ' on ' || cast(reporting_date as varchar) as what
    from items
    where abs(coalesce(ledger_amount, 0)) > {{ max_int }}
       or abs(coalesce(ledger_amount, 0) - coalesce(stripe_amount, 0)) > {{ max_int }}

),

day_rows as (

    select reporting_date, currency, recon_status, ledger_entry_ids, stripe_amount, ledger_amount
    from items
    {%- if fct is not none %}
    union all
    select
        f.reporting_date,
        f.currency,
        f.recon_status,
        coalesce(f.ledger_entry_ids, ''),
        cast(f.stripe_amount as decimal(38, 0)),
        cast(f.ledger_amount as decimal(38, 0))
    from {{ fct }} as f
    where f.reporting_date in (select reporting_date from items)
      and coalesce(f.charge_id, '') not in (
          select charge_id from {{ ref('int_recon__touched_charges') }})
    {%- endif %}

),

per_group as (

    select
        'the ' || recon_status || ' ' || currency || ' total on ' || cast(reporting_date as varchar)
            || ' (ledger entries ' || max(ledger_entry_ids) || ', ...)' as what
    from day_rows
    group by reporting_date, currency, recon_status
    having abs(sum(coalesce(ledger_amount, 0))) > {{ max_int }}
        or abs(sum(coalesce(stripe_amount, 0))) > {{ max_int }}

),

bad as (

    select what from per_item
    union all
    select what from per_group

)

select cast('recon: amount does not fit int64 minor units: ' || what as bigint) as failure
from bad
