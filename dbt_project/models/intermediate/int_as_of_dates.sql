-- The dates the KPI snapshots are computed for: every month end from the first certificate's month
-- up to the run's as-of date, plus the as-of date itself.
{{ config(tags=['as_of']) }}  {# reads the as-of date: rebuilt every night (flows/transform.py ORDERS_ONLY) #}
with

run_date as (

    select {{ as_of_date() }} as as_of_date

),

bounds as (

    select
        run_date.as_of_date,
        coalesce(
            date_trunc('month', (select min(recognised_on) from {{ ref('int_certificates') }})),
            date_trunc('month', run_date.as_of_date)
        ) as first_month

    from run_date

),

month_ends as (

    select cast(last_day(cast(month_start as date)) as date) as as_of_date
    from bounds,
        unnest(generate_series(cast(bounds.first_month as timestamp), cast(bounds.as_of_date as timestamp), interval 1 month)) as t(month_start)

),

dates as (

    select as_of_date from month_ends
    where as_of_date <= (select as_of_date from run_date)
    union
    select as_of_date from run_date

),

final as (

    select
        dates.as_of_date,
        dates.as_of_date = last_day(dates.as_of_date) as is_month_end,
        dates.as_of_date = (select as_of_date from run_date) as is_run_date

    from dates

)

select * from final
