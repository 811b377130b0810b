{#-
  delete+insert for the fact table, by the charge ids the run touches.

  dbt's delete+insert on `unique_key='recon_key'` deletes only the keys that have a row in the
  new data, so an item that went away (an orphan entry whose charge arrived, an entry re-pointed
  to another charge) would keep its stale row. Every row of every touched charge id
  (int_recon__touched_charges: the charge's own row and the orphan rows naming it) is deleted
  first, in the same statement batch: on Snowflake inside dbt's explicit `begin ... commit`, on
  DuckDB inside the model's transaction, so a reader never sees an id half rebuilt. Everything
  else is dbt's own macro, unchanged.

  These override the adapters' `get_incremental_delete_insert_sql` through dbt's dispatch (root
  project macros come first); they act only on models keyed by recon_key.
-#}
{% macro recon_touched_delete_sql(target_relation, unique_key) -%}
    {#- the column holding the item's id: charge_id for the charges, refund_id for the refunds -#}
    {%- set id_column = config.get('touched_column', 'charge_id') -%}
    {%- if unique_key == 'recon_key' -%}
        delete from {{ target_relation }}
        where coalesce({{ id_column }}, '') in (select charge_id from {{ ref('int_recon__touched_charges') }});
    {%- elif config.get('restated_days') -%}
        {#- a model by day (the tie-out): every row of the days it restates, a day left with no
            row included, which delete+insert by the new rows' keys would keep -#}
        delete from {{ target_relation }}
        where reporting_date in (select reporting_date from {{ ref(config.get('restated_days')) }});
    {%- endif -%}
{%- endmacro %}


{% macro duckdb__get_incremental_delete_insert_sql(arg_dict) -%}
    {%- set dml = duckdb__get_delete_insert_merge_sql(
        arg_dict["target_relation"], arg_dict["temp_relation"], arg_dict["unique_key"],
        arg_dict["dest_columns"], arg_dict["incremental_predicates"]) -%}
    {{ return(recon_touched_delete_sql(arg_dict["target_relation"], arg_dict["unique_key"]) ~ "\n" ~ dml) }}
{%- endmacro %}


{% macro snowflake__get_incremental_delete_insert_sql(arg_dict) -%}
    {#- default__ (not snowflake__) merge SQL: the explicit transaction is added once, here. -#}
    {%- set dml = default__get_delete_insert_merge_sql(
        arg_dict["target_relation"], arg_dict["temp_relation"], arg_dict["unique_key"],
        arg_dict["dest_columns"], arg_dict["incremental_predicates"]) -%}
    {%- set dml = recon_touched_delete_sql(arg_dict["target_relation"], arg_dict["unique_key"]) ~ "\n" ~ dml -%}
    {%- if snowflake__is_catalog_linked_database(relation=config.model) -%}
        {{ return(dml) }}
    {%- else -%}
        {{ return(snowflake_dml_explicit_transaction(dml)) }}
    {%- endif -%}
{%- endmacro %}
