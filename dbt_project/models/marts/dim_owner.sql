-- Owners ("chủ thể") of OCOP products, with their state on the run's as-of date.
{{ config(tags=['as_of']) }}  {# reads the as-of date: rebuilt every night (flows/transform.py ORDERS_ONLY) #}
with

owners as (

    select * from {{ ref('int_owners') }}

),

owner_types as (

    select * from {{ ref('owner_types') }}

),

on_as_of as (

    select
        owner_key,
        count(*) filter (where is_valid) as valid_products,
        count(*) filter (where is_on_ecommerce) as products_on_ecommerce

    from {{ ref('int_product_status_on_date') }}
    where as_of_date = {{ as_of_date() }}
    group by owner_key

),

final as (

    select
        owners.owner_key,
        owners.owner_name,
        owners.owner_name_normalised,
        owners.owner_type,
        owner_types.owner_type_name,
        owners.tax_number,
        owners.district_code,
        cast(owners.products as bigint) as products,
        cast(coalesce(on_as_of.valid_products, 0) as bigint) as valid_products,
        coalesce(on_as_of.valid_products, 0) > 0 as is_active,
        cast(coalesce(on_as_of.products_on_ecommerce, 0) as bigint) as products_on_ecommerce,
        owners.is_trained,
        owners.sells_in_modern_channels,
        {{ as_of_date() }} as as_of_date

    from owners
    left join owner_types using (owner_type)
    left join on_as_of using (owner_key)

)

select * from final
