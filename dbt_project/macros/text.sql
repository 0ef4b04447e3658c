{#- Vietnamese text helpers. Stored and shown: NFC with diacritics. Matched: accent- and case-insensitive. -#}

{#- Trimmed NFC text, NULL when empty. -#}
{% macro clean_text(expr) -%}
    nullif(trim(regexp_replace(nfc_normalize({{ expr }}), '\s+', ' ', 'g')), '')
{%- endmacro %}

{#- Matching key: lower case, accents stripped, 'đ' -> 'd', spaces collapsed. -#}
{% macro normalise_text(expr) -%}
    nullif(trim(regexp_replace(lower(strip_accents(replace(replace(nfc_normalize({{ expr }}), 'đ', 'd'), 'Đ', 'D'))), '\s+', ' ', 'g')), '')
{%- endmacro %}

{#- True when the text carries Vietnamese diacritics (or đ). -#}
{% macro has_diacritics(expr) -%}
    (strip_accents(replace(replace(nfc_normalize({{ expr }}), 'đ', 'd'), 'Đ', 'D')) <> nfc_normalize({{ expr }}))
{%- endmacro %}

{#- Product / SKU codes: trimmed, upper case, inner spaces removed. -#}
{% macro clean_code(expr) -%}
    nullif(upper(regexp_replace(trim({{ expr }}), '\s+', '', 'g')), '')
{%- endmacro %}

{#- Owner identity: tax/registration number when present, else normalised name within the district. -#}
{% macro owner_key(tax_number, district_code, owner_name) -%}
    case
        when {{ tax_number }} is not null then 'mst:' || {{ tax_number }}
        when {{ normalise_text(owner_name) }} is not null
            then 'name:' || coalesce({{ district_code }}, '') || ':' || {{ normalise_text(owner_name) }}
    end
{%- endmacro %}
