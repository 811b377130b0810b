{#- Every committed load of a dataset's day, with canonical timestamps. -#}
{%- set src = source('raw', 'load_log') -%}
select
    dataset,
    partition_date,
    load_kind,
    rows as row_count,
    run_id,
    {{ recon.utc_instant(src, 'loaded_at') }} as loaded_at
from {{ src }}
