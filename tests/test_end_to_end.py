"""The real nightly flow (Prefect, dlt, GX, dbt, DuckDB) on the demo data: the published figures."""
from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest
from helpers import DESIGN_FIGURES

pytestmark = pytest.mark.e2e

AS_OF = dt.date(2024, 12, 20)

PROVINCE_FIGURES = {**DESIGN_FIGURES, "districts_total": 13}
ADDITIVE = ["valid_products", "valid_products_3_star", "valid_products_4_star", "valid_products_5_star",
            "owners", "products_on_ecommerce", "sales_points", "sales_points_state_supported", "sales_points_private"]


@pytest.fixture(scope="module")
def published(demo_night):
    settings, summary = demo_night
    con = duckdb.connect(str(settings.published_db), read_only=True)
    yield con, summary, settings
    con.close()


def test_night_published_and_accepted_every_demo_submission(published):
    con, summary, settings = published
    assert summary["outcome"] == "published"
    assert summary["new_files"] == 26
    assert summary["rejected"] == 0, summary["verdicts"]
    assert settings.published_db.exists()


def test_province_snapshot_reproduces_the_reported_figures(published):
    con, _, _ = published
    cols = list(PROVINCE_FIGURES)
    row = con.execute(f"select {', '.join(cols)} from marts.kpi_province_snapshot where as_of_date = ?",
                      [AS_OF]).fetchone()
    assert row is not None, "no province snapshot for the as-of date"
    assert dict(zip(cols, row)) == PROVINCE_FIGURES


def test_district_snapshot_sums_to_province(published):
    con, _, _ = published
    sums = con.execute(f"select {', '.join(f'sum({c})' for c in ADDITIVE)}, count(*), "
                       f"count(*) filter (where valid_products > 0) "
                       f"from marts.kpi_district_snapshot where as_of_date = ?", [AS_OF]).fetchone()
    assert dict(zip(ADDITIVE, sums[:-2])) == {c: PROVINCE_FIGURES[c] for c in ADDITIVE}
    assert sums[-2:] == (13, 13)


def test_every_district_submission_status_and_in_use(published):
    con, _, _ = published
    rows = con.execute("select district_code, period, status, in_use from marts.submission_status").fetchall()
    assert len(rows) == 26
    in_use = sorted((d, p) for d, p, s, u in rows if u)
    assert len(in_use) == 13 and {p for _, p in in_use} == {"2024-12"}
    assert all(s == "accepted" for _, _, s, _ in rows)


def test_snapshots_cover_every_month_end_and_the_as_of_date(published):
    con, _, _ = published
    dates = [r[0] for r in con.execute("select as_of_date from marts.kpi_province_snapshot order by 1").fetchall()]
    assert dates[-1] == AS_OF
    assert dt.date(2024, 11, 30) in dates
    month_ends = [d for d in dates if (d + dt.timedelta(days=1)).day == 1]
    assert len(month_ends) == len(dates) - 1  # every month end, plus the as-of date


def test_order_lines_newest_version_and_revenue(published):
    con, _, _ = published
    dupes = con.execute("select count(*) from (select order_id, line_no from marts.fct_order_line "
                        "group by all having count(*) > 1)").fetchone()[0]
    assert dupes == 0
    bad = con.execute("select count(*) from marts.fct_order_line where revenue_vnd <> "
                      "case when status = 'completed' then qty * unit_price_vnd - discount_vnd else 0 end").fetchone()[0]
    assert bad == 0
    unmapped = con.execute("select count(*) from marts.fct_order_line where is_unmapped_sku").fetchone()[0]
    assert unmapped > 0  # kept and flagged, not dropped


