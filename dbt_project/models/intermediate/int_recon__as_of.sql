{#-
  One row: the "as of" instant of this build and T. As of = the end (next US-Eastern midnight) of
  the latest ledger day loaded, unless the `as_of` var overrides it. NULL when no ledger day is
  loaded at all: then nothing can be called missing yet.
-#}
select
    {%- if var('as_of', none) is not none %}
    {{ recon.utc_literal(var('as_of')) }} as as_of,
    {%- else %}
    (
        select {{ recon.et_day_start(recon.date_add_days('max(partition_date)', 1)) }}
        from {{ ref('stg_ledger__entries') }}
    ) as as_of,
    {%- endif %}
    {{ recon.tolerance_days() }} as tolerance_days
