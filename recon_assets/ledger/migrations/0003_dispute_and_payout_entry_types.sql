-- 0003: entry types `dispute` and `payout`.
--
-- Why: finance books the money that leaves or returns to the Stripe balance after the charge.
-- A `payout` entry names the Stripe payout (external_ref = po_...) and carries minus its amount
-- (money leaves the balance for the bank); a `dispute` entry names the dispute (dp_...), signed
-- as the money moved (minus the disputed amount when Stripe withdraws it, plus it when a won
-- dispute is reinstated). Both are reconciled item by item like charges and refunds.
--
-- The check constraint is replaced in one transaction (this file's): existing rows only ever
-- held the old types, which the new list keeps, so the validation scan cannot fail.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_entry_type_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_entry_type_check
    CHECK (entry_type IN ('charge', 'refund', 'adjustment', 'fee', 'reversal', 'dispute', 'payout'));
