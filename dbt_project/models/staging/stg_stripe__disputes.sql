{#-
  One row per Stripe dispute: the latest version we synced (a dispute changes after it is
  opened: needs_response -> under_review -> won or lost, weeks later, through its events).
  The dispute's money is not here but in its balance transactions (the withdrawal with the
  dispute fee, the reinstatement if won): those are the dispute items (int_recon__disputes);
  this says which charge was disputed and how the dispute stands.
-#}
{{ recon.stripe_disputes_latest() }}
