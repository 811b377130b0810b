{{ config(materialized='table') }}
{#-
  stg_stripe__balance_transactions of the sources this build rebuilds (a charge's or a refund's
  id in int_recon__touched_charges: a fee item is keyed by the object its fee was taken on).
-#}
{{ recon.stripe_balance_transactions_latest(source_ids=ref('int_recon__touched_charges')) }}
