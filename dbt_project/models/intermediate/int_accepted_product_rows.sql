-- Product rows of accepted submissions, with the submission's district and recency, the derived
-- star rating and expiry, and the owner key. Base of int_certificates, int_products and int_owners.
with

products as (

    select * from {{ ref('stg_district__products') }}

),

submissions as (

    select * from {{ ref('int_submissions') }}
    where is_accepted

),

joined as (

    select
        products.product_row_id,
        products.submission_id,
        submissions.district_code,
        submissions.period,
        submissions.received_at,
        submissions.accepted_rank,
        submissions.in_use as from_submission_in_use,
        products.source_file,
        products.sheet,
        products.source_row,

        products.ma_san_pham,
        products.ten_san_pham,
        products.nhom_san_pham,
        products.nhom_san_pham_goc,

        cast(coalesce(products.hang_sao, {{ stars_from_score('products.diem') }}) as integer) as stars,
        products.diem as score,
        products.so_quyet_dinh as decision_no,
        products.cap_cong_nhan as level,
        products.hinh_thuc as kind,
        products.tiem_nang_5_sao as five_star_potential,
        products.ngay_cong_nhan as recognised_on,
        {{ certificate_expiry('products.ngay_cong_nhan', 'products.ngay_het_han') }} as expires_on,

        products.ten_chu_the as owner_name,
        {{ normalise_text('products.ten_chu_the') }} as owner_name_normalised,
        products.loai_hinh_chu_the as owner_type,
        products.ma_so_thue as tax_number,
        {{ owner_key('products.ma_so_thue', 'submissions.district_code', 'products.ten_chu_the') }} as owner_key,

        products.xa_phuong,
        products.len_san_tmdt,
        products.lang_nghe,
        products.chu_the_da_tap_huan,
        products.kenh_hien_dai,
        products.ghi_chu

    from products
    inner join submissions using (submission_id)
    where products.ma_san_pham is not null

)

select * from joined
