{#-
  select the columns declared for raw.<table_name> in models/staging/_sources.yml, cast to their declared
  data_type. dlt creates a table only once data has arrived for it and a column only once a non-null
  value has: a declared column the table lacks is read as NULL (logged), and a missing table as an empty
  result, so a night without, e.g., an e-commerce feed still builds. Only staging models call this.
-#}
{% macro raw_source(table_name) -%}
    {%- set rel = source('raw', table_name) -%}
    {%- if not execute -%}
        select * from {{ rel }}
    {%- else -%}
        {%- set node = graph.sources.get('source.' ~ project_name ~ '.raw.' ~ table_name) -%}
        {%- if node is none -%}
            {{ exceptions.raise_compiler_error("raw source " ~ table_name ~ " is not declared") }}
        {%- endif -%}
        {%- set existing = adapter.get_relation(database=rel.database, schema=rel.schema, identifier=rel.identifier) -%}
        {%- set have = [] -%}
        {%- if existing is not none -%}
            {%- for c in adapter.get_columns_in_relation(existing) -%}
                {%- do have.append(c.name | lower) -%}
            {%- endfor -%}
        {%- else -%}
            {%- do log("raw." ~ table_name ~ " does not exist (yet): reading it as empty", info=True) -%}
        {%- endif %}
    select
        {%- for name, col in node.columns.items() %}
        {%- if name | lower in have %}
        cast({{ adapter.quote(name) }} as {{ col.data_type }}) as {{ adapter.quote(name) }}
        {%- else %}
        {%- if existing is not none -%}{%- do log("raw." ~ table_name ~ " has no column " ~ name ~ ": reading NULL", info=True) -%}{%- endif %}
        cast(null as {{ col.data_type }}) as {{ adapter.quote(name) }}
        {%- endif -%}
        {{- "," if not loop.last }}
        {%- endfor %}
    {% if existing is not none -%}
    from {{ rel }}
    {%- else -%}
    from (select 1) as missing_table where false
    {%- endif -%}
    {%- endif -%}
{%- endmacro %}
