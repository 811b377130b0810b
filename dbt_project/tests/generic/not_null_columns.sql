{#-
  None of the columns is null: dbt's `not_null` for several columns in one query. On a view that
  ranks the whole history (`rpt_break_history`, `rpt_status_changes`) each `not_null` evaluates
  the view again, ~1.7 s apiece at 540 days loaded; one scan checks them all. Every model with
  more than one such column uses it: each test is a dbt node (~30-45 ms of a nightly's `dbt
  build` however small its query) and a Dagster asset check (a planned event and an evaluation
  written by the run): merging 21 column tests into their models' took the 540-day nightly's
  `dbt build` step from 16.4 to 15.4 s (medians of 4, docs/benchmarks.md).
-#}
{% test not_null_columns(model, columns) %}
select *
from {{ model }}
where {% for column in columns %}{{ column }} is null{% if not loop.last %} or {% endif %}{% endfor %}
{% endtest %}
