{#- The combination of `columns` is unique (nulls compare equal). -#}
{% test ocop_unique_combination(model, columns) %}

select {{ columns | join(', ') }}, count(*) as n
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
