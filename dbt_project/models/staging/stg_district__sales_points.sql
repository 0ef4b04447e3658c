with

source as (

    {{ raw_source('district_sales_points') }}

),

renamed as (

    select
        md5(submission_id || ':' || coalesce(sheet, '') || ':' || cast("row_number" as varchar)) as sales_point_row_id,
        submission_id,
        source_file,
        content_hash,
        sheet,
        "row_number" as source_row,
        {{ clean_text('ten_diem_ban') }} as ten_diem_ban,
        {{ clean_text('dia_chi') }} as dia_chi,
        {{ clean_text('xa_phuong') }} as xa_phuong,
        nullif(lower(trim(hinh_thuc)), '') as hinh_thuc,
        ngay_hoat_dong,
        source_values,
        _dlt_load_id as load_id

    from source
    where submission_id is not null

)

select * from renamed
