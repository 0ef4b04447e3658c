-- OCOP showcase and sales points as each district last reported them.
{{ config(tags=['as_of']) }}  {# reads the as-of date: rebuilt every night (flows/transform.py ORDERS_ONLY) #}
with

sales_points as (

    select * from {{ ref('int_sales_points') }}

),

final as (

    select
        sales_point_id,
        district_code,
        sales_point_name,
        address,
        commune,
        funding,
        opened_on,
        -- an unknown opening date counts as open (the point is on the district's current list)
        coalesce(opened_on <= {{ as_of_date() }}, true) as is_open,
        submission_id,
        source_file,
        sheet,
        source_row,
        {{ as_of_date() }} as as_of_date

    from sales_points

)

select * from final
