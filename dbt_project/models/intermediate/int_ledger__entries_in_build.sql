{{ config(materialized='table') }}
{#-
  The ledger entries reconciliation reads (`recon.reconciled_entry_types`), whose latest version
  names an item this build rebuilds (int_recon__touched_charges: a charge or a refund id; the id
  '' stands for entries naming nothing at all), with the columns of stg_ledger__entries. Every
  version of the entries in int_ledger__entry_ids_in_build is ranked.

  A table, rebuilt by every build: its not-null tests and every model after it read these rows
  once written, instead of each evaluating the id filter and the latest-version ranking over the
  raw table again (~0.2 s apiece at 540 days loaded, a dozen readers; docs/benchmarks.md).
-#}
{{ recon.ledger_entries_latest(charge_ids=ref('int_recon__touched_charges'), entry_ids=ref('int_ledger__entry_ids_in_build'), entry_type=recon.reconciled_entry_types()) }}
