{{ config(materialized='table') }}
{#-
  stg_stripe__payouts for the payout ids this build rebuilds (int_recon__touched_charges holds
  the ids of every item a build touches): a table, read by the payout rules and their tests.
-#}
{{ recon.stripe_payouts_latest(payout_ids=ref('int_recon__touched_charges')) }}
