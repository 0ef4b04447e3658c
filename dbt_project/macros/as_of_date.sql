{#-
  The run's as-of date as a SQL date literal.
  From the var `as_of_date` ('YYYY-MM-DD'), else the environment variable OCOP_AS_OF_DATE (how the
  nightly flow passes it: a changed var makes dbt re-parse the whole project, a changed environment
  variable only the files that read it), else today in Asia/Ho_Chi_Minh.
-#}
{% macro as_of_date() -%}
    {%- set v = var('as_of_date', none) -%}
    {%- if execute and (v is none or (v | string | trim) in ('', 'None', 'none', 'null')) -%}
        {#- read when the SQL is compiled, not while parsing: dbt would re-parse every model that
            calls this macro whenever the date changes, i.e. every night -#}
        {%- set v = env_var('OCOP_AS_OF_DATE', '') -%}
    {%- endif -%}
    {%- if v is none or (v | string | trim) in ('', 'None', 'none', 'null') -%}
        cast(timezone('Asia/Ho_Chi_Minh', current_timestamp) as date)
    {%- else -%}
        {%- set s = v | string | trim -%}
        {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', s) -%}
            {{ exceptions.raise_compiler_error("as_of_date (var or OCOP_AS_OF_DATE) must be 'YYYY-MM-DD', got '" ~ s ~ "'") }}
        {%- endif -%}
        date '{{ s }}'
    {%- endif -%}
{%- endmacro %}
