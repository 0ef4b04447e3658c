-- No de-duplication here: the raw table is merged on (order_id, line_no) by dlt, and a window over
-- millions of lines would defeat the incremental filter of fct_order_line (which de-duplicates the
-- lines it reads).
with

source as (

    {{ raw_source('ecommerce_order_lines') }}

),

renamed as (

    select
        order_id,
        line_no,
        ordered_at,
        {{ local_date('ordered_at') }} as order_date,
        nullif(trim(sku), '') as sku,
        qty,
        unit_price_vnd,
        coalesce(discount_vnd, 0) as discount_vnd,
        nullif(trim(channel), '') as channel,
        lower(trim(status)) as status,
        {{ clean_text('buyer_province') }} as buyer_province,
        updated_at,
        source,
        _dlt_load_id as load_id

    from source
    where order_id is not null

)

select * from renamed
