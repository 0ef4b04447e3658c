{#-
  The run's as-of date as a SQL date literal.
  From the var `as_of_date` ('YYYY-MM-DD'); when it is not set, today in Asia/Ho_Chi_Minh.
-#}
{% macro as_of_date() -%}
    {%- set v = var('as_of_date', none) -%}
    {%- if v is none or (v | string | trim) in ('', 'None', 'none', 'null') -%}
        cast(timezone('Asia/Ho_Chi_Minh', current_timestamp) as date)
    {%- else -%}
        {%- set s = v | string | trim -%}
        {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', s) -%}
            {{ exceptions.raise_compiler_error("var as_of_date must be 'YYYY-MM-DD', got '" ~ s ~ "'") }}
        {%- endif -%}
        date '{{ s }}'
    {%- endif -%}
{%- endmacro %}
