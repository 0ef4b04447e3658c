{{
    config(
        materialized='incremental',
        unique_key='order_month',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns'
    )
}}
-- Sales by month x product x district x channel. Incremental by whole months: a night recomputes only
-- the months holding order lines that fct_order_line (re)wrote since this table was last built
-- (delete+insert on order_month replaces those months entirely).
with

lines as (

    select * from {{ ref('fct_order_line') }}
    where order_date is not null
    {% if is_incremental() %}
      and date_trunc('month', order_date) in (
          select distinct date_trunc('month', order_date)
          from {{ ref('fct_order_line') }}
          where dbt_loaded_at > (select coalesce(max(source_loaded_at), timestamptz '1900-01-01 00:00:00+00') from {{ this }})
      )
    {% endif %}

),

final as (

    select
        md5(
            strftime(date_trunc('month', order_date), '%Y-%m') || '|' || coalesce(ma_san_pham, '') || '|'
            || coalesce(district_code, '') || '|' || coalesce(channel, '')
        ) as sales_monthly_id,
        cast(date_trunc('month', order_date) as date) as order_month,
        strftime(date_trunc('month', order_date), '%Y-%m') as year_month,
        ma_san_pham,
        district_code,
        channel,
        cast(count(*) as bigint) as lines,
        cast(count(*) filter (where status = 'completed') as bigint) as completed_lines,
        cast(coalesce(sum(qty) filter (where status = 'completed'), 0) as bigint) as qty,
        cast(coalesce(sum(revenue_vnd), 0) as bigint) as revenue_vnd,
        bool_or(is_unmapped_sku) as is_unmapped_sku,
        max(dbt_loaded_at) as source_loaded_at

    from lines
    group by all

)

select * from final
