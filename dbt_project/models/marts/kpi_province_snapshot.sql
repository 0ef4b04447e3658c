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
        {{ kpi_product_counts() }},
        count(distinct district_code) as districts_with_products

    from valid
    group by as_of_date

),

sales_point_counts as (

    select
        dates.as_of_date,
        {{ kpi_sales_point_counts('sales_points') }}

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
        {{ kpi_snapshot_columns() }},
        cast(coalesce(product_counts.districts_with_products, 0) as bigint) as districts_with_products,
        cast(districts.districts_total as bigint) as districts_total

    from dates
    cross join districts
    left join product_counts using (as_of_date)
    left join sales_point_counts using (as_of_date)

)

select * from final
