{#-
  stg_stripe__charges for the charge ids this build rebuilds (int_recon__touched_charges): the
  reconciliation reads these, so a nightly ranks the versions of its own few thousand charges
  rather than of every charge ever loaded. A first build or a full refresh touches every id.
-#}
{{ recon.stripe_charges_latest(charge_ids=ref('int_recon__touched_charges')) }}
