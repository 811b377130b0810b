{#-
  Each dispute movement this build rebuilds, with its ledger side and recon_status
  (docs/design.md, "Disputes"): one item per dispute balance transaction, the withdrawal
  (`reporting_category` dispute: minus the disputed amount, with the dispute fee) and, if the
  dispute is won, the reinstatement (dispute_reversal: the amount back), each on the US-Eastern
  day its transaction was created, deadline created + T, "as of" as for charges. The ledger
  books each as a `dispute` entry naming the dispute (`dp_...`), signed as the money moved, so
  the expected ledger amount is the transaction's `amount` and an entry's sign says which
  movement it books (macros/item_ledger_side.sql, `ledger_item_id`). The dispute fee is a fee
  item (int_recon__fees), keyed by the dispute like a charge's fee by the charge. A movement is
  made when its transaction exists: Stripe has decided (never `pending_in_stripe`), and the
  charges' rules apply (macros/item_status.sql). `stripe_amount` is what the movement took out
  of the balance (the disputed amount for a withdrawal, minus it for a reinstatement), the way a
  refund's or a payout's amount is, so a fact's `amount_diff` = ledger + stripe is 0 when booked.
-#}
with movements as (

    select
        t.source_id as dispute_id,
        t.balance_transaction_id,
        case when t.amount < 0 then 'withdrawal' else 'reinstatement' end as dispute_leg,
        t.source_id || case when t.amount < 0 then '#withdrawal' else '#reinstatement' end
            as dispute_item_id,
        t.created_at,
        t.currency,
        t.amount,
        t.reporting_category,
        t.synced_at,
        t.status as txn_status,
        t.exchange_rate is not null as is_converted
    from {{ ref('int_stripe__balance_transactions_in_build') }} as t
    where substr(t.source_id, 1, 3) = 'dp_'
      and t.reporting_category in ('dispute', 'dispute_reversal')

),

joined as (

    select
        j.*,
        {{ recon.et_date('j.created_at') }} as created_date_et
    from (
        {{ recon.item_ledger_side('movements', 'dispute', 'dispute_item_id',
                                  recon.et_date('s.created_at'), 'created_at') }}
    ) as j

)

select
    j.created_date_et as reporting_date,
    j.dispute_id,
    j.dispute_leg,
    j.dispute_item_id,
    j.balance_transaction_id,
    d.charge_id,
    j.ledger_entry_ids,
    {{ recon.item_status(
        is_pending='false',
        is_settled='true',
        entry_count='j.ledger_entry_count',
        ledger_currency='j.ledger_currency',
        currency='j.currency',
        ledger_amount='j.ledger_amount',
        expected_amount='j.amount',
        first_posted_at='j.first_posted_at',
        booking_deadline='j.booking_deadline',
        as_of='j.as_of',
        is_converted='j.is_converted',
    ) }} as recon_status,
    j.currency,
    -j.amount as stripe_amount,
    j.ledger_amount,
    j.synced_at as dispute_synced_at,
    j.created_at as dispute_created_at,
    coalesce(d.status, 'unknown') as stripe_status,
    j.ledger_currency,
    j.ledger_entry_count,
    j.last_posted_at as ledger_posted_at,
    j.booking_deadline
from joined as j
left join {{ ref('stg_stripe__disputes') }} as d
    on d.dispute_id = j.dispute_id
