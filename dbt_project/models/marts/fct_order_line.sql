{{
    config(
        materialized='incremental',
        unique_key=['order_id', 'line_no'],
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns',
        post_hook=["{{ fct_order_line_record_sku_map() }}"]
    )
}}
-- One row per e-commerce order line, its newest version. Incremental: a night reads only the lines
-- loaded since the last run (newer dlt load id or newer updated_at) and re-maps the stored lines
-- whose SKU -> product mapping has changed, so a full refresh gives the same rows.
-- revenue_vnd = qty x unit price - discount for completed lines, 0 otherwise.
--
-- Cost does not grow with history: the watermarks are literals (DuckDB skips the raw row groups
-- loaded before them), and the re-mapping reads only the lines of SKUs whose mapping differs from
-- the one the previous run applied (recorded by the post-hook in intermediate.fct_order_line__sku_map;
-- without that record, every stored line is compared with the current mapping).
{%- set remap_all = false -%}
{%- set changed_skus = [] -%}
{%- if is_incremental() -%}
    {%- set max_load_id = ocop_scalar("select max(raw_load_id) from " ~ this) -%}
    {%- set max_updated_at = ocop_scalar("select max(updated_at) from " ~ this) -%}
    {%- set applied = fct_order_line_applied_sku_map() -%}
    {%- if execute and adapter.get_relation(database=applied.database, schema=applied.schema, identifier=applied.identifier) is none -%}
        {%- set remap_all = true -%}
    {%- elif execute -%}
        {%- set mapping = "select sku, ma_san_pham, district_code from " -%}
        {%- set changed_skus = ocop_values(
            "select sku from ((" ~ mapping ~ ref('int_sku_map') ~ " except " ~ mapping ~ applied ~ ") union ("
            ~ mapping ~ applied ~ " except " ~ mapping ~ ref('int_sku_map') ~ "))") -%}
    {%- endif -%}
{%- endif %}
with

sku_map as (

    select sku, ma_san_pham, district_code from {{ ref('int_sku_map') }}

),

new_lines as (

    select
        order_id, line_no, ordered_at, order_date, sku, channel, status,
        qty, unit_price_vnd, discount_vnd, updated_at, load_id,
        1 as priority

    from {{ ref('stg_ecommerce__order_lines') }}
    {% if is_incremental() %}
    where
        {%- if max_load_id or max_updated_at %}
        {% if max_load_id %}load_id > {{ ocop_sql_string(max_load_id) }}{% else %}false{% endif %}
        or {% if max_updated_at %}updated_at > cast({{ ocop_sql_string(max_updated_at) }} as timestamptz){% else %}false{% endif %}
        {%- else %} true
        {%- endif %}
    {% endif %}

),

{% if is_incremental() %}
remapped_lines as (

    select
        stored.order_id, stored.line_no, stored.ordered_at, stored.order_date, stored.sku, stored.channel,
        stored.status, stored.qty, stored.unit_price_vnd, stored.discount_vnd, stored.updated_at,
        stored.raw_load_id as load_id,
        2 as priority

    from {{ this }} as stored
    left join sku_map on sku_map.sku = stored.sku
    where
    {%- if remap_all %}
        (stored.ma_san_pham is distinct from sku_map.ma_san_pham
         or stored.district_code is distinct from sku_map.district_code)
    {%- elif changed_skus %}
        stored.sku in ({% for s in changed_skus %}{{ ocop_sql_string(s) }}{{ ", " if not loop.last }}{% endfor %})
        and (stored.ma_san_pham is distinct from sku_map.ma_san_pham
             or stored.district_code is distinct from sku_map.district_code)
    {%- else %}
        false  -- no SKU mapping changed since the last run
    {%- endif %}

),
{% endif %}

lines as not materialized (

    select * from new_lines
    {% if is_incremental() %}
    union all
    select * from remapped_lines
    {% endif %}

),

-- the newest version of a line; only keys that occur more than once go through the window (raw is
-- already merged on the key, so on a full build that is none of the millions of lines, which then
-- stream through instead of being held in memory by the window)
duplicate_keys as (

    select order_id, line_no from lines group by all having count(*) > 1

),

newest as (

    select * from lines anti join duplicate_keys using (order_id, line_no)
    union all
    select * from (select * from lines semi join duplicate_keys using (order_id, line_no))
    qualify row_number() over (
        partition by order_id, line_no order by priority, updated_at desc nulls last, load_id desc
    ) = 1

),

final as (

    select
        newest.order_id,
        cast(newest.line_no as bigint) as line_no,
        newest.ordered_at,
        newest.order_date,
        newest.sku,
        sku_map.ma_san_pham,
        sku_map.district_code,
        newest.channel,
        newest.status,
        cast(newest.qty as bigint) as qty,
        cast(newest.unit_price_vnd as bigint) as unit_price_vnd,
        cast(newest.discount_vnd as bigint) as discount_vnd,
        cast(
            case
                when newest.status = 'completed'
                    then coalesce(newest.qty, 0) * coalesce(newest.unit_price_vnd, 0) - coalesce(newest.discount_vnd, 0)
                else 0
            end as bigint
        ) as revenue_vnd,
        sku_map.ma_san_pham is null as is_unmapped_sku,
        newest.updated_at,
        newest.load_id as raw_load_id,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}+00' as timestamptz) as dbt_loaded_at

    from newest
    left join sku_map using (sku)

)

select * from final
