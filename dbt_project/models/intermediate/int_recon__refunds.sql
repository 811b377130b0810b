{#-
  Each Stripe refund this build rebuilds (int_recon__touched_charges) with its ledger side and
  its recon_status: the same rules as a charge (macros/item_status.sql), on the US-Eastern day
  the refund was created, deadline created + T, "as of" the end of the gap-free run of loaded
  ledger days holding that day. A ledger `refund` entry names the refund (external_ref = re_...)
  and carries minus the refund's amount (money out): a wrong sign is an amount mismatch.
  `pending` and `requires_action` are Stripe not having decided; `succeeded` is settled; any
  other status (failed, canceled, or an unknown one after schema drift) is "not settled", so
  every refund gets exactly one status.
-#}
with joined as (

    {{ recon.item_ledger_side(ref('int_stripe__refunds_in_build'), 'refund', 'refund_id',
                              's.created_date_et', 'created_at') }}

)

select
    created_date_et as reporting_date,
    refund_id,
    charge_id,
    ledger_entry_ids,
    {{ recon.item_status(
        is_pending="status in ('pending', 'requires_action')",
        is_settled="status = 'succeeded'",
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
    synced_at as refund_synced_at,
    created_at as refund_created_at,
    status as stripe_status,
    ledger_currency,
    ledger_entry_count,
    last_posted_at as ledger_posted_at,
    booking_deadline
from joined
