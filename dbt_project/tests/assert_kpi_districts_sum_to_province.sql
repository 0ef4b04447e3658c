-- At every as-of date, the district table adds up to the province table for the additive indicators.
-- Owners are not additive (an owner identified by tax number may own products in two districts):
-- the districts' sum is at least the province's count. Districts with products must match too.
with

districts as (

    select
        as_of_date,
        sum(valid_products) as valid_products,
        sum(valid_products_3_star) as valid_products_3_star,
        sum(valid_products_4_star) as valid_products_4_star,
        sum(valid_products_5_star) as valid_products_5_star,
        sum(products_on_ecommerce) as products_on_ecommerce,
        sum(sales_points) as sales_points,
        sum(sales_points_state_supported) as sales_points_state_supported,
        sum(sales_points_private) as sales_points_private,
        sum(owners) as owners,
        count(*) filter (where valid_products > 0) as districts_with_products,
        count(*) as districts

    from {{ ref('kpi_district_snapshot') }}
    group by as_of_date

)

select province.as_of_date
from {{ ref('kpi_province_snapshot') }} as province
full outer join districts using (as_of_date)
where districts.as_of_date is null
   or province.as_of_date is null
   or districts.valid_products <> province.valid_products
   or districts.valid_products_3_star <> province.valid_products_3_star
   or districts.valid_products_4_star <> province.valid_products_4_star
   or districts.valid_products_5_star <> province.valid_products_5_star
   or districts.products_on_ecommerce <> province.products_on_ecommerce
   or districts.sales_points <> province.sales_points
   or districts.sales_points_state_supported <> province.sales_points_state_supported
   or districts.sales_points_private <> province.sales_points_private
   or districts.owners < province.owners
   or districts.districts_with_products <> province.districts_with_products
   or districts.districts <> province.districts_total
