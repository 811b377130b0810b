{#-
  One row per Stripe payout: the latest version we synced (a payout changes after it is made:
  pending -> in_transit -> paid, and paid -> failed when the bank returns it). Each payout is a
  reconciliation item of its own, on its arrival date (the UTC date Stripe sends as
  `arrival_date`: the bank's date). Every payout ever loaded, for reading; a build reads
  int_stripe__payouts_in_build (macros/latest_versions.sql).
-#}
{{ recon.stripe_payouts_latest() }}
