{#-
  The ledger `charge` entries (the only type reconciliation reads) whose latest version names a
  charge id this build rebuilds (int_recon__touched_charges; the id '' stands for entries naming
  no charge at all), with the columns of stg_ledger__entries.
-#}
{{ recon.ledger_entries_latest(charge_ids=ref('int_recon__touched_charges'), entry_type='charge') }}
