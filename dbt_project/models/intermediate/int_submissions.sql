-- Every received submission with its newest verdict, and which one each district uses.
-- In use: among a district's accepted submissions, the greatest period, then the latest received_at.
with

submissions as (

    select * from {{ ref('stg_district__submissions') }}

),

newest_verdicts as (

    select * from {{ ref('stg_district__submission_verdicts') }}
    qualify row_number() over (partition by submission_id order by checked_at desc, load_id desc) = 1

),

joined as (

    select
        submissions.*,
        newest_verdicts.checked_at,
        coalesce(newest_verdicts.status, 'pending') as status,
        coalesce(newest_verdicts.errors, json_array_length(submissions.parse_errors)) as errors,
        coalesce(newest_verdicts.warnings, json_array_length(submissions.parse_warnings)) as warnings,
        coalesce(newest_verdicts.failed_rules, '') as failed_rules,
        coalesce(newest_verdicts.issues, '[]') as issues

    from submissions
    left join newest_verdicts using (submission_id)

),

accepted as (

    select
        submission_id,
        -- 1 = the district's newest accepted submission (the one in use)
        row_number() over (
            partition by district_code
            order by period desc nulls last, received_at desc, submission_id desc
        ) as accepted_rank,
        -- the newest accepted submission having a sales-points sheet
        has_sales_points_sheet and row_number() over (
            partition by district_code, has_sales_points_sheet
            order by period desc nulls last, received_at desc, submission_id desc
        ) = 1 as is_sales_points_source

    from joined
    where status = 'accepted' and district_code is not null

),

final as (

    select
        joined.submission_id,
        joined.district_code,
        joined.period,
        joined.source_file,
        joined.file_name,
        joined.content_hash,
        joined.received_at,
        joined.checked_at,
        joined.status,
        joined.status = 'accepted' and joined.district_code is not null as is_accepted,
        cast(joined.rows_received as bigint) as rows_received,
        cast(joined.sales_points_received as bigint) as sales_points_received,
        joined.has_sales_points_sheet,
        cast(joined.errors as bigint) as errors,
        cast(joined.warnings as bigint) as warnings,
        joined.failed_rules,
        joined.issues,
        accepted.accepted_rank,
        coalesce(accepted.accepted_rank = 1, false) as in_use,
        coalesce(accepted.is_sales_points_source, false) as is_sales_points_source

    from joined
    left join accepted using (submission_id)

)

select * from final
