with

source as (

    {{ raw_source('district_products') }}

),

renamed as (

    select
        -- lineage
        md5(submission_id || ':' || coalesce(sheet, '') || ':' || cast("row_number" as varchar)) as product_row_id,
        submission_id,
        source_file,
        content_hash,
        sheet,
        "row_number" as source_row,

        -- product
        {{ clean_code('ma_san_pham') }} as ma_san_pham,
        {{ clean_text('ten_san_pham') }} as ten_san_pham,
        nullif(upper(trim(nhom_san_pham)), '') as nhom_san_pham,
        {{ clean_text('nhom_san_pham_goc') }} as nhom_san_pham_goc,

        -- certificate
        cast(hang_sao as integer) as hang_sao,
        diem,
        nullif(replace(trim(so_quyet_dinh), ' ', ''), '') as so_quyet_dinh,
        nullif(lower(trim(cap_cong_nhan)), '') as cap_cong_nhan,
        nullif(lower(trim(hinh_thuc)), '') as hinh_thuc,
        tiem_nang_5_sao,
        ngay_cong_nhan,
        ngay_het_han,

        -- owner
        {{ clean_text('ten_chu_the') }} as ten_chu_the,
        nullif(lower(trim(loai_hinh_chu_the)), '') as loai_hinh_chu_the,
        nullif(regexp_replace(ma_so_thue, '[^0-9-]', '', 'g'), '') as ma_so_thue,
        {{ clean_text('xa_phuong') }} as xa_phuong,

        -- flags
        len_san_tmdt,
        lang_nghe,
        chu_the_da_tap_huan,
        kenh_hien_dai,
        {{ clean_text('ghi_chu') }} as ghi_chu,
        source_values,
        _dlt_load_id as load_id

    from source
    where submission_id is not null

)

select * from renamed
