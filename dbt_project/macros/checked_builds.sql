{#-
  Uniqueness checked on the keys a build wrote, sound across failed builds.

  A nightly rewrites a few thousand of the marts' keys, and `unique` over the whole table groups
  every key ever built: it was most of what a nightly's dbt build grows with history
  (docs/benchmarks.md, "Flatness"). A test configured `where: "__keys_this_build_wrote__"` asks
  instead "does any key this build wrote occur more than once in the whole table": every row of
  those keys is read, not only the rows written, so a new row that collides with an old one is
  caught. That is the whole-table answer when the table was unique before the build, which it
  was if every earlier build passed every test of the model; otherwise (one failed, was killed,
  ran the model without its tests, or there is no record) the test checks the whole table.

  The record: `<target schema>.recon_checked_builds`, one row per build and model it wrote.
  on-run-start inserts the row as unchecked for each scoped model the invocation selects, before
  anything is written; on-run-end, if the model succeeded and every test that reads it ran and
  passed, marks every row of the model checked (a build after an unchecked one checked the whole
  table, so it vouches for the earlier ones too). A build killed in between stays unchecked. Only
  `dbt build` and `dbt run` write models, so only they record; `dbt test` alone always checks
  whole tables.
-#}

{#- The `where` of a test scoped to the keys a build wrote. -#}
{% macro scope_placeholder() -%}
    {{ return('__keys_this_build_wrote__') }}
{%- endmacro %}


{% macro checked_builds_relation() -%}
    {{ return(api.Relation.create(database=target.database, schema=target.schema, identifier='recon_checked_builds')) }}
{%- endmacro %}


{#- Models with a test scoped by the placeholder, by unique id. -#}
{% macro scoped_models() -%}
    {%- set models = [] -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'test' and node.config.where == recon.scope_placeholder()
              and node.attached_node and node.attached_node not in models -%}
            {%- do models.append(node.attached_node) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(models) }}
{%- endmacro %}


{% macro writes_models() -%}
    {{ return(flags.WHICH in ['build', 'run']) }}
{%- endmacro %}


{#- on-run-start -#}
{% macro record_build_start() -%}
    {%- if execute and recon.writes_models() -%}
        {%- set rel = recon.checked_builds_relation() -%}
        {%- do run_query("create schema if not exists " ~ rel.without_identifier()) -%}
        {%- do run_query("create table if not exists " ~ rel ~ " (invocation_id varchar, model_name varchar, started_at " ~ recon.instant_type() ~ ", checked boolean)") -%}
        {%- for uid in recon.scoped_models() if uid in selected_resources -%}
            {%- do run_query("insert into " ~ rel ~ " values ('" ~ invocation_id ~ "', '" ~ graph.nodes[uid].name ~ "', " ~ recon.build_instant() ~ ", false)") -%}
        {%- endfor -%}
        {%- do adapter.commit() if target.type == 'duckdb' -%}
    {%- endif -%}
{%- endmacro %}


{#- on-run-end: `results` holds every node this invocation ran, with its status. -#}
{% macro record_build_checks(results) -%}
    {%- if execute and recon.writes_models() -%}
        {%- set status = {} -%}
        {%- for r in results -%}
            {%- do status.update({r.node.unique_id: r.status | string}) -%}
        {%- endfor -%}
        {%- set rel = recon.checked_builds_relation() -%}
        {%- for uid in recon.scoped_models() if uid in selected_resources -%}
            {%- set ns = namespace(checked=status.get(uid) == 'success') -%}
            {%- for node in graph.nodes.values() if node.resource_type == 'test' and uid in node.depends_on.nodes -%}
                {%- if status.get(node.unique_id) != 'pass' -%}{%- set ns.checked = false -%}{%- endif -%}
            {%- endfor -%}
            {#- Every build of the model, not only this one: this build's tests read the whole
                table if any earlier build was unchecked, so passing them checks those too. -#}
            {%- if ns.checked -%}
                {%- do run_query("update " ~ rel ~ " set checked = true where model_name = '" ~ graph.nodes[uid].name ~ "'") -%}
            {%- endif -%}
        {%- endfor -%}
        {%- do adapter.commit() if target.type == 'duckdb' -%}
    {%- endif -%}
{%- endmacro %}


{#- Whether every earlier build of the model is checked (and there was one): only then was the
    table unique before this build, and the keys this build wrote suffice. Counted, not ordered
    by time, so no clock decides it. -#}
{% macro earlier_builds_checked(model_name) -%}
    {%- set rel = recon.checked_builds_relation() -%}
    {%- if adapter.get_relation(database=rel.database, schema=rel.schema, identifier=rel.identifier) is none -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set q -%}
        select count(*), count(case when not checked then 1 end) from {{ rel }}
        where model_name = '{{ model_name }}' and invocation_id <> '{{ invocation_id }}'
    {%- endset -%}
    {%- set row = run_query(q).rows[0] -%}
    {{ return(row[0] > 0 and row[1] == 0) }}
{%- endmacro %}


{#- The rows holding a key this build wrote, as a predicate on the model's relation: every row
    of each charge id the build touched (the fact table is rebuilt by charge id), every version
    of each item whose history the build opened or closed one of. -#}
{% macro keys_written_predicate(relation) -%}
    {%- set name = relation.identifier | lower -%}
    {%- set id_columns = {'fct_charge_reconciliation': 'charge_id',
                          'fct_refund_reconciliation': 'refund_id',
                          'fct_fee_reconciliation': 'source_id',
                          'fct_dispute_reconciliation': 'dispute_id',
                          'fct_payout_reconciliation': 'payout_id'} -%}
    {%- if name in id_columns -%}
        {%- set id_column = id_columns[name] -%}
        {%- set touched = adapter.get_relation(database=target.database, schema='intermediate', identifier='int_recon__touched_charges') -%}
        {{ return("recon_key in (select w.recon_key from " ~ relation ~ " as w where coalesce(w." ~ id_column ~ ", '') in (select charge_id from " ~ touched ~ "))") }}
    {%- elif name == 'fct_reconciliation_history' -%}
        {%- set now = recon.build_instant() -%}
        {{ return("recon_key in (select w.recon_key from " ~ relation ~ " as w where w.valid_from = " ~ now ~ " or w.valid_to = " ~ now ~ ")") }}
    {%- else -%}
        {{ exceptions.raise_compiler_error("no rule says which keys of " ~ relation ~ " a build writes; scope its test by hand or remove '" ~ recon.scope_placeholder() ~ "'") }}
    {%- endif -%}
{%- endmacro %}


{#- The rows a test scoped by the placeholder reads: those holding the keys this build wrote,
    or every row (see the top of this file for when). Logged, so a build's log says which. -#}
{% macro keys_this_build_wrote(relation) -%}
    {%- set name = relation.identifier | lower -%}
    {%- set written_now = recon.writes_models() and model.attached_node in selected_resources -%}
    {%- if written_now and recon.earlier_builds_checked(name) -%}
        {%- do log("recon: " ~ model.name ~ " checks the keys this build wrote", info=false) -%}
        {{ return(recon.keys_written_predicate(relation)) }}
    {%- endif -%}
    {%- do log("recon: " ~ model.name ~ " checks the whole of " ~ name ~ (" (an earlier build did not pass every test of it)" if written_now else " (not written by this invocation)"), info=true) -%}
    {{ return('1 = 1') }}
{%- endmacro %}


{#- dbt's own macro (global_project/macros/materializations/tests/where_subquery.sql), with the
    placeholder resolved when the test runs (dbt's documented way to give `where` a runtime value). -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where == recon.scope_placeholder() -%}
        {%- set where = recon.keys_this_build_wrote(relation) if execute else '1 = 1' -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- else -%}
        {{ return(relation) }}
    {%- endif -%}
{%- endmacro %}
