{#-
  Time-zone arithmetic, the SQL that differs most between DuckDB and Snowflake.

  Canonical instant type after staging:
    - DuckDB: TIMESTAMPTZ (an absolute instant; comparisons never depend on the session TimeZone)
    - Snowflake: TIMESTAMP_NTZ holding the UTC wall clock (the usual Snowflake convention)
  Reporting days are US-Eastern (America/New_York) calendar dates; DST days have 23 or 25 hours,
  so every conversion goes through the zone database, never a fixed offset.
-#}

{# The data type of a raw column, read from the warehouse at run time (none while parsing). #}
{% macro raw_column_type(relation, column_name) -%}
    {%- if not execute -%}{{ return(none) }}{%- endif -%}
    {%- for col in adapter.get_columns_in_relation(relation) -%}
        {%- if col.name | lower == column_name | lower -%}
            {{ return(col.data_type | upper) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}


{#
  A raw UTC timestamp column as the canonical instant. The loader writes TIMESTAMPTZ on DuckDB
  and TIMESTAMP_TZ or TIMESTAMP_NTZ (UTC wall clock) on Snowflake; reading the column's type
  keeps a bare cast (which would use the session time zone) out of the SQL. `alias` qualifies
  the column where the relation is read twice (a self-join).
#}
{% macro utc_instant(relation, column_name, alias=none) -%}
    {{ return(adapter.dispatch('utc_instant', 'recon')(relation, column_name, alias)) }}
{%- endmacro %}

{% macro duckdb__utc_instant(relation, column_name, alias=none) -%}
    {%- set dtype = recon.raw_column_type(relation, column_name) -%}
    {%- set col = column_name if alias is none else alias ~ '.' ~ column_name -%}
    {%- if dtype is none or 'TIME ZONE' in dtype or dtype == 'TIMESTAMPTZ' -%}
        {{ col }}
    {%- elif dtype.startswith('TIMESTAMP') -%}
        timezone('UTC', {{ col }})
    {%- else -%}
        {{ exceptions.raise_compiler_error("raw column " ~ column_name ~ " of " ~ relation ~ " has type " ~ dtype ~ ", expected a timestamp") }}
    {%- endif -%}
{%- endmacro %}

{% macro snowflake__utc_instant(relation, column_name, alias=none) -%}
    {%- set dtype = recon.raw_column_type(relation, column_name) -%}
    {%- set col = column_name if alias is none else alias ~ '.' ~ column_name -%}
    {%- if dtype is not none and 'NTZ' in dtype -%}
        {{ col }}
    {%- else -%}
        cast(convert_timezone('UTC', {{ col }}) as timestamp_ntz)
    {%- endif -%}
{%- endmacro %}


{# The US-Eastern calendar date of a canonical instant. #}
{% macro et_date(instant) -%}
    {{ return(adapter.dispatch('et_date', 'recon')(instant)) }}
{%- endmacro %}

{% macro duckdb__et_date(instant) -%}
    {#- timezone(zone, TIMESTAMPTZ) gives the wall clock in `zone`, whatever the session zone. -#}
    cast(timezone('America/New_York', {{ instant }}) as date)
{%- endmacro %}

{% macro snowflake__et_date(instant) -%}
    cast(convert_timezone('UTC', 'America/New_York', {{ instant }}) as date)
{%- endmacro %}


{#- The UTC calendar date of an instant: the day of a field Stripe sends as a date (a
    payout's `arrival_date`, 00:00 UTC of the bank's date), never a US-Eastern day. -#}
{% macro utc_date(instant) -%}
    {{ return(adapter.dispatch('utc_date', 'recon')(instant)) }}
{%- endmacro %}

{% macro duckdb__utc_date(instant) -%}
    cast(timezone('UTC', {{ instant }}) as date)
{%- endmacro %}

{% macro snowflake__utc_date(instant) -%}
    cast({{ instant }} as date)
{%- endmacro %}


{# The instant a US-Eastern date starts (its ET midnight), as a canonical instant. #}
{% macro et_day_start(date_expr) -%}
    {{ return(adapter.dispatch('et_day_start', 'recon')(date_expr)) }}
{%- endmacro %}

{% macro duckdb__et_day_start(date_expr) -%}
    {#- timezone(zone, TIMESTAMP) reads the wall clock as local time in `zone`: a TIMESTAMPTZ. -#}
    timezone('America/New_York', cast({{ date_expr }} as timestamp))
{%- endmacro %}

{% macro snowflake__et_day_start(date_expr) -%}
    convert_timezone('America/New_York', 'UTC', cast({{ date_expr }} as timestamp_ntz))
{%- endmacro %}


{# A date plus whole days (a date). #}
{% macro date_add_days(date_expr, days) -%}
    {{ return(adapter.dispatch('date_add_days', 'recon')(date_expr, days)) }}
{%- endmacro %}

{% macro duckdb__date_add_days(date_expr, days) -%}
    cast({{ date_expr }} + to_days(cast({{ days }} as integer)) as date)
{%- endmacro %}

{% macro snowflake__date_add_days(date_expr, days) -%}
    dateadd(day, {{ days }}, {{ date_expr }})
{%- endmacro %}


{#
  An instant plus whole days, where a day is exactly 24 hours: the tolerance T is a duration, so
  "created + T" must not stretch or shrink across a DST change (DuckDB's `+ interval 'n day'` on a
  TIMESTAMPTZ follows the session zone's calendar; hours never do).
#}
{% macro add_days(instant, days) -%}
    {{ return(adapter.dispatch('add_days', 'recon')(instant, days)) }}
{%- endmacro %}

{% macro duckdb__add_days(instant, days) -%}
    ({{ instant }} + to_hours(cast(24 * ({{ days }}) as bigint)))
{%- endmacro %}

{% macro snowflake__add_days(instant, days) -%}
    dateadd(hour, 24 * ({{ days }}), {{ instant }})
{%- endmacro %}


{#
  An ISO-8601 instant string with an explicit offset ('Z' or +hh:mm) as a canonical instant.
  Strings without an offset are refused: their meaning would depend on the session time zone.
#}
{% macro utc_literal(iso_string) -%}
    {%- set s = iso_string | string | trim -%}
    {%- if not modules.re.search('(Z|[+-][0-9][0-9]:?[0-9][0-9])$', s) -%}
        {{ exceptions.raise_compiler_error("var as_of must be an ISO-8601 instant with an explicit offset (e.g. 2024-03-11T04:00:00+00:00), got '" ~ s ~ "'") }}
    {%- endif -%}
    {%- if s.endswith('Z') -%}{%- set s = s[:-1] ~ '+00:00' -%}{%- endif -%}
    {{ return(adapter.dispatch('utc_literal', 'recon')(s)) }}
{%- endmacro %}

{% macro duckdb__utc_literal(s) -%}
    cast('{{ s }}' as timestamptz)
{%- endmacro %}

{% macro snowflake__utc_literal(s) -%}
    cast(convert_timezone('UTC', to_timestamp_tz('{{ s }}')) as timestamp_ntz)
{%- endmacro %}


{#- This build's instant (dbt's run_started_at) as a literal: the history's valid_from /
    valid_to, and what the checks compare them with, must be the same value. -#}
{% macro build_instant() -%}
    {{ return(recon.utc_literal(run_started_at.isoformat())) }}
{%- endmacro %}


{#- An instant a query returned (DuckDB: aware; Snowflake's TIMESTAMP_NTZ: naive UTC) as a
    literal, to write a value read at compile time into the SQL as a constant. -#}
{% macro instant_literal(value) -%}
    {{ return(recon.utc_literal(value.isoformat() ~ ('+00:00' if value.tzinfo is none else ''))) }}
{%- endmacro %}


{# The canonical instant type, for typed NULLs (an untyped NULL column has no reliable type). #}
{% macro instant_type() -%}
    {{ return(adapter.dispatch('instant_type', 'recon')()) }}
{%- endmacro %}

{% macro duckdb__instant_type() -%}timestamptz{%- endmacro %}

{% macro snowflake__instant_type() -%}timestamp_ntz{%- endmacro %}


{#- Whole days from instant a to instant b (b later), counted by the warehouse's day boundaries. -#}
{% macro days_between(a, b) -%}
    {{ return(adapter.dispatch('days_between', 'recon')(a, b)) }}
{%- endmacro %}

{% macro duckdb__days_between(a, b) -%}
    cast(floor((epoch({{ b }}) - epoch({{ a }})) / 86400) as bigint)
{%- endmacro %}

{% macro snowflake__days_between(a, b) -%}
    floor(datediff(second, {{ a }}, {{ b }}) / 86400)
{%- endmacro %}


{#- The instant a query runs, in the adapter's instant type. -#}
{% macro now_instant() -%}
    {{ return(adapter.dispatch('now_instant', 'recon')()) }}
{%- endmacro %}

{% macro duckdb__now_instant() -%}now(){%- endmacro %}

{% macro snowflake__now_instant() -%}cast(convert_timezone('UTC', current_timestamp()) as timestamp_ntz){%- endmacro %}
