{{ config(materialized='table') }}
{#-
  The ledger `charge` entries (the only type reconciliation reads) whose latest version names a
  charge id this build rebuilds (int_recon__touched_charges; the id '' stands for entries naming
  no charge at all), with the columns of stg_ledger__entries.

  A table, rebuilt by every build: its not-null tests and every model after it read these rows
  once written, instead of each evaluating the id filter and the latest-version ranking over the
  raw table again (~0.2 s apiece at 540 days loaded, a dozen readers; docs/benchmarks.md).
-#}
{{ recon.ledger_entries_latest(charge_ids=ref('int_recon__touched_charges'), entry_type='charge') }}
