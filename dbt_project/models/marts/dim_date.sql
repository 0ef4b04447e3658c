-- Calendar covering certificates (decision to expiry), orders and the as-of date, whole years.
{{ config(tags=['as_of']) }}  {# reads the as-of date: rebuilt every night (flows/transform.py ORDERS_ONLY) #}
with

bounds as (

    select
        least(
            (select min(recognised_on) from {{ ref('int_certificates') }}),
            (select min(order_date) from {{ ref('fct_order_line') }}),
            {{ as_of_date() }}
        ) as first_day,
        greatest(
            (select max(expires_on) from {{ ref('int_certificates') }}),
            (select max(order_date) from {{ ref('fct_order_line') }}),
            {{ as_of_date() }}
        ) as last_day

),

days as (

    select cast(d as date) as date_day
    from bounds,
        unnest(generate_series(
            cast(date_trunc('year', bounds.first_day) as timestamp),
            cast(date_trunc('year', bounds.last_day) + interval 1 year - interval 1 day as timestamp),
            interval 1 day
        )) as t(d)

),

final as (

    select
        date_day,
        cast(year(date_day) as integer) as year,
        cast(quarter(date_day) as integer) as quarter,
        cast(month(date_day) as integer) as month,
        cast(day(date_day) as integer) as day_of_month,
        strftime(date_day, '%Y-%m') as year_month,
        cast(date_trunc('month', date_day) as date) as month_start,
        cast(last_day(date_day) as date) as month_end,
        'Tháng ' || cast(month(date_day) as varchar) as month_name_vi,
        cast(isodow(date_day) as integer) as iso_day_of_week,
        case isodow(date_day)
            when 1 then 'Thứ Hai' when 2 then 'Thứ Ba' when 3 then 'Thứ Tư' when 4 then 'Thứ Năm'
            when 5 then 'Thứ Sáu' when 6 then 'Thứ Bảy' else 'Chủ Nhật'
        end as day_name_vi,
        isodow(date_day) >= 6 as is_weekend,
        date_day = last_day(date_day) as is_month_end,
        month(date_day) = 12 and day(date_day) = 31 as is_year_end

    from days

)

select * from final
