-- Certificates accumulated over all accepted submissions: one per ma_san_pham + ngay_cong_nhan; the
-- newest submission's version of it wins (greatest period, then latest received_at), so expired
-- certificates and 3 -> 4 star upgrades survive later submissions that no longer list them.
with

rows as (

    select * from {{ ref('int_accepted_product_rows') }}
    where recognised_on is not null

),

newest_version as (

    select * from rows
    qualify row_number() over (
        partition by ma_san_pham, recognised_on
        order by period desc nulls last, received_at desc, submission_id desc, source_row
    ) = 1

),

final as (

    select
        md5(ma_san_pham || '|' || strftime(recognised_on, '%Y-%m-%d')) as certificate_id,
        ma_san_pham,
        district_code,
        stars,
        score,
        -- the star band the score falls in (3 = 50–69, 4 = 70–89, 5 = 90–100; below 50 no OCOP product)
        {{ stars_from_score('score') }} as score_band_stars,
        -- a province-rated 4-star product put forward as "tiềm năng 5 sao" may carry a 90+ score
        coalesce(
            {{ stars_from_score('score') }} = stars
            or (stars = 4 and five_star_potential and score between 90 and 100),
            false
        ) as score_in_band,
        decision_no,
        level,
        kind,
        five_star_potential,
        recognised_on,
        expires_on,
        submission_id,
        source_file,
        sheet,
        source_row,
        -- 1 = the product's newest certificate
        row_number() over (partition by ma_san_pham order by recognised_on desc, stars desc nulls last) as certificate_rank

    from newest_version

)

select * from final
