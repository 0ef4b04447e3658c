{{ config(materialized='table') }}
-- as-of date x product: valid on D (recognised_on <= D < expires_on for some certificate), stars of the
-- newest certificate valid on D, owner and district, and whether it is on e-commerce on D (a catalogue
-- listing for it listed on or before D and not delisted by D; drafts never).
with

dates as (

    select as_of_date from {{ ref('int_as_of_dates') }}

),

products as (

    select ma_san_pham, district_code, owner_key from {{ ref('int_products') }}

),

owners as (

    select owner_key, owner_type from {{ ref('int_owners') }}

),

certificates as (

    select certificate_id, ma_san_pham, stars, recognised_on, expires_on from {{ ref('int_certificates') }}

),

listings as (

    select listing_id, ma_san_pham, status, listed_on, updated_on
    from {{ ref('stg_ecommerce__listings') }}
    where ma_san_pham is not null

),

valid_certificate as (

    select
        dates.as_of_date,
        certificates.ma_san_pham,
        certificates.certificate_id,
        certificates.stars

    from dates
    inner join certificates
        on {{ is_valid_on('certificates.recognised_on', 'certificates.expires_on', 'dates.as_of_date') }}
    qualify row_number() over (
        partition by dates.as_of_date, certificates.ma_san_pham
        order by certificates.recognised_on desc, certificates.stars desc nulls last
    ) = 1

),

live_listing as (

    select
        dates.as_of_date,
        listings.ma_san_pham,
        count(*) as live_listings

    from dates
    inner join listings on {{ listing_is_live_on('listings', 'dates.as_of_date') }}
    group by all

),

final as (

    select
        dates.as_of_date,
        products.ma_san_pham,
        products.district_code,
        products.owner_key,
        owners.owner_type,
        valid_certificate.certificate_id is not null as is_valid,
        valid_certificate.certificate_id,
        cast(valid_certificate.stars as integer) as stars,
        coalesce(live_listing.live_listings, 0) > 0 as has_live_listing,
        valid_certificate.certificate_id is not null and coalesce(live_listing.live_listings, 0) > 0 as is_on_ecommerce

    from dates
    cross join products
    left join owners using (owner_key)
    left join valid_certificate
        on valid_certificate.as_of_date = dates.as_of_date
        and valid_certificate.ma_san_pham = products.ma_san_pham
    left join live_listing
        on live_listing.as_of_date = dates.as_of_date
        and live_listing.ma_san_pham = products.ma_san_pham

)

select * from final
