{#-
  The reconciliation rules (docs/design.md), first rule that applies, for any item: a charge or a
  refund is rows of the same rules, only what counts as pending, settled and the expected
  ledger amount differ. Arguments are SQL expressions over the item's row:
    is_pending       Stripe has not decided yet (a pending charge; a pending or requires_action refund)
    is_settled       Stripe moved the money (a succeeded and captured charge; a succeeded refund)
    entry_count      the ledger entries standing for it, net of reversals
    ledger_currency, currency
    ledger_amount, expected_amount   what the ledger holds and should hold (a refund's is minus
                                     its amount: money out)
    first_posted_at, booking_deadline, as_of
    is_converted     Stripe converted the money into another currency (a balance transaction
                     with `exchange_rate`: an item made of transactions, a fee or a dispute
                     movement): `currency_conversion`, a break of its own, never converted here
-#}
{% macro item_status(is_pending, is_settled, entry_count, ledger_currency, currency,
                     ledger_amount, expected_amount, first_posted_at, booking_deadline, as_of,
                     is_converted='false') -%}
    case
        when {{ is_pending }}
            then 'pending_in_stripe'
        when {{ is_converted }}
            then 'currency_conversion'
        when not ({{ is_settled }})
            then case when {{ entry_count }} = 0 then 'not_booked' else 'unexpected_ledger_entry' end
        when {{ entry_count }} = 0
            then case
                when {{ as_of }} is null or {{ booking_deadline }} > {{ as_of }} then 'pending_in_ledger'
                else 'missing_in_ledger'
            end
        when {{ entry_count }} > 1
            then 'duplicate_in_ledger'
        when {{ ledger_currency }} <> {{ currency }}
            then 'currency_mismatch'
        when {{ ledger_amount }} is distinct from {{ expected_amount }}
            then 'amount_mismatch'
        when {{ first_posted_at }} > {{ booking_deadline }}
            then 'late_posting'
        else 'matched'
    end
{%- endmacro %}
