-- Owners ("chủ thể") of the products in int_products. Key: 'mst:' || tax number when present, else
-- 'name:' || district || ':' || normalised name. Type: the most frequent among the owner's rows in
-- accepted submissions; display name: as most frequently written, forms with diacritics first.
with

rows as (

    select * from {{ ref('int_accepted_product_rows') }}
    where owner_key is not null

),

current_owners as (

    select
        owner_key,
        count(*) as products,
        bool_or(coalesce(chu_the_da_tap_huan, false)) as is_trained,
        bool_or(coalesce(kenh_hien_dai, false)) as sells_in_modern_channels

    from {{ ref('int_products') }}
    where owner_key is not null
    group by owner_key

),

names as (

    select owner_key, owner_name, count(*) as times_written
    from rows
    where owner_name is not null
    group by all

),

best_name as (

    select owner_key, owner_name
    from names
    qualify row_number() over (
        partition by owner_key
        order by {{ has_diacritics('owner_name') }} desc, times_written desc,
                 owner_name <> upper(owner_name) desc, owner_name
    ) = 1

),

types as (

    select owner_key, owner_type, count(*) as times_written
    from rows
    where owner_type is not null
    group by all

),

best_type as (

    select owner_key, owner_type
    from types
    qualify row_number() over (
        partition by owner_key
        order by times_written desc,
                 case owner_type when 'doanh_nghiep' then 1 when 'hop_tac_xa' then 2
                                 when 'to_hop_tac' then 3 else 4 end
    ) = 1

),

districts as (

    select owner_key, district_code, count(*) as times_written
    from rows
    group by all

),

home_district as (

    select owner_key, district_code
    from districts
    qualify row_number() over (partition by owner_key order by times_written desc, district_code) = 1

),

identity as (

    select
        owner_key,
        max(tax_number) as tax_number,
        max(owner_name_normalised) as owner_name_normalised

    from rows
    group by owner_key

),

final as (

    select
        current_owners.owner_key,
        best_name.owner_name,
        identity.owner_name_normalised,
        best_type.owner_type,
        identity.tax_number,
        home_district.district_code,
        current_owners.products,
        current_owners.is_trained,
        current_owners.sells_in_modern_channels

    from current_owners
    left join best_name using (owner_key)
    left join best_type using (owner_key)
    left join identity using (owner_key)
    left join home_district using (owner_key)

)

select * from final
