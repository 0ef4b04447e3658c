-- Province KPIs for every month end since the first certificate and for the run's as-of date.
with

dates as (

    select as_of_date from {{ ref('int_as_of_dates') }}

),

valid as (

    select * from {{ ref('int_product_status_on_date') }}
    where is_valid

),

product_counts as (

    select
        as_of_date,
        count(*) as valid_products,
        count(*) filter (where stars = 3) as valid_products_3_star,
        count(*) filter (where stars = 4) as valid_products_4_star,
        count(*) filter (where stars = 5) as valid_products_5_star,
        count(distinct owner_key) as owners,
        count(distinct owner_key) filter (where owner_type = 'doanh_nghiep') as owners_enterprise,
        count(distinct owner_key) filter (where owner_type = 'hop_tac_xa') as owners_cooperative,
        count(distinct owner_key) filter (where owner_type = 'to_hop_tac') as owners_cooperative_group,
        count(distinct owner_key) filter (where owner_type = 'ho_kinh_doanh') as owners_household,
        count(*) filter (where is_on_ecommerce) as products_on_ecommerce,
        count(distinct district_code) as districts_with_products

    from valid
    group by as_of_date

),

sales_point_counts as (

    select
        dates.as_of_date,
        count(*) as sales_points,
        count(*) filter (where sales_points.funding = 'nha_nuoc_ho_tro') as sales_points_state_supported,
        count(*) filter (where sales_points.funding = 'xa_hoi_hoa') as sales_points_private

    from dates
    inner join {{ ref('int_sales_points') }} as sales_points
        on coalesce(sales_points.opened_on <= dates.as_of_date, true)
    group by dates.as_of_date

),

districts as (

    select count(*) as districts_total from {{ ref('districts') }}

),

final as (

    select
        dates.as_of_date,
        cast(coalesce(product_counts.valid_products, 0) as bigint) as valid_products,
        cast(coalesce(product_counts.valid_products_3_star, 0) as bigint) as valid_products_3_star,
        cast(coalesce(product_counts.valid_products_4_star, 0) as bigint) as valid_products_4_star,
        cast(coalesce(product_counts.valid_products_5_star, 0) as bigint) as valid_products_5_star,
        cast(coalesce(product_counts.owners, 0) as bigint) as owners,
        cast(coalesce(product_counts.owners_enterprise, 0) as bigint) as owners_enterprise,
        cast(coalesce(product_counts.owners_cooperative, 0) as bigint) as owners_cooperative,
        cast(coalesce(product_counts.owners_cooperative_group, 0) as bigint) as owners_cooperative_group,
        cast(coalesce(product_counts.owners_household, 0) as bigint) as owners_household,
        cast(coalesce(product_counts.products_on_ecommerce, 0) as bigint) as products_on_ecommerce,
        cast(coalesce(sales_point_counts.sales_points, 0) as bigint) as sales_points,
        cast(coalesce(sales_point_counts.sales_points_state_supported, 0) as bigint) as sales_points_state_supported,
        cast(coalesce(sales_point_counts.sales_points_private, 0) as bigint) as sales_points_private,
        cast(coalesce(product_counts.districts_with_products, 0) as bigint) as districts_with_products,
        cast(districts.districts_total as bigint) as districts_total

    from dates
    cross join districts
    left join product_counts using (as_of_date)
    left join sales_point_counts using (as_of_date)

)

select * from final
