{#-
  One row per ledger entry (the loader keeps one per id already; the dedupe costs little and keeps
  a double load from double-counting). entry_type is lower-cased, currency upper-cased ISO.
  Every entry ever loaded, for reading; a build reads int_ledger__entries_in_build, the entries
  of the charges it rebuilds (macros/latest_versions.sql).
-#}
{{ recon.ledger_entries_latest() }}
