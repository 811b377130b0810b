{#-
  One row per Stripe refund: the latest version we synced (a refund changes after it is made:
  pending -> succeeded, succeeded -> failed). Each refund is a reconciliation item of its own, on
  the US-Eastern day it was created. Every refund ever loaded, for reading; a build reads
  int_stripe__refunds_in_build (macros/latest_versions.sql).
-#}
{{ recon.stripe_refunds_latest() }}
