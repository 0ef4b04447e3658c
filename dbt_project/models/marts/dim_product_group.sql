-- The six product groups of Decision 148/QĐ-TTg (seed).
with

product_groups as (

    select * from {{ ref('product_groups') }}

),

final as (

    select
        group_code,
        group_no,
        group_name,
        group_name_en,
        '148/QĐ-TTg' as decision

    from product_groups

)

select * from final
