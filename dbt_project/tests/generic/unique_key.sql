{#-
  The column is the model's key: never null and never twice; and the `not_null` columns are
  never null either. One grouped scan and one test where `unique`, `not_null` and
  `not_null_columns` were two or three: each test is a dbt node (~50 ms of a nightly's `dbt
  build` however small its query) and a Dagster asset check (a planned event and an
  evaluation written by the run), and a test on a view evaluates the view again.
  A failing row is a key value: how many rows have it, and how many of those have a null.
-#}
{% test unique_key(model, column_name, not_null=[]) %}
{%- set any_null -%}
    {%- for c in not_null %}{{ c }} is null{% if not loop.last %} or {% endif %}{% endfor -%}
    {%- if not not_null %}1 = 0{% endif -%}
{%- endset %}
select
    {{ column_name }} as key_value,
    count(*) as key_rows,
    sum(case when {{ any_null }} then 1 else 0 end) as rows_with_nulls
from {{ model }}
group by {{ column_name }}
having count(*) > 1
    or {{ column_name }} is null
    or sum(case when {{ any_null }} then 1 else 0 end) > 0
{% endtest %}
