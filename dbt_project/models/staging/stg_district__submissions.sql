with

source as (

    {{ raw_source('submissions') }}

),

renamed as (

    select
        submission_id,
        {{ clean_text('source_file') }} as source_file,
        {{ clean_text('file_name') }} as file_name,
        content_hash,
        file_size,
        received_at,
        nullif(trim(district_code), '') as district_code,
        nullif(trim(period), '') as period,
        products_sheet,
        sales_points_sheet,
        coalesce(has_sales_points_sheet, sales_points_sheet is not null) as has_sales_points_sheet,
        coalesce(rows_received, 0) as rows_received,
        coalesce(sales_points_received, 0) as sales_points_received,
        coalesce(parse_errors, '[]') as parse_errors,
        coalesce(parse_warnings, '[]') as parse_warnings,
        _dlt_load_id as load_id

    from source
    where submission_id is not null
    -- the same content is never loaded twice; guard against it anyway
    qualify row_number() over (partition by submission_id order by received_at, _dlt_load_id) = 1

)

select * from renamed
