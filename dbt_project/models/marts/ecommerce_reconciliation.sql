-- The district's own "listed on e-commerce" flag (len_san_tmdt) against the platform catalogue on the
-- as-of date, for the products of each district's in-use submission. Only mismatches are listed
-- (a warning for the data team, not an error).
{{ config(tags=['as_of']) }}  {# reads the as-of date: rebuilt every night (flows/transform.py ORDERS_ONLY) #}
with

products as (

    select * from {{ ref('int_products') }}
    where in_current_submission and len_san_tmdt is not null

),

on_as_of as (

    select ma_san_pham, as_of_date, is_valid, has_live_listing
    from {{ ref('int_product_status_on_date') }}
    where as_of_date = {{ as_of_date() }}

),

districts as (

    select district_code, district_name from {{ ref('districts') }}

),

compared as (

    select
        on_as_of.as_of_date,
        products.ma_san_pham,
        products.ten_san_pham as product_name,
        products.district_code,
        districts.district_name,
        products.submission_id,
        products.len_san_tmdt as reported_on_ecommerce,
        on_as_of.has_live_listing as listed_in_catalogue,
        on_as_of.is_valid

    from products
    inner join on_as_of using (ma_san_pham)
    left join districts using (district_code)

),

final as (

    select
        *,
        case
            when reported_on_ecommerce then 'reported_not_listed'
            else 'listed_not_reported'
        end as mismatch,
        case
            when reported_on_ecommerce
                then 'Huyện báo cáo sản phẩm đã lên sàn TMĐT nhưng sàn không có tin đăng còn hiệu lực'
            else 'Sàn TMĐT có tin đăng còn hiệu lực nhưng huyện báo cáo sản phẩm chưa lên sàn'
        end as message_vi

    from compared
    where reported_on_ecommerce <> listed_in_catalogue

)

select * from final
