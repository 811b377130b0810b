{#-
  One row per Stripe balance transaction: the latest version we synced (only `status` moves,
  pending -> available). Every movement of the balance (a charge, a refund, a refund's failure),
  with the fee Stripe took; fee items and the daily balance tie-out read it. Every transaction
  ever loaded, for reading; a build reads int_stripe__balance_transactions_in_build.
-#}
{{ recon.stripe_balance_transactions_latest() }}
