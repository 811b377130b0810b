{#-
  The incremental window of the marts, from the run vars (`run_var`, recon_assets.warehouse.dbt_vars):
  `min_reporting_date` (inclusive) and `max_reporting_date_exclusive`, US-Eastern dates.
  Half-open on purpose: a range is `>= min and < max`, never `between`.
  Without both vars there is no window and a build covers every day.
-#}
{% macro reporting_window() -%}
    {%- set lo = recon.run_var('min_reporting_date') -%}
    {%- set hi = recon.run_var('max_reporting_date_exclusive') -%}
    {%- if lo is none and hi is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if lo is none or hi is none -%}
        {{ exceptions.raise_compiler_error("vars min_reporting_date and max_reporting_date_exclusive go together; got only one") }}
    {%- endif -%}
    {%- set date_re = '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' -%}
    {%- if not modules.re.match(date_re, lo | string) or not modules.re.match(date_re, hi | string) -%}
        {{ exceptions.raise_compiler_error("reporting window vars must be ISO dates (YYYY-MM-DD), got " ~ lo ~ " and " ~ hi) }}
    {%- endif -%}
    {%- if (hi | string) <= (lo | string) -%}
        {{ exceptions.raise_compiler_error("max_reporting_date_exclusive (" ~ hi ~ ") must be after min_reporting_date (" ~ lo ~ ")") }}
    {%- endif -%}
    {{ return({'min': lo | string, 'max_exclusive': hi | string}) }}
{%- endmacro %}


{# T, the tolerance in days, validated as a non-negative integer. #}
{% macro tolerance_days() -%}
    {%- set raw = recon.run_var('tolerance_days', 3) -%}
    {%- if not modules.re.match('^[0-9]+$', raw | string) -%}
        {{ exceptions.raise_compiler_error("var tolerance_days must be a non-negative integer, got " ~ raw) }}
    {%- endif -%}
    {{ return(raw | int) }}
{%- endmacro %}


{# Break statuses: everything except matched, not_booked and the pending ones. #}
{% macro is_break(status_column) -%}
    ({{ status_column }} not in ('matched', 'not_booked', 'pending_in_stripe', 'pending_in_ledger', 'pending_stripe_lookup'))
{%- endmacro %}
