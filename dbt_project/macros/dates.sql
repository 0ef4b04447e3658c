{#- The calendar date of a timestamptz in Asia/Ho_Chi_Minh. -#}
{% macro local_date(ts) -%}
    cast(timezone('Asia/Ho_Chi_Minh', {{ ts }}) as date)
{%- endmacro %}

{#- Certificate expiry: the written date, else decision date + validity months (36). -#}
{% macro certificate_expiry(recognised_on, expires_on) -%}
    coalesce({{ expires_on }}, cast({{ recognised_on }} + to_months({{ var('certificate_validity_months', 36) }}) as date))
{%- endmacro %}

{#- valid on D: recognised_on <= D < expires_on -#}
{% macro is_valid_on(recognised_on, expires_on, d) -%}
    ({{ recognised_on }} <= {{ d }} and {{ d }} < {{ expires_on }})
{%- endmacro %}

{#-
  A listing is live on D when listed on or before D and not delisted by D; a draft never is.
  (Raw contract: listed_at::date <= D and not (status = 'delisted' and updated_at::date <= D).)
  Takes the listing's local dates listed_on / updated_on and status.
-#}
{% macro listing_is_live_on(listing, d) -%}
    ({{ listing }}.status <> 'draft'
     and {{ listing }}.listed_on <= {{ d }}
     and not ({{ listing }}.status = 'delisted' and {{ listing }}.updated_on <= {{ d }}))
{%- endmacro %}

{#- Star rating from the 100-point score: 3 = 50-69, 4 = 70-89, 5 = 90-100 (below 50: none). -#}
{% macro stars_from_score(score) -%}
    case
        when {{ score }} >= 90 then 5
        when {{ score }} >= 70 then 4
        when {{ score }} >= 50 then 3
    end
{%- endmacro %}
