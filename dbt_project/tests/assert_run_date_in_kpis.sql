-- The run's as-of date has its row in the province KPI table.
select 1 as missing
where not exists (
    select 1 from {{ ref('kpi_province_snapshot') }} where as_of_date = {{ as_of_date() }}
)
