with

source as (

    {{ raw_source('ecommerce_listings') }}

),

renamed as (

    select
        listing_id,
        nullif(trim(sku), '') as sku,
        {{ clean_code('ma_san_pham') }} as ma_san_pham,
        {{ clean_text('title') }} as title,
        price_vnd,
        lower(trim(status)) as status,
        listed_at,
        updated_at,
        {{ local_date('listed_at') }} as listed_on,
        {{ local_date('updated_at') }} as updated_on,
        source,
        _dlt_load_id as load_id

    from source
    where listing_id is not null
    -- the raw table is merged on listing_id; keep the newest version should a duplicate slip in
    qualify row_number() over (partition by listing_id order by updated_at desc, _dlt_load_id desc) = 1

)

select * from renamed
