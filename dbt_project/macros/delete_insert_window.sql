{#-
  delete+insert for the marts, widened to the whole incremental window.

  dbt's delete+insert on `unique_key='reporting_date'` deletes only the days that still have rows
  in the new data, so a day whose last item went away (an orphan ledger entry whose charge
  arrived later) would keep its stale rows. When the window vars are set, the window is deleted
  first, in the same statement batch: on Snowflake inside dbt's explicit `begin ... commit`, on
  DuckDB inside the model's transaction, so a reader never sees the window empty or half
  written. Everything else is dbt's own macro, unchanged.

  These override the adapters' `get_incremental_delete_insert_sql` through dbt's dispatch (root
  project macros come first); they act only on models keyed by reporting_date.
-#}
{% macro recon_window_delete_sql(target_relation, unique_key) -%}
    {%- set w = recon.reporting_window() -%}
    {%- if w is not none and unique_key == 'reporting_date' -%}
        delete from {{ target_relation }}
        where reporting_date >= cast('{{ w.min }}' as date)
          and reporting_date < cast('{{ w.max_exclusive }}' as date);
    {%- endif -%}
{%- endmacro %}


{% macro duckdb__get_incremental_delete_insert_sql(arg_dict) -%}
    {%- set dml = duckdb__get_delete_insert_merge_sql(
        arg_dict["target_relation"], arg_dict["temp_relation"], arg_dict["unique_key"],
        arg_dict["dest_columns"], arg_dict["incremental_predicates"]) -%}
    {{ return(recon_window_delete_sql(arg_dict["target_relation"], arg_dict["unique_key"]) ~ "\n" ~ dml) }}
{%- endmacro %}


{% macro snowflake__get_incremental_delete_insert_sql(arg_dict) -%}
    {#- default__ (not snowflake__) merge SQL: the explicit transaction is added once, here. -#}
    {%- set dml = default__get_delete_insert_merge_sql(
        arg_dict["target_relation"], arg_dict["temp_relation"], arg_dict["unique_key"],
        arg_dict["dest_columns"], arg_dict["incremental_predicates"]) -%}
    {%- set dml = recon_window_delete_sql(arg_dict["target_relation"], arg_dict["unique_key"]) ~ "\n" ~ dml -%}
    {%- if snowflake__is_catalog_linked_database(relation=config.model) -%}
        {{ return(dml) }}
    {%- else -%}
        {{ return(snowflake_dml_explicit_transaction(dml)) }}
    {%- endif -%}
{%- endmacro %}
