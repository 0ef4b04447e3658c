-- At most one submission in use per district, it is accepted, and every district with an accepted
-- submission has one in use.
with

per_district as (

    select
        district_code,
        count(*) filter (where in_use) as in_use,
        count(*) filter (where in_use and status <> 'accepted') as in_use_not_accepted,
        count(*) filter (where status = 'accepted') as accepted

    from {{ ref('submission_status') }}
    where district_code is not null
    group by district_code

)

select * from per_district
where in_use > 1 or in_use_not_accepted > 0 or (accepted > 0 and in_use = 0)
