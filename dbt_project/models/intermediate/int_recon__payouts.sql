{#-
  Each Stripe payout this build rebuilds with its ledger side and recon_status: the same rules
  as a charge (macros/item_status.sql), on the payout's arrival date (Stripe's `arrival_date`
  is 00:00 UTC of the bank's date: that date itself is the reporting day, not a US-Eastern
  instant), deadline arrival + T, "as of" the end of the gap-free run of loaded ledger days
  holding that day. A ledger `payout` entry names the payout (external_ref = po_...) and
  carries minus its amount (money leaves the Stripe balance): a wrong sign is an amount
  mismatch. `pending` and `in_transit` are Stripe not having decided; `paid` is settled; any
  other status (failed, canceled, or an unknown one after schema drift) is "not settled": not
  booked, or an unexpected entry when the ledger booked it and did not reverse it.
-#}
with joined as (

    {{ recon.item_ledger_side(ref('int_stripe__payouts_in_build'), 'payout', 'payout_id',
                              's.arrival_date', 'arrival_at') }}

)

select
    arrival_date as reporting_date,
    payout_id,
    balance_transaction_id,
    ledger_entry_ids,
    {{ recon.item_status(
        is_pending="status in ('pending', 'in_transit')",
        is_settled="status = 'paid'",
        entry_count='ledger_entry_count',
        ledger_currency='ledger_currency',
        currency='currency',
        ledger_amount='ledger_amount',
        expected_amount='-amount',
        first_posted_at='first_posted_at',
        booking_deadline='booking_deadline',
        as_of='as_of',
    ) }} as recon_status,
    currency,
    amount as stripe_amount,
    ledger_amount,
    synced_at as payout_synced_at,
    created_at as payout_created_at,
    arrival_at as payout_arrival_at,
    status as stripe_status,
    ledger_currency,
    ledger_entry_count,
    last_posted_at as ledger_posted_at,
    booking_deadline
from joined
