{#-
  Each Stripe charge this build rebuilds (int_recon__touched_charges) with its ledger side and its recon_status: the rules table of
  docs/design.md, first rule that applies. Stripe statuses other than pending and succeeded
  (failed, or an unknown one after schema drift) count as "not succeeded", so every charge gets
  exactly one status. T is 24-hour days (macros/time.sql, add_days).

  "As of" is per charge: the end of the gap-free run of loaded ledger days that contains the
  charge's own day (int_recon__ledger_coverage), so a charge is `missing_in_ledger` only when the
  ledger was loaded without gaps through its booking deadline, whatever else was loaded or in
  which order. The `as_of` var, when given, overrides it for every charge (tests, what-ifs).

  The ledger side is net of the ledger's own corrections (int_ledger__entries_by_item): a
  reversed entry does not count, and timeliness is judged by the charge's first booking, so a
  wrong amount reversed and re-booked after the deadline is `matched`, not `late_posting`.
-#}
with charges as (

    select * from {{ ref('int_stripe__charges_in_build') }}

),

ledger as (

    select * from {{ ref('int_ledger__entries_by_item') }}
    where item_type = 'charge'

),

coverage as (

    select * from {{ ref('int_recon__ledger_coverage') }}

),

joined as (

    select
        c.charge_id,
        c.created_at,
        c.created_date_et,
        c.status,
        c.captured,
        c.currency,
        c.amount_captured,
        c.amount_refunded,
        c.disputed,
        c.customer_id,
        c.synced_at,
        {{ recon.add_days('c.created_at', recon.tolerance_days()) }} as booking_deadline,
        {%- if recon.run_var('as_of') is not none %}
        {{ recon.utc_literal(recon.run_var('as_of')) }} as as_of,
        {%- else %}
        cov.covered_until as as_of,
        {%- endif %}
        coalesce(l.ledger_entry_count, 0) as ledger_entry_count,
        l.ledger_entry_ids,
        l.ledger_amount,
        l.ledger_currency,
        l.ledger_currency_max,
        l.first_posted_at,
        l.last_posted_at
    from charges as c
    left join coverage as cov
        on c.created_date_et >= cov.first_day
        and c.created_date_et < cov.end_day_exclusive
    left join ledger as l
        on l.item_id = c.charge_id

)

select
    created_date_et as reporting_date,
    charge_id,
    ledger_entry_ids,
    {{ recon.item_status(
        is_pending="status = 'pending'",
        is_settled="status = 'succeeded' and coalesce(captured, false)",
        entry_count='ledger_entry_count',
        ledger_currency='ledger_currency',
        currency='currency',
        ledger_amount='ledger_amount',
        expected_amount='amount_captured',
        first_posted_at='first_posted_at',
        booking_deadline='booking_deadline',
        as_of='as_of',
    ) }} as recon_status,
    currency,
    amount_captured as stripe_amount,
    ledger_amount,
    synced_at as charge_synced_at,
    created_at as charge_created_at,
    status as stripe_status,
    captured as stripe_captured,
    amount_refunded as stripe_amount_refunded,
    disputed as stripe_disputed,
    customer_id,
    ledger_currency,
    ledger_entry_count,
    last_posted_at as ledger_posted_at,
    booking_deadline,
    as_of as recon_as_of
from joined
