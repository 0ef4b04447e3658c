-- One row per OCOP certificate (ma_san_pham + decision date), accumulated over all accepted submissions.
{{ config(tags=['as_of']) }}  {# reads the as-of date: rebuilt every night (flows/transform.py ORDERS_ONLY) #}
with

certificates as (

    select * from {{ ref('int_certificates') }}

),

products as (

    select ma_san_pham, nhom_san_pham, owner_key from {{ ref('int_products') }}

),

current_on_as_of as (

    select certificate_id
    from {{ ref('int_product_status_on_date') }}
    where as_of_date = {{ as_of_date() }} and is_valid

),

final as (

    select
        certificates.certificate_id,
        certificates.ma_san_pham,
        certificates.district_code,
        cast(certificates.stars as integer) as stars,
        certificates.score,
        certificates.decision_no,
        certificates.level,
        certificates.kind,
        certificates.five_star_potential,
        certificates.recognised_on,
        certificates.expires_on,
        certificates.submission_id,
        certificates.source_file,
        certificates.sheet,
        certificates.source_row,
        products.nhom_san_pham as product_group_code,
        products.owner_key,
        certificates.certificate_rank = 1 as is_latest,
        {{ is_valid_on('certificates.recognised_on', 'certificates.expires_on', as_of_date()) }} as is_valid,
        current_on_as_of.certificate_id is not null as is_current,
        {{ as_of_date() }} as as_of_date,
        certificates.score_band_stars,
        certificates.score_in_band

    from certificates
    left join products using (ma_san_pham)
    left join current_on_as_of using (certificate_id)

)

select * from final
