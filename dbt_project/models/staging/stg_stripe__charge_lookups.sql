{#- The latest look-up by id of each charge a ledger entry named and the warehouse lacked. -#}
{%- set src = source('raw', 'stripe_charge_lookups') -%}
with ranked as (

    select
        charge_id,
        result as lookup_result,
        detail as lookup_detail,
        run_id,
        {{ recon.utc_instant(src, 'looked_up_at') }} as looked_up_at,
        row_number() over (partition by charge_id order by looked_up_at desc, result) as version_rank
    from {{ src }}

)

select charge_id, lookup_result, lookup_detail, run_id, looked_up_at
from ranked
where version_rank = 1
