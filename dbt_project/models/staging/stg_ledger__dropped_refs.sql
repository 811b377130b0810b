{#- Charge ids a ledger load took a `charge` entry away from, with when. -#}
{%- set src = source('raw', 'ledger_dropped_refs') -%}
select
    external_ref as charge_id,
    entry_id,
    run_id,
    {{ recon.utc_instant(src, 'loaded_at') }} as loaded_at
from {{ src }}
