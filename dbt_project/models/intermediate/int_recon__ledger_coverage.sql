{#-
  Which ledger days are loaded, as gap-free islands (a day loaded whole, empty or not, counts;
  a load by id does not). A charge created on a day of an island has the ledger complete until
  `covered_until` (the next US-Eastern midnight after the island's last day): that instant is
  its "as of". A charge on a day outside every island has no as-of at all: nothing can be
  called missing for it yet. Islands are "gaps and islands": day minus its rank is constant
  along consecutive days.
-#}
with days as (

    select distinct partition_date
    from {{ ref('stg_recon__load_log') }}
    where dataset = 'ledger_entries'
      and load_kind = 'day'

),

ranked as (

    select
        partition_date,
        {{ recon.date_add_days('partition_date', '-1 * cast(row_number() over (order by partition_date) as integer)') }} as island
    from days

)

select
    min(partition_date) as first_day,
    max(partition_date) as last_day,
    {{ recon.date_add_days('max(partition_date)', 1) }} as end_day_exclusive,
    {{ recon.et_day_start(recon.date_add_days('max(partition_date)', 1)) }} as covered_until
from ranked
group by island
