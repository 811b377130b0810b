{#-
  Models land in exactly the schema they configure (`staging`, `intermediate`, `marts`), not
  dbt's default `<target schema>_<custom>`: ops, the loader and the Dagster report read
  `marts.fct_charge_reconciliation` by that name in every environment.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
