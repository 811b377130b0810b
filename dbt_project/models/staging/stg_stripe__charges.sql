{#-
  One row per Stripe charge: the latest version we synced (a charge can be re-pulled, e.g. by the
  trailing re-statement window, and reconciliation must name the version it used).
  Timestamps become canonical instants (macros/time.sql); currency is upper-cased to compare with
  the ledger's ISO codes; amounts stay integer minor units. Every charge ever loaded, for reading;
  a build reads int_stripe__charges_in_build, the same rows for the charges it rebuilds
  (macros/latest_versions.sql).
-#}
{{ recon.stripe_charges_latest() }}
