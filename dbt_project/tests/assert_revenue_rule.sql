-- revenue_vnd = qty x unit price - discount for completed lines, 0 for the others.
-- Checks the lines the last run (re)wrote (history was checked when it was written).
select order_id, line_no
from {{ ref('fct_order_line') }}
where dbt_loaded_at = (select max(dbt_loaded_at) from {{ ref('fct_order_line') }})
  and (revenue_vnd <> case
        when status = 'completed'
            then coalesce(qty, 0) * coalesce(unit_price_vnd, 0) - coalesce(discount_vnd, 0)
        else 0
    end
   or is_unmapped_sku <> (ma_san_pham is null))
