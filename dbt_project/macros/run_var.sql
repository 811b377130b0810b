{#-
  A per-run value (the reporting window, T, as_of, the Dagster run id).

  Dagster hands them to dbt as JSON in the environment variable RECON_DBT_RUN_VARS
  (recon_assets.warehouse.dbt_vars), not as --vars: --vars are part of dbt's parse hash, so
  values that change on every run would throw away the partial parse every run. The variable is
  read only when executing: read while parsing, dbt would record it and parse the file again
  whenever it changes. By hand, `dbt build --vars '{...}'` with the same names still works.
-#}
{% macro run_var(name, default=none) -%}
    {%- if execute -%}
        {%- set run_vars = fromjson(env_var('RECON_DBT_RUN_VARS', '{}')) -%}
        {%- if run_vars is not mapping -%}
            {{ exceptions.raise_compiler_error("RECON_DBT_RUN_VARS must be a JSON object") }}
        {%- endif -%}
        {%- if name in run_vars -%}
            {{ return(run_vars[name]) }}
        {%- endif -%}
    {%- endif -%}
    {{ return(var(name, default)) }}
{%- endmacro %}
