-- District KPIs: the same part/total identities as the province table, per district and date.
select *
from {{ ref('kpi_district_snapshot') }}
where valid_products_3_star + valid_products_4_star + valid_products_5_star <> valid_products
   or owners_enterprise + owners_cooperative + owners_cooperative_group + owners_household <> owners
   or sales_points_state_supported + sales_points_private <> sales_points
   or products_on_ecommerce > valid_products
   or owners > valid_products
