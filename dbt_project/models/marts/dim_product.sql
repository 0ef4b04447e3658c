-- One row per OCOP product ever certified in an accepted submission; attributes from the newest
-- accepted submission listing it, certificate state on the run's as-of date.
{{ config(tags=['as_of']) }}  {# reads the as-of date: rebuilt every night (flows/transform.py ORDERS_ONLY) #}
with

products as (

    select * from {{ ref('int_products') }}

),

product_groups as (

    select group_code, group_name from {{ ref('product_groups') }}

),

certificates as (

    select
        ma_san_pham,
        min(recognised_on) as first_recognised_on,
        count(*) as certificates,
        max_by(certificate_id, certificate_rank = 1) as latest_certificate_id,
        max_by(stars, certificate_rank = 1) as latest_stars,
        max_by(expires_on, certificate_rank = 1) as latest_expires_on

    from {{ ref('int_certificates') }}
    group by ma_san_pham

),

on_as_of as (

    select * from {{ ref('int_product_status_on_date') }}
    where as_of_date = {{ as_of_date() }}

),

final as (

    select
        products.ma_san_pham,
        products.ten_san_pham as product_name,
        products.nhom_san_pham as product_group_code,
        product_groups.group_name as product_group_name,
        products.nhom_san_pham_goc as product_group_original,
        products.district_code,
        products.owner_key,
        products.xa_phuong as commune,
        products.len_san_tmdt as reported_on_ecommerce,
        products.lang_nghe as is_craft_village,
        products.chu_the_da_tap_huan as owner_trained,
        products.kenh_hien_dai as sold_in_modern_channels,
        products.ghi_chu as note,
        certificates.first_recognised_on,
        cast(certificates.certificates as bigint) as certificates,
        certificates.latest_certificate_id,
        cast(certificates.latest_stars as integer) as latest_stars,
        certificates.latest_expires_on,
        coalesce(on_as_of.is_valid, false) as is_valid,
        cast(on_as_of.stars as integer) as stars,
        on_as_of.certificate_id as valid_certificate_id,
        coalesce(on_as_of.is_on_ecommerce, false) as is_on_ecommerce,
        products.in_current_submission,
        products.submission_id,
        products.period as submission_period,
        {{ as_of_date() }} as as_of_date

    from products
    left join product_groups on product_groups.group_code = products.nhom_san_pham
    left join certificates using (ma_san_pham)
    left join on_as_of using (ma_san_pham)

)

select * from final
