{#-
  Each Stripe fee this build rebuilds, with its ledger side and recon_status: one item per
  object Stripe took a fee on (a charge's `ch_...`, a refund's `re_...`, a dispute's `dp_...`),
  the sum of the fees of its balance transactions (in practice one transaction), on the
  US-Eastern day its first such transaction was created, deadline created + T, "as of" as for
  charges. The ledger books a fee as `fee` entries naming that object, negative (money out), so
  the expected ledger amount is minus the fee. A fee is taken with its transaction: Stripe has
  always decided (never `pending_in_stripe`), and the same rules as charges apply
  (macros/item_status.sql). A transaction converted into another currency (`exchange_rate`
  set) keeps its own currency here: the account settles in each charge's currency, and a
  conversion is reported as `currency_conversion`, never converted.
-#}
with fees as (

    select
        source_id,
        min(balance_transaction_id) as balance_transaction_id,
        min(created_at) as created_at,
        min(currency) as currency,
        sum(fee) as fee,
        max(case when status = 'pending' then 1 else 0 end) as any_pending,
        max(synced_at) as synced_at,
        max(case when exchange_rate is not null then 1 else 0 end) as converted
    from {{ ref('int_stripe__balance_transactions_in_build') }}
    where fee <> 0
      and source_id is not null
    group by source_id

),

joined as (

    select
        j.*,
        {{ recon.et_date('j.created_at') }} as created_date_et
    from (
        {{ recon.item_ledger_side('fees', 'fee', 'source_id',
                                  recon.et_date('s.created_at'), 'created_at') }}
    ) as j

)

select
    created_date_et as reporting_date,
    source_id,
    balance_transaction_id,
    ledger_entry_ids,
    {{ recon.item_status(
        is_pending='false',
        is_settled='true',
        entry_count='ledger_entry_count',
        ledger_currency='ledger_currency',
        currency='currency',
        ledger_amount='ledger_amount',
        expected_amount='-fee',
        first_posted_at='first_posted_at',
        booking_deadline='booking_deadline',
        as_of='as_of',
        is_converted='converted = 1',
    ) }} as recon_status,
    currency,
    fee as stripe_amount,
    ledger_amount,
    synced_at as fee_synced_at,
    created_at as fee_created_at,
    case when any_pending = 1 then 'pending' else 'available' end as stripe_status,
    ledger_currency,
    ledger_entry_count,
    last_posted_at as ledger_posted_at,
    booking_deadline
from joined
