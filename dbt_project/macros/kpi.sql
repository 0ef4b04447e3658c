{#- The KPI counting rules, shared by kpi_province_snapshot and kpi_district_snapshot so that a rule
    is written once. `valid` rows: one per as_of_date x valid product (int_product_status_on_date). -#}

{% macro kpi_product_counts() -%}
        count(*) as valid_products,
        count(*) filter (where stars = 3) as valid_products_3_star,
        count(*) filter (where stars = 4) as valid_products_4_star,
        count(*) filter (where stars = 5) as valid_products_5_star,
        count(distinct owner_key) as owners,
        count(distinct owner_key) filter (where owner_type = 'doanh_nghiep') as owners_enterprise,
        count(distinct owner_key) filter (where owner_type = 'hop_tac_xa') as owners_cooperative,
        count(distinct owner_key) filter (where owner_type = 'to_hop_tac') as owners_cooperative_group,
        count(distinct owner_key) filter (where owner_type = 'ho_kinh_doanh') as owners_household,
        count(*) filter (where is_on_ecommerce) as products_on_ecommerce
{%- endmacro %}

{% macro kpi_sales_point_counts(sales_points) -%}
        count(*) as sales_points,
        count(*) filter (where {{ sales_points }}.funding = 'nha_nuoc_ho_tro') as sales_points_state_supported,
        count(*) filter (where {{ sales_points }}.funding = 'xa_hoi_hoa') as sales_points_private
{%- endmacro %}

{#- The snapshot's KPI columns, zero where a date (or district) has nothing, in the contract's order. -#}
{% macro kpi_snapshot_columns(product_counts='product_counts', sales_point_counts='sales_point_counts') -%}
    {%- set product_columns = ['valid_products', 'valid_products_3_star', 'valid_products_4_star',
        'valid_products_5_star', 'owners', 'owners_enterprise', 'owners_cooperative',
        'owners_cooperative_group', 'owners_household', 'products_on_ecommerce'] -%}
    {%- set sales_point_columns = ['sales_points', 'sales_points_state_supported', 'sales_points_private'] -%}
    {%- for column in product_columns %}
        cast(coalesce({{ product_counts }}.{{ column }}, 0) as bigint) as {{ column }},
    {%- endfor %}
    {%- for column in sales_point_columns %}
        cast(coalesce({{ sales_point_counts }}.{{ column }}, 0) as bigint) as {{ column }}{{ ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}
