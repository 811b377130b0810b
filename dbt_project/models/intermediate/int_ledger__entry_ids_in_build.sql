{{ config(materialized='table') }}
{#-
  The ledger entries any version of which names an item this build rebuilds
  (int_recon__touched_charges), or names nothing while of a reconciled type: the entries
  int_ledger__entries_in_build ranks, written before it. In one statement with that ranking,
  this semi-join's hash tables and the ranking's were alive together and a 600 k first build
  (1.1 M entries: a fee entry per charge) ran out of DuckDB's 256MB; apart, each fits
  (docs/benchmarks.md, "Each process alone").
-#}
{{ recon.ledger_entry_ids_naming(ref('int_recon__touched_charges'), recon.reconciled_entry_types()) }}
