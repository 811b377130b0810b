{#-
  Every charge row of the fact table names a charge Stripe has: the relationships check, scoped
  to the rows this build wrote. A build deletes and inserts only the rows of the ids it touched
  (int_recon__touched_charges), so rows it did not touch were checked by the build that wrote
  them; a first build or a full refresh touches every id. The generic relationships test
  against stg_stripe__charges ranked every version of every charge ever loaded on each nightly
  (1.35 s of a 9 s dbt build at 540 days loaded, and growing).
-#}
select f.recon_key, f.charge_id
from {{ ref('fct_charge_reconciliation') }} as f
inner join {{ ref('int_recon__touched_charges') }} as t
    on t.charge_id = f.charge_id
left join {{ ref('int_stripe__charges_in_build') }} as s
    on s.charge_id = f.charge_id
where f.recon_key like 'charge:%'
  and s.charge_id is null
