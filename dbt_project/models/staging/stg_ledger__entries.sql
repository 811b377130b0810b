{#-
  One row per ledger entry (the loader keeps one per id already; the dedupe costs little and keeps
  a double load from double-counting). entry_type is lower-cased, currency upper-cased ISO.
-#}
{%- set src = source('raw', 'ledger_entries') -%}

with ranked as (

    select
        id as entry_id,
        lower(entry_type) as entry_type,
        external_ref,
        account,
        amount_minor,
        upper(currency) as currency,
        {{ recon.utc_instant(src, 'posted_at') }} as posted_at,
        {{ recon.utc_instant(src, 'created_at') }} as created_at,
        {{ recon.utc_instant(src, 'updated_at') }} as updated_at,
        _partition_date as partition_date,
        {{ recon.utc_instant(src, '_synced_at') }} as synced_at,
        _run_id as run_id,
        {{ recon.utc_instant(src, '_loaded_at') }} as loaded_at,
        row_number() over (
            partition by id
            order by _synced_at desc, updated_at desc, _loaded_at desc
        ) as version_rank

    from {{ src }}

)

select
    entry_id,
    entry_type,
    external_ref,
    account,
    amount_minor,
    currency,
    posted_at,
    {{ recon.et_date('posted_at') }} as posted_date_et,
    created_at,
    updated_at,
    partition_date,
    synced_at,
    run_id,
    loaded_at
from ranked
where version_rank = 1
