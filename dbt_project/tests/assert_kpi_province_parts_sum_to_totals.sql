-- Province KPIs: 3 + 4 + 5 stars = valid products; owner types sum to owners; state + private =
-- sales points; products on e-commerce <= valid products; districts with products <= districts total.
select *
from {{ ref('kpi_province_snapshot') }}
where valid_products_3_star + valid_products_4_star + valid_products_5_star <> valid_products
   or owners_enterprise + owners_cooperative + owners_cooperative_group + owners_household <> owners
   or sales_points_state_supported + sales_points_private <> sales_points
   or products_on_ecommerce > valid_products
   or owners > valid_products
   or districts_with_products > districts_total
