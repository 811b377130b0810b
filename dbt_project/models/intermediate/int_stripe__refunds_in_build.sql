{{ config(materialized='table') }}
{#-
  stg_stripe__refunds for the refund ids this build rebuilds (int_recon__touched_charges holds
  the ids of every item a build touches, charges and refunds alike): a table, like the charges
  in build, read by the refund rules and their tests.
-#}
{{ recon.stripe_refunds_latest(refund_ids=ref('int_recon__touched_charges')) }}
