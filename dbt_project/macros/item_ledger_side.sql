{#-
  An item's Stripe side joined to its ledger side, as every item type's rules need it: the
  booking deadline (`deadline_from` + T), "as of" (the `as_of` var, else the end of the
  gap-free run of loaded ledger days holding the item's `day`, int_recon__ledger_coverage), and
  the item's standing ledger entries (int_ledger__entries_by_item, net of reversals, of
  `item_type`, naming `id_column`). Returns a select of every column of `items` plus those.
-#}
{% macro item_ledger_side(items, item_type, id_column, day, deadline_from) -%}
select
    s.*,
    {{ recon.add_days('s.' ~ deadline_from, recon.tolerance_days()) }} as booking_deadline,
    {%- if recon.run_var('as_of') is not none %}
    {{ recon.utc_literal(recon.run_var('as_of')) }} as as_of,
    {%- else %}
    cov.covered_until as as_of,
    {%- endif %}
    coalesce(l.ledger_entry_count, 0) as ledger_entry_count,
    l.ledger_entry_ids,
    l.ledger_amount,
    l.ledger_currency,
    l.first_posted_at,
    l.last_posted_at
from {{ items }} as s
left join {{ ref('int_recon__ledger_coverage') }} as cov
    on {{ day }} >= cov.first_day
    and {{ day }} < cov.end_day_exclusive
left join {{ ref('int_ledger__entries_by_item') }} as l
    on l.item_type = '{{ item_type }}'
    and l.item_id = s.{{ id_column }}
{%- endmacro %}


{#-
  The item a ledger entry stands for, within its type: the object it names (`external_ref`),
  except a `dispute` entry, which is one of the dispute's two movements by its sign (signed as
  the money moved, docs/design.md "Disputes"): negative is the withdrawal (`dp_...#withdrawal`),
  positive the reinstatement of a won dispute (`dp_...#reinstatement`). The sign is the entry's
  own amount: a reversal is netted into the entry it cancels, never an entry of its own here.
-#}
{% macro ledger_item_id(entry_type, external_ref, amount) -%}
case
    when {{ entry_type }} = 'dispute'
        then {{ external_ref }} || case when {{ amount }} < 0 then '#withdrawal' else '#reinstatement' end
    else {{ external_ref }}
end
{%- endmacro %}


{#-
  The `when` branches that judge an orphan ledger entry by what Stripe said when the id it
  names was looked up (stg_stripe__charge_lookups as `lookup`), after each type's own branches:
  no id at all or a 404 is `missing_in_stripe`, a record that failed validation
  `unreadable_in_stripe`, not looked up yet `pending_stripe_lookup` (never a break made by a
  gap). One place for every item type's orphans (charges, refunds, payouts, fees, disputes).
-#}
{% macro orphan_lookup_status(external_ref, lookup) -%}
            when coalesce({{ external_ref }}, '') = '' then 'missing_in_stripe'
            when {{ lookup }}.lookup_result = 'not_found' then 'missing_in_stripe'
            when {{ lookup }}.lookup_result = 'quarantined' then 'unreadable_in_stripe'
            else 'pending_stripe_lookup'
{%- endmacro %}
{#- the entry's id and its reversals' (ascending), as an orphan item lists them -#}
{% macro orphan_entry_ids(entry) -%}
        case
            when {{ entry }}.reversal_ids is null then cast({{ entry }}.entry_id as varchar)
            else cast({{ entry }}.entry_id as varchar) || ',' || {{ entry }}.reversal_ids
        end
{%- endmacro %}
