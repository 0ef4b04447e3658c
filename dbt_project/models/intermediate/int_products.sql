-- One row per product ever certified in an accepted submission. Attributes, owner and the district's
-- e-commerce flag come from the newest accepted submission listing the product: for every product of
-- a district's in-use submission, that is the in-use submission.
with

rows as (

    select * from {{ ref('int_accepted_product_rows') }}

),

newest as (

    select * from rows
    qualify row_number() over (
        partition by ma_san_pham
        order by period desc nulls last, received_at desc, submission_id desc,
                 recognised_on desc nulls last, source_row
    ) = 1

),

final as (

    select
        ma_san_pham,
        ten_san_pham,
        nhom_san_pham,
        nhom_san_pham_goc,
        district_code,
        owner_key,
        owner_name,
        owner_type,
        tax_number,
        xa_phuong,
        len_san_tmdt,
        lang_nghe,
        chu_the_da_tap_huan,
        kenh_hien_dai,
        ghi_chu,
        submission_id,
        period,
        from_submission_in_use as in_current_submission

    from newest

)

select * from final
