{#
  Ordered string aggregation: `ledger_entry_ids` lists a charge's entry ids ascending (by the
  integer id, so 9 comes before 10), comma-separated. DuckDB orders inside string_agg;
  Snowflake uses listagg ... within group.
#}
{% macro string_agg_ordered(expr, order_by, sep=',') -%}
    {{ return(adapter.dispatch('string_agg_ordered', 'recon')(expr, order_by, sep)) }}
{%- endmacro %}

{% macro duckdb__string_agg_ordered(expr, order_by, sep) -%}
    string_agg({{ expr }}, '{{ sep }}' order by {{ order_by }})
{%- endmacro %}

{% macro snowflake__string_agg_ordered(expr, order_by, sep) -%}
    listagg({{ expr }}, '{{ sep }}') within group (order by {{ order_by }})
{%- endmacro %}
