-- The 13 district-level units (seed) with terrain flags and the submission each one is published from.
with

districts as (

    select * from {{ ref('districts') }}

),

in_use as (

    select district_code, submission_id, period, received_at
    from {{ ref('int_submissions') }}
    where in_use

),

last_received as (

    select district_code, submission_id, period, received_at, status
    from {{ ref('int_submissions') }}
    where district_code is not null
    qualify row_number() over (partition by district_code order by received_at desc, submission_id desc) = 1

),

final as (

    select
        districts.district_code,
        districts.district_name,
        districts.full_name,
        districts.slug,
        districts.unit_type,
        districts.terrain,
        districts.terrain = 'mien_nui' as is_mountainous,
        districts.terrain = 'hai_dao' as is_island,
        in_use.submission_id is not null as has_accepted_submission,
        in_use.submission_id as in_use_submission_id,
        in_use.period as in_use_period,
        in_use.received_at as in_use_received_at,
        last_received.submission_id as last_submission_id,
        last_received.period as last_submission_period,
        last_received.received_at as last_submission_received_at,
        last_received.status as last_submission_status

    from districts
    left join in_use using (district_code)
    left join last_received using (district_code)

)

select * from final