def test_parquet_exports_match_published_tables(published):
    con, _, settings = published
    tables = [r[0] for r in con.execute(
        "select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()]
    for t in tables:
        if t == "fct_order_line":  # one file per month of order_date (Hive layout)
            months = sorted(p.name for p in (settings.exports_dir / t).iterdir())
            assert months[0] == "order_month=2023-01" and months[-1] == "order_month=2024-12", months
            parquet = settings.exports_dir / t / "*" / "*.parquet"
        else:
            parquet = settings.exports_dir / f"{t}.parquet"
            assert parquet.exists(), t
        n = duckdb.execute(f"select count(*) from read_parquet('{parquet}')").fetchone()[0]
        assert n == con.execute(f"select count(*) from marts.{t}").fetchone()[0]


def test_district_snapshot_sums_to_province_at_every_date(published):
    con, _, _ = published
    mismatches = con.execute(f"""
        select p.as_of_date from marts.kpi_province_snapshot p
        join (select as_of_date, {', '.join(f'sum({c}) as {c}' for c in ADDITIVE)}
              from marts.kpi_district_snapshot group by 1) d using (as_of_date)
        where {' or '.join(f'p.{c} <> d.{c}' for c in ADDITIVE)}""").fetchall()
    assert mismatches == []
    dates = con.execute("select count(distinct as_of_date) from marts.kpi_district_snapshot").fetchone()[0]
    assert dates == con.execute("select count(*) from marts.kpi_province_snapshot").fetchone()[0] > 12


def test_plan_69_progress_lists_every_indicator_with_target_and_actual(published):
    con, _, _ = published
    rows = con.execute("select indicator, target_min, target_max, actual, met from marts.kpi_plan_progress "
                       "where plan_no = '69' and plan_year = 2024 order by indicator").fetchall()
    indicators = {r[0] for r in rows}
    assert indicators == {"new_products_3_5_star", "new_products_4_star_provincial", "products_5_star_potential",
                          "owners_strengthened", "owners_modern_channels_pct", "craft_village_products_3_star",
                          "owners_trained_pct"}
    assert all(r[1] is not None for r in rows)  # every indicator has its target
    measured = {r[0]: r for r in rows if r[3] is not None}
    assert measured["products_5_star_potential"][3] == 1 and measured["products_5_star_potential"][4] is True
    assert 0 <= measured["owners_trained_pct"][3] <= 100


def test_every_published_column_is_documented_with_a_vietnamese_label(published):
    import yaml

    from flows.config import DBT_PROJECT_DIR

    con, _, settings = published
    manifest = json.loads((settings.dbt_target_dir / "manifest.json").read_text(encoding="utf-8"))
    enforced = {n["name"] for n in manifest["nodes"].values()
                if n["resource_type"] == "model" and n["config"].get("contract", {}).get("enforced")}
    docs = {}
    for path in (DBT_PROJECT_DIR / "models" / "marts").glob("*.yml"):
        for model in yaml.safe_load(path.read_text(encoding="utf-8")).get("models", []):
            docs[model["name"]] = model
    for table, column in con.execute("select table_name, column_name from information_schema.columns "
                                     "where table_schema = 'marts'").fetchall():
        model = docs[table]
        assert table in enforced, f"{table}: contract not enforced"
        documented = {c["name"]: c for c in model["columns"]}
        assert column in documented, f"{table}.{column} undocumented"
        assert documented[column].get("description"), f"{table}.{column}"
        assert documented[column].get("meta", {}).get("label_vi"), f"{table}.{column} has no Vietnamese label"


def test_reports_data_docs_and_dbt_docs(published):
    from flows.transform import dbt_docs

    _, _, settings = published
    assert (settings.reports_dir / "data-docs" / "index.html").exists()  # GX Data Docs
    # a page for every validation of the night (built once per gate, not per checkpoint)
    validations = settings.reports_dir / "data-docs" / "validations"
    for suite in ("district_products", "district_sales_points", "marts_fct_order_line", "marts_kpi_province_snapshot"):
        assert any((validations / suite).rglob("*.html")), suite
    index = (settings.reports_dir / "data-docs" / "index.html").read_text(encoding="utf-8")
    assert "marts_fct_order_line" in index and "district_products" in index
    assert (settings.reports_dir / "dbt-docs" / "static_index.html").exists()
    again = dbt_docs(settings, AS_OF)  # the project did not change: the docs are not rebuilt
    assert again.success and again.nodes == 0


def test_dbt_built_in_the_nights_own_process_from_the_project_it_parsed_ahead(published):
    """The night's dbt process (flows/transform.py WarmDbt) parsed the project first; the build and
    the docs then ran there without parsing it again (a fallback to dbt in the night's own process
    would parse at the build)."""
    _con, _summary, settings = published
    log = (settings.work_dir / "dbt-logs" / "dbt.log").read_text(encoding="utf-8")
    commands = [line.split("Command `cli ")[1].split("`")[0] for line in log.splitlines() if "Command `cli " in line]
    assert commands == ["parse", "build", "docs generate"], commands
    after_parse = log.split("Command `cli parse` succeeded", 1)[1]
    assert "artial parsing" not in after_parse and "Starting full parse" not in after_parse
