{#-
  Helpers for the incremental marts (fct_order_line): the watermarks and the changed SKU mappings are
  read once at compile time and written into the SQL as literals, so DuckDB can skip the row groups
  of raw and of the mart that hold nothing new (zone maps) instead of scanning the whole history.
-#}

{#- One value of a query, as text ('' when NULL, or when not executing). agate would parse text that
    looks like a number or a date (a dlt load id is '1734800000.123456'): the 'x' prefix keeps it
    exactly as DuckDB wrote it. -#}
{% macro ocop_scalar(sql) -%}
    {%- if not execute -%}
        {{- return('') -}}
    {%- endif -%}
    {%- set result = run_query("select 'x' || coalesce(cast((" ~ sql ~ ") as varchar), '')") -%}
    {{- return(result.columns[0].values()[0][1:]) -}}
{%- endmacro %}

{#- The values of a one-column query, as text (NULLs dropped). -#}
{% macro ocop_values(sql) -%}
    {%- if not execute -%}
        {{- return([]) -}}
    {%- endif -%}
    {%- set result = run_query("select 'x' || cast(v as varchar) from (" ~ sql ~ ") as q(v) where v is not null order by 1") -%}
    {%- set out = [] -%}
    {%- for v in result.columns[0].values() -%}
        {%- do out.append(v[1:]) -%}
    {%- endfor -%}
    {{- return(out) -}}
{%- endmacro %}

{% macro ocop_sql_string(text) -%}
    '{{ text | replace("'", "''") }}'
{%- endmacro %}

{#- Where fct_order_line records the SKU -> product mapping it applied (a table beside int_sku_map,
    written by its post-hook, never published): the next night re-maps only the lines of SKUs whose
    mapping changed since. -#}
{% macro fct_order_line_applied_sku_map() -%}
    {%- set sku_map = ref('int_sku_map') -%}
    {{- return(api.Relation.create(database=sku_map.database, schema=sku_map.schema,
                                   identifier='fct_order_line__sku_map')) -}}
{%- endmacro %}

{% macro fct_order_line_record_sku_map() -%}
    create or replace table {{ fct_order_line_applied_sku_map() }} as
    select sku, ma_san_pham, district_code from {{ ref('int_sku_map') }}
{%- endmacro %}

{#-
  Data tests of an incremental mart can be limited to the rows the last run wrote:
      config: {where: "__written_by_last_run__"}
  keeps the rows whose dbt_loaded_at is the newest (a night re-tests what it (re)wrote, not the whole
  history, which earlier nights tested; the GX marts gate checks every row a publication takes from
  the working marts, see flows/gate.py).
  Tests of the staging view of raw order lines can be limited to the lines loaded since the last build:
      config: {where: "__loaded_since_last_build__"}
  keeps the rows whose load_id is newer than the newest load fct_order_line has read (all rows before
  the first build); raw is appended load after load, so DuckDB skips the older row groups.
  Any other `where` works as in dbt.
-#}
{% macro duckdb__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where == '__written_by_last_run__' -%}
        (select * from {{ relation }}
         where dbt_loaded_at = (select max(dbt_loaded_at) from {{ relation }})) dbt_subquery
    {%- elif where == '__loaded_since_last_build__' -%}
        {%- set built = adapter.get_relation(database=relation.database, schema=generate_schema_name('marts', none),
                                             identifier='fct_order_line') if execute else none -%}
        {%- set since = ocop_scalar('select max(raw_load_id) from ' ~ built) if built is not none else '' -%}
        (select * from {{ relation }}
         {%- if since %} where load_id > {{ ocop_sql_string(since) }}{% endif %}) dbt_subquery
    {%- elif where -%}
        (select * from {{ relation }} where {{ where }}) dbt_subquery
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}
