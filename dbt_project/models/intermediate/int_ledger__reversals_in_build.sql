{{ config(materialized='table') }}
{#-
  The ledger's corrections of the entries this build reads: every `reversal` whose latest version
  cancels an entry of int_ledger__entries_in_build (`reversal_of`), with the columns of
  stg_ledger__entries. The ledger corrects by reversal, never by an edit; a reversal may name no
  charge at all, so it reaches its item through the entry it cancels, never its own external_ref.
  A table like the entries it cancels: read by the netting of every entry and by the id lists.
-#}
{{ recon.ledger_entries_latest(reverses=ref('int_ledger__entries_in_build'), entry_type='reversal') }}
