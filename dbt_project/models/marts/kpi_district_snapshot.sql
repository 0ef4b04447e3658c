-- District KPIs: every district of the seed for every as-of date of kpi_province_snapshot, zeros
-- where it has nothing. An owner with products in two districts counts in each of them.
with

dates as (

    select as_of_date from {{ ref('int_as_of_dates') }}

),

districts as (

    select district_code, district_name from {{ ref('districts') }}

),

valid as (

    select * from {{ ref('int_product_status_on_date') }}
    where is_valid

),

product_counts as (

    select
        as_of_date,
        district_code,
        {{ kpi_product_counts() }}

    from valid
    group by as_of_date, district_code

),

sales_point_counts as (

    select
        dates.as_of_date,
        sales_points.district_code,
        {{ kpi_sales_point_counts('sales_points') }}

    from dates
    inner join {{ ref('int_sales_points') }} as sales_points
        on coalesce(sales_points.opened_on <= dates.as_of_date, true)
    group by dates.as_of_date, sales_points.district_code

),

final as (

    select
        dates.as_of_date,
        districts.district_code,
        districts.district_name,
        {{ kpi_snapshot_columns() }}

    from dates
    cross join districts
    left join product_counts
        on product_counts.as_of_date = dates.as_of_date
        and product_counts.district_code = districts.district_code
    left join sales_point_counts
        on sales_point_counts.as_of_date = dates.as_of_date
        and sales_point_counts.district_code = districts.district_code

)

select * from final
