-- Both KPI tables have exactly the dates of int_as_of_dates (every month end since the first
-- certificate, and the run's as-of date), the district table every district for each of them.
with

expected as (

    select as_of_date from {{ ref('int_as_of_dates') }}

),

province as (

    select as_of_date, count(*) as n from {{ ref('kpi_province_snapshot') }} group by as_of_date

),

districts as (

    select as_of_date, count(distinct district_code) as n from {{ ref('kpi_district_snapshot') }} group by as_of_date

)

select coalesce(expected.as_of_date, province.as_of_date, districts.as_of_date) as as_of_date
from expected
full outer join province using (as_of_date)
full outer join districts using (as_of_date)
where expected.as_of_date is null
   or province.n is distinct from 1
   or districts.n is distinct from (select count(*) from {{ ref('districts') }})
