-- Products whose current certificate (the newest valid on the as-of date) expires within the next
-- 180 days (var expiring_within_days): the ones to renew.
{{ config(tags=['as_of']) }}  {# reads the as-of date: rebuilt every night (flows/transform.py ORDERS_ONLY) #}
with

current_certificates as (

    select as_of_date, ma_san_pham, certificate_id, owner_key
    from {{ ref('int_product_status_on_date') }}
    where as_of_date = {{ as_of_date() }} and is_valid

),

certificates as (

    select * from {{ ref('int_certificates') }}

),

products as (

    select ma_san_pham, ten_san_pham from {{ ref('int_products') }}

),

owners as (

    select owner_key, owner_name from {{ ref('int_owners') }}

),

districts as (

    select district_code, district_name from {{ ref('districts') }}

),

final as (

    select
        current_certificates.as_of_date,
        certificates.certificate_id,
        certificates.ma_san_pham,
        products.ten_san_pham as product_name,
        certificates.district_code,
        districts.district_name,
        current_certificates.owner_key,
        owners.owner_name,
        cast(certificates.stars as integer) as stars,
        certificates.decision_no,
        certificates.recognised_on,
        certificates.expires_on,
        cast(date_diff('day', current_certificates.as_of_date, certificates.expires_on) as integer) as days_to_expiry

    from current_certificates
    inner join certificates using (certificate_id)
    left join products on products.ma_san_pham = certificates.ma_san_pham
    left join owners on owners.owner_key = current_certificates.owner_key
    left join districts on districts.district_code = certificates.district_code
    where certificates.expires_on <= current_certificates.as_of_date + to_days({{ var('expiring_within_days', 180) }})

)

select * from final
