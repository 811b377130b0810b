{#-
  The refunds' twin of assert_amounts_fit_in_int64 for each item: a refund's ledger sum or its
  difference (ledger + Stripe) that does not fit int64 minor units stops the build before
  fct_refund_reconciliation changes, naming the ledger entries. Day totals of refunds are not
  checked here (a day's refunds summing past 2^63 needs one item near it, which this catches).
-#}
{%- set max_int = '9223372036854775807' -%}
with items as (

    select
        reporting_date,
        refund_id,
        coalesce(ledger_entry_ids, '') as ledger_entry_ids,
        cast(stripe_amount as decimal(38, 0)) as stripe_amount,
        cast(ledger_amount as decimal(38, 0)) as ledger_amount
    from {{ ref('int_recon__refund_items') }}

),

bad as (

    select
        'ledger entries ' || ledger_entry_ids || ' of refund ' || coalesce(refund_id, '?')
            || ' on ' || cast(reporting_date as varchar) as what
    from items
    where abs(coalesce(ledger_amount, 0)) > {{ max_int }}
       or abs(coalesce(ledger_amount, 0) + coalesce(stripe_amount, 0)) > {{ max_int }}

)

select cast('recon: amount does not fit int64 minor units: ' || what as bigint) as failure
from bad
