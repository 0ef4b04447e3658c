-- Progress against the provincial OCOP plans (seed plan_targets): per plan x indicator, the target
-- range, the actual for the plan year measured up to min(as-of date, 31 December of that year), and
-- whether the minimum is met. An indicator the data cannot measure has actual and met null.
{{ config(tags=['as_of']) }}  {# reads the as-of date: rebuilt every night (flows/transform.py ORDERS_ONLY) #}
with

targets as (

    select * from {{ ref('plan_targets') }}

),

plans as (

    select distinct
        plan_no,
        plan_year,
        least({{ as_of_date() }}, make_date(plan_year, 12, 31)) as measured_on

    from targets

),

certificates as (

    select
        certificates.*,
        products.lang_nghe

    from {{ ref('int_certificates') }} as certificates
    left join {{ ref('int_products') }} as products using (ma_san_pham)

),

first_certificates as (

    select ma_san_pham, min(recognised_on) as first_recognised_on
    from certificates
    group by ma_san_pham

),

certificates_in_year as (

    select plans.plan_no, certificates.*
    from plans
    inner join certificates
        on year(certificates.recognised_on) = plans.plan_year
        and certificates.recognised_on <= plans.measured_on

),

owner_status as (

    -- owners of products valid on the measurement date; modern channels = supermarkets / convenience
    -- stores (district's flag) or a live e-commerce listing
    select
        plans.plan_no,
        status.owner_key,
        bool_or(status.is_on_ecommerce or coalesce(products.kenh_hien_dai, false)) as sells_in_modern_channels,
        bool_or(coalesce(products.chu_the_da_tap_huan, false)) as is_trained

    from plans
    inner join {{ ref('int_product_status_on_date') }} as status
        on status.as_of_date = plans.measured_on and status.is_valid
    left join {{ ref('int_products') }} as products using (ma_san_pham)
    group by plans.plan_no, status.owner_key

),

actuals as (

    select plans.plan_no, 'new_products_3_5_star' as indicator,
        cast(count(first_certificates.ma_san_pham) as double) as actual,
        'Sản phẩm có giấy chứng nhận đầu tiên trong năm kế hoạch' as method
    from plans
    left join first_certificates
        on year(first_certificates.first_recognised_on) = plans.plan_year
        and first_certificates.first_recognised_on <= plans.measured_on
    group by plans.plan_no

    union all

    select plans.plan_no, 'new_products_4_star_provincial',
        cast(count(distinct certificates_in_year.ma_san_pham) as double),
        'Sản phẩm được cấp giấy chứng nhận 4 sao cấp tỉnh trong năm'
    from plans
    left join certificates_in_year
        on certificates_in_year.plan_no = plans.plan_no
        and certificates_in_year.stars = 4
        and coalesce(certificates_in_year.level, 'tinh') = 'tinh'
    group by plans.plan_no

    union all

    select plans.plan_no, 'products_5_star_potential',
        cast(count(distinct certificates_in_year.ma_san_pham) as double),
        'Sản phẩm có giấy chứng nhận trong năm được đề xuất tiềm năng 5 sao'
    from plans
    left join certificates_in_year
        on certificates_in_year.plan_no = plans.plan_no
        and certificates_in_year.five_star_potential
    group by plans.plan_no

    union all

    select plans.plan_no, 'craft_village_products_3_star',
        cast(count(distinct certificates_in_year.ma_san_pham) as double),
        'Sản phẩm làng nghề được công nhận từ 3 sao trong năm'
    from plans
    left join certificates_in_year
        on certificates_in_year.plan_no = plans.plan_no
        and certificates_in_year.lang_nghe
        and certificates_in_year.stars >= 3
    group by plans.plan_no

    union all

    select plans.plan_no, 'owners_modern_channels_pct',
        round(100.0 * count(*) filter (where owner_status.sells_in_modern_channels) / nullif(count(owner_status.owner_key), 0), 1),
        'Tỷ lệ chủ thể có sản phẩm còn hiệu lực bán qua siêu thị/cửa hàng tiện lợi hoặc sàn TMĐT'
    from plans
    left join owner_status using (plan_no)
    group by plans.plan_no

    union all

    select plans.plan_no, 'owners_trained_pct',
        round(100.0 * count(*) filter (where owner_status.is_trained) / nullif(count(owner_status.owner_key), 0), 1),
        'Tỷ lệ chủ thể có sản phẩm còn hiệu lực đã được tập huấn'
    from plans
    left join owner_status using (plan_no)
    group by plans.plan_no

),

final as (

    select
        targets.plan_no,
        targets.plan_date,
        cast(targets.plan_year as integer) as plan_year,
        targets.indicator,
        targets.description,
        targets.unit,
        targets.target_min,
        targets.target_max,
        actuals.actual,
        case when actuals.actual is not null then actuals.actual >= targets.target_min end as met,
        plans.measured_on,
        coalesce(actuals.method, 'Chưa có dữ liệu nguồn để đo chỉ tiêu này') as method

    from targets
    inner join plans using (plan_no, plan_year)
    left join actuals using (plan_no, indicator)

)

select * from final
