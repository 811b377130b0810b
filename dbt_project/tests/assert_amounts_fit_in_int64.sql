{#-
  The marts store amounts as int64 minor units. A ledger sum, a difference, or a report total
  that does not fit must stop the build before the fact table changes, and say which entries:
  each offending item is turned into a cast that fails with its own description, so the error
  dbt (and Dagster) shows names the ledger entries. With nothing out of range the test returns
  no rows and passes.
-#}
{%- set max_int = '9223372036854775807' -%}
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

per_group as (

    select
        'the ' || recon_status || ' ' || currency || ' total on ' || cast(reporting_date as varchar)
            || ' (ledger entries ' || max(ledger_entry_ids) || ', ...)' as what
    from items
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
