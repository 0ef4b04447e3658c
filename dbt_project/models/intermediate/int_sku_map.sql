-- SKU -> OCOP product: from the newest catalogue listing of the SKU naming a product the districts
-- reported. A SKU without such a listing is unmapped (its sales are kept and flagged).
with

listings as (

    select * from {{ ref('stg_ecommerce__listings') }}
    where sku is not null and ma_san_pham is not null

),

products as (

    select ma_san_pham, district_code from {{ ref('int_products') }}

),

final as (

    select
        listings.sku,
        listings.ma_san_pham,
        products.district_code,
        listings.listing_id

    from listings
    inner join products using (ma_san_pham)
    qualify row_number() over (partition by listings.sku order by listings.updated_at desc, listings.listing_id desc) = 1

)

select * from final
