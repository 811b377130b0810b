{{ config(materialized='table') }}
{#-
  stg_stripe__charges for the charge ids this build rebuilds (int_recon__touched_charges): the
  reconciliation reads these, so a nightly ranks the versions of its own few thousand charges
  rather than of every charge ever loaded. A first build or a full refresh touches every id.

  A table, rebuilt by every build: its not-null tests and every model after it read these rows
  once written, instead of each evaluating the id filter and the latest-version ranking over the
  raw table again (~0.2 s apiece at 540 days loaded, a dozen readers; docs/benchmarks.md).
-#}
{{ recon.stripe_charges_latest(charge_ids=ref('int_recon__touched_charges')) }}
