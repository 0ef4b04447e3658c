with

source as (

    {{ raw_source('submission_verdicts') }}

),

renamed as (

    select
        submission_id,
        checked_at,
        lower(trim(status)) as status,
        coalesce(errors, 0) as errors,
        coalesce(warnings, 0) as warnings,
        coalesce(failed_rules, '') as failed_rules,
        coalesce(issues, '[]') as issues,
        _dlt_load_id as load_id

    from source
    where submission_id is not null

)

select * from renamed
