-- One row per received district submission: its verdict and whether the marts use it. Files whose
-- district could not be resolved are listed too (district_code null, rejected).
with

submissions as (

    select * from {{ ref('int_submissions') }}

),

districts as (

    select district_code, district_name from {{ ref('districts') }}

),

final as (

    select
        submissions.district_code,
        districts.district_name,
        submissions.period,
        submissions.source_file,
        submissions.received_at,
        submissions.status,
        submissions.rows_received,
        submissions.errors,
        submissions.warnings,
        submissions.failed_rules,
        submissions.in_use,
        submissions.submission_id,
        submissions.file_name,
        submissions.checked_at,
        submissions.sales_points_received,
        submissions.has_sales_points_sheet,
        submissions.issues

    from submissions
    left join districts using (district_code)

)

select * from final
