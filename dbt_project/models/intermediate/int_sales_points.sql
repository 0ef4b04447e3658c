-- The sales points each district last reported: from its newest accepted submission having a
-- sales-points sheet (a workbook without the sheet leaves them as they were).
with

sales_points as (

    select * from {{ ref('stg_district__sales_points') }}

),

sources as (

    select submission_id, district_code, period
    from {{ ref('int_submissions') }}
    where is_sales_points_source

),

joined as (

    select
        sources.district_code,
        sales_points.*,
        {{ normalise_text('sales_points.ten_diem_ban') }} as name_normalised,
        {{ normalise_text('sales_points.dia_chi') }} as address_normalised

    from sales_points
    inner join sources using (submission_id)
    where sales_points.ten_diem_ban is not null

),

keyed as (

    select
        *,
        -- several rows with the same name and address each stay a sales point
        row_number() over (
            partition by district_code, name_normalised, address_normalised order by source_row
        ) as duplicate_no

    from joined

),

final as (

    select
        md5(district_code || '|' || name_normalised || '|' || coalesce(address_normalised, '')
            || '|' || cast(duplicate_no as varchar)) as sales_point_id,
        district_code,
        ten_diem_ban as sales_point_name,
        dia_chi as address,
        xa_phuong as commune,
        hinh_thuc as funding,
        ngay_hoat_dong as opened_on,
        submission_id,
        source_file,
        sheet,
        source_row

    from keyed

)

select * from final
