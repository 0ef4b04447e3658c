"""dbt build on the tiny raw fixture (make_raw_fixture.py), figures checked against hand counts.

As-of date 2024-12-20. Worked out by hand from the fixture:

  products (accepted submissions only; BS05 comes in a rejected file):
    BS01 3* 2021-05-10..2024-05-10  expired                       owner HTX Bình Minh (mst:4300000001)
    BS02 3* 2022-03-15..2025-03-15  (expiry not written: +36 m)   owner HKD Nguyễn Văn Bình (by name)
    BS03 3* 2023-01-20..2026-01-20, upgraded 4* 2024-08-01..2027-08-01  owner Cty Hương Sả (mst:4300000002)
    BS04 3* 2024-10-10..2027-10-10                                owner HTX Bình Minh
    LS01 3* 2023-06-01..2026-06-01                                owner THT tỏi An Vĩnh (by name)
    LS02 4* 2022-12-01..2025-12-01                                owner Trần Thị Lý (by name)
    LS03 3* 2024-12-20..2027-12-20  recognised ON the as-of date  owner Trần Thị Lý ("Tran Thi Ly")
    LS04 3* 2021-12-20..2024-12-20  expires ON the as-of date     owner Trần Thị Lý (NFD)
  valid on 2024-12-20: BS02 BS03 BS04 LS01 LS02 LS03 = 6 (3*: 4, 4*: 2, 5*: 0)
  owners: 5 = 1 enterprise + 1 cooperative + 1 cooperative group + 2 households
  on e-commerce: BS02 (active), BS04 (delisted only on 12-25), LS01 (active) = 3;
    not BS03 (delisted 11-01), LS02 (listed 2025), LS03 (draft), BS01 (not valid)
  sales points: 524 from its June file (Nov file has no sheet, Dec file rejected): 1 state + 1 private;
    536 from its Nov file: 1 private (+1 state opening 2025-01-10) -> 3 = 1 state + 2 private
  revenue: 90,000 (2x50,000-10,000) + 30,000 (unmapped SKU) + 120,000 + 300,000 = 540,000
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_raw_fixture as fx  # noqa: E402
from helpers import assert_same_marts, dbt_nodes_run, snapshot_marts  # noqa: E402 - tests/helpers.py (tests/conftest.py puts it on the path)

D = dt.date(2024, 12, 20)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("ocop-dbt")
    db = work / "ocop_work.duckdb"
    result = fx.build(db, work_dir=work)
    assert result.success, f"dbt build failed: {result.exception}"
    return {"db": db, "work": work, "result": result}


def query(db, sql, params=None):
    con = duckdb.connect(str(db))
    try:
        cur = con.execute(sql, params or [])
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]
    finally:
        con.close()


def one(db, sql, params=None):
    rows = query(db, sql, params)
    assert len(rows) == 1, rows
    return rows[0]


KPI_COLUMNS = [
    "as_of_date", "valid_products", "valid_products_3_star", "valid_products_4_star", "valid_products_5_star",
    "owners", "owners_enterprise", "owners_cooperative", "owners_cooperative_group", "owners_household",
    "products_on_ecommerce", "sales_points", "sales_points_state_supported", "sales_points_private",
]


def test_build_passes_every_node(built):
    statuses = {r.node.unique_id: str(r.status) for r in built["result"].result}
    assert statuses, "nothing ran"
    bad = {k: v for k, v in statuses.items() if v not in ("success", "pass")}
    assert not bad
    # unit tests ran
    assert any(k.startswith("unit_test.") for k in statuses)


def test_published_columns_exactly_as_design(built):
    cols = {}
    for r in query(built["db"], "select table_name, column_name from information_schema.columns "
                                "where table_schema = 'marts' order by table_name, ordinal_position"):
        cols.setdefault(r["table_name"], []).append(r["column_name"])
    assert cols["kpi_province_snapshot"] == KPI_COLUMNS + ["districts_with_products", "districts_total"]
    assert sorted(cols["kpi_district_snapshot"]) == sorted(KPI_COLUMNS + ["district_code", "district_name"])
    assert cols["fct_order_line"][:14] == [
        "order_id", "line_no", "ordered_at", "order_date", "sku", "ma_san_pham", "district_code", "channel",
        "status", "qty", "unit_price_vnd", "discount_vnd", "revenue_vnd", "is_unmapped_sku"]
    assert cols["submission_status"][:11] == [
        "district_code", "district_name", "period", "source_file", "received_at", "status", "rows_received",
        "errors", "warnings", "failed_rules", "in_use"]
    for name in ["dim_district", "dim_product_group", "dim_owner", "dim_product", "dim_sales_point", "dim_date",
                 "fct_certification", "kpi_plan_progress", "sales_monthly", "certificates_expiring",
                 "ecommerce_reconciliation"]:
        assert name in cols


def test_province_kpis_on_as_of_date(built):
    row = one(built["db"], "select * from marts.kpi_province_snapshot where as_of_date = ?", [D])
    assert row == {
        "as_of_date": D,
        "valid_products": 6, "valid_products_3_star": 4, "valid_products_4_star": 2, "valid_products_5_star": 0,
        "owners": 5, "owners_enterprise": 1, "owners_cooperative": 1, "owners_cooperative_group": 1,
        "owners_household": 2,
        "products_on_ecommerce": 3,
        "sales_points": 3, "sales_points_state_supported": 1, "sales_points_private": 2,
        "districts_with_products": 2, "districts_total": 13,
    }


def test_province_kpis_history(built):
    rows = query(built["db"], "select * from marts.kpi_province_snapshot order by as_of_date")
    # month ends May 2021 .. Nov 2024 (first certificate: BS01, 2021-05-10) + the as-of date
    assert len(rows) == 44
    assert rows[0]["as_of_date"] == dt.date(2021, 5, 31)
    assert rows[-1]["as_of_date"] == D
    by_date = {r["as_of_date"]: r for r in rows}
    # 2024-04-30: BS01 still valid, BS03 still 3 stars, BS03 listing not yet delisted, LS04 valid
    apr = by_date[dt.date(2024, 4, 30)]
    assert (apr["valid_products"], apr["valid_products_3_star"], apr["valid_products_4_star"]) == (6, 5, 1)
    assert (apr["owners"], apr["products_on_ecommerce"], apr["sales_points"]) == (5, 3, 3)
    # 2021-05-31: only BS01 (and the Lý Sơn sales point opened 2023 is not yet counted)
    first = by_date[dt.date(2021, 5, 31)]
    assert (first["valid_products"], first["owners"], first["owners_cooperative"], first["sales_points"]) == (1, 1, 1, 0)
    # 2024-05-31: BS01 expired on 2024-05-10
    assert by_date[dt.date(2024, 5, 31)]["valid_products"] == 5


def test_district_kpis_on_as_of_date(built):
    rows = query(built["db"], "select * from marts.kpi_district_snapshot where as_of_date = ? order by district_code", [D])
    assert len(rows) == 13
    by_code = {r["district_code"]: r for r in rows}
    bs, ls = by_code["524"], by_code["536"]
    assert bs["district_name"] == "Bình Sơn" and ls["district_name"] == "Lý Sơn"
    assert [bs[c] for c in KPI_COLUMNS[1:]] == [3, 2, 1, 0, 3, 1, 1, 0, 1, 2, 2, 1, 1]
    assert [ls[c] for c in KPI_COLUMNS[1:]] == [3, 2, 1, 0, 2, 0, 0, 1, 1, 1, 1, 0, 1]
    for code, r in by_code.items():
        if code not in ("524", "536"):
            assert all(r[c] == 0 for c in KPI_COLUMNS[1:]), code


def test_validity_boundaries_and_upgrade(built):
    rows = {r["ma_san_pham"]: r for r in query(built["db"], "select * from marts.dim_product")}
    assert sorted(rows) == ["BS01", "BS02", "BS03", "BS04", "LS01", "LS02", "LS03", "LS04"]  # no BS05
    assert rows["LS03"]["is_valid"] is True  # recognised_on == D counts
    assert rows["LS04"]["is_valid"] is False  # expires_on == D does not
    assert rows["BS01"]["is_valid"] is False  # expired
    assert rows["BS03"]["stars"] == 4 and rows["BS03"]["certificates"] == 2  # 3 -> 4 upgrade
    assert rows["BS01"]["in_current_submission"] is False
    assert rows["BS02"]["latest_expires_on"] == dt.date(2025, 3, 15)  # 36 months when not written


def test_certificates(built):
    rows = query(built["db"], "select * from marts.fct_certification order by ma_san_pham, recognised_on")
    assert len(rows) == 9
    ls01 = [r for r in rows if r["ma_san_pham"] == "LS01"]
    assert len(ls01) == 1
    # the newest submission's version wins (period 2024-11 over 2024-10 received later, and 2024-09)
    assert ls01[0]["score"] == 65.0 and ls01[0]["submission_id"] == "sub_ls_2024_11"
    bs03 = [r for r in rows if r["ma_san_pham"] == "BS03"]
    assert [(r["stars"], r["kind"], r["is_current"], r["is_valid"]) for r in bs03] == [
        (3, "moi", False, True), (4, "nang_hang", True, True)]
    assert len({r["certificate_id"] for r in rows}) == 9


def test_owners(built):
    rows = {r["owner_key"]: r for r in query(built["db"], "select * from marts.dim_owner")}
    assert sorted(rows) == [
        "mst:4300000001", "mst:4300000002", "name:524:ho kinh doanh nguyen van binh",
        "name:536:to hop tac san xuat toi an vinh", "name:536:tran thi ly"]
    ly = rows["name:536:tran thi ly"]
    assert ly["owner_name"] == "Trần Thị Lý"  # NFC, with diacritics, the most written form
    assert ly["owner_type"] == "ho_kinh_doanh"  # 3 household rows vs 1 "to_hop_tac"
    assert ly["products"] == 3 and ly["valid_products"] == 2
    assert rows["name:524:ho kinh doanh nguyen van binh"]["owner_name"] == "Hộ kinh doanh Nguyễn Văn Bình"
    assert rows["mst:4300000001"]["owner_type"] == "hop_tac_xa" and rows["mst:4300000001"]["products"] == 2
    assert sum(r["is_active"] for r in rows.values()) == 5


def test_sales_points(built):
    rows = query(built["db"], "select * from marts.dim_sales_point order by district_code, sales_point_name")
    assert [(r["district_code"], r["funding"], r["is_open"], r["submission_id"]) for r in rows] == [
        ("524", "xa_hoi_hoa", True, "sub_bs_2024_06"),
        ("524", "nha_nuoc_ho_tro", True, "sub_bs_2024_06"),
        ("536", "nha_nuoc_ho_tro", False, "sub_ls_2024_11"),
        ("536", "xa_hoi_hoa", True, "sub_ls_2024_11"),
    ]


def test_submission_status(built):
    rows = {r["submission_id"]: r for r in query(built["db"], "select * from marts.submission_status")}
    assert len(rows) == 7
    assert {k for k, r in rows.items() if r["in_use"]} == {"sub_bs_2024_11", "sub_ls_2024_11"}
    rejected = rows["sub_bs_2024_12"]  # accepted first, then rejected: the newest verdict wins
    assert (rejected["status"], rejected["errors"], rejected["failed_rules"]) == (
        "rejected", 2, "hang_sao_valid,diem_matches_hang_sao")
    unknown = rows["sub_unknown"]
    assert unknown["district_code"] is None and unknown["status"] == "rejected" and unknown["in_use"] is False
    assert rows["sub_ls_2024_10"]["status"] == "accepted" and rows["sub_ls_2024_10"]["in_use"] is False
    assert rows["sub_bs_2024_11"]["district_name"] == "Bình Sơn"
    assert rows["sub_bs_2024_11"]["period"] == "2024-11"


def test_order_lines_and_revenue(built):
    rows = {(r["order_id"], r["line_no"]): r for r in query(built["db"], "select * from marts.fct_order_line")}
    assert len(rows) == 6
    assert sum(r["revenue_vnd"] for r in rows.values()) == 540_000
    assert rows[("O1", 1)]["revenue_vnd"] == 90_000
    assert rows[("O1", 2)]["revenue_vnd"] == 0  # cancelled
    assert rows[("O4", 1)]["revenue_vnd"] == 0  # returned
    unmapped = rows[("O2", 1)]
    assert unmapped["is_unmapped_sku"] is True and unmapped["ma_san_pham"] is None and unmapped["revenue_vnd"] == 30_000
    assert rows[("O1", 1)]["ma_san_pham"] == "BS02" and rows[("O1", 1)]["district_code"] == "524"
    # 2024-12-01 00:30 +07:00 is 2024-11-30 in UTC: the order date is the Vietnamese one
    assert rows[("O3", 1)]["order_date"] == dt.date(2024, 12, 1)


def test_sales_monthly(built):
    rows = query(built["db"], "select year_month, sum(revenue_vnd) as revenue, sum(lines) as lines, "
                              "sum(qty) as qty from marts.sales_monthly group by 1 order by 1")
    assert rows == [
        {"year_month": "2024-11", "revenue": 300_000, "lines": 1, "qty": 1},
        {"year_month": "2024-12", "revenue": 240_000, "lines": 5, "qty": 6},
    ]


def test_certificates_expiring(built):
    rows = query(built["db"], "select * from marts.certificates_expiring")
    assert [(r["ma_san_pham"], r["expires_on"], r["days_to_expiry"]) for r in rows] == [
        ("BS02", dt.date(2025, 3, 15), 85)]


def test_ecommerce_reconciliation(built):
    rows = query(built["db"], "select ma_san_pham, mismatch from marts.ecommerce_reconciliation order by 1")
    assert [(r["ma_san_pham"], r["mismatch"]) for r in rows] == [
        ("BS03", "reported_not_listed"),  # delisted on 2024-11-01
        ("BS04", "listed_not_reported"),  # live until 2024-12-25
        ("LS03", "reported_not_listed"),  # draft only
    ]


def test_plan_progress(built):
    rows = {r["indicator"]: r for r in query(built["db"], "select * from marts.kpi_plan_progress")}
    assert len(rows) == 7
    actual = {k: r["actual"] for k, r in rows.items()}
    assert actual == {
        "new_products_3_5_star": 2.0,  # BS04, LS03
        "new_products_4_star_provincial": 1.0,  # BS03 upgrade by the province
        "products_5_star_potential": 0.0,
        "owners_strengthened": None,  # not measurable from the data
        "owners_modern_channels_pct": 80.0,  # all but Trần Thị Lý
        "craft_village_products_3_star": 1.0,  # BS04
        "owners_trained_pct": 80.0,  # all but the THT
    }
    assert rows["craft_village_products_3_star"]["met"] is True
    assert rows["new_products_3_5_star"]["met"] is False
    assert rows["owners_strengthened"]["met"] is None
    assert rows["owners_trained_pct"]["measured_on"] == D


def test_district_and_date_dims(built):
    d = {r["district_code"]: r for r in query(built["db"], "select * from marts.dim_district")}
    assert len(d) == 13
    assert d["536"]["is_island"] and d["535"]["is_mountainous"] and not d["524"]["is_mountainous"]
    assert d["524"]["in_use_submission_id"] == "sub_bs_2024_11" and d["524"]["last_submission_status"] == "rejected"
    assert d["522"]["has_accepted_submission"] is False
    cal = one(built["db"], "select min(date_day) as lo, max(date_day) as hi, count(*) as n from marts.dim_date")
    assert (cal["lo"], cal["hi"]) == (dt.date(2021, 1, 1), dt.date(2027, 12, 31))


def test_incremental_order_lines(built, tmp_path):
    """A night with new and changed order lines: only they are (re)written; a full refresh agrees."""
    db = tmp_path / "ocop_work.duckdb"
    con = duckdb.connect(str(built["db"]))
    try:
        con.execute("checkpoint")  # everything into the main file before copying it
    finally:
        con.close()
    shutil.copy(built["db"], db)
    before = {(r["order_id"], r["line_no"]): r["dbt_loaded_at"]
              for r in query(db, "select order_id, line_no, dbt_loaded_at from marts.fct_order_line")}

    load = "1734800000.000001"
    con = duckdb.connect(str(db))
    try:
        # O5 is cancelled later; O6 is new; a listing now maps the formerly unknown SKU to LS04
        fx.upsert_order_line(con, "O5", 1, "2024-11-15 09:00:00+07", "SKU-BS03", 1, 300000, 0, "web",
                             "cancelled", "2024-12-21 09:00:00+07", load_id=load)
        fx.upsert_order_line(con, "O6", 1, "2024-12-21 10:00:00+07", "SKU-LS02", 1, 80000, 0, "app",
                             "completed", "2024-12-21 10:00:00+07", load_id=load)
        fx.add_listing(con, "L8", "SKU-UNKNOWN", "LS04", "active", "2024-12-21 08:00:00+07",
                       "2024-12-21 08:00:00+07", load)
    finally:
        con.close()

    res = fx.run_dbt(db, ["run", "--select", "fct_order_line", "sales_monthly"], work_dir=tmp_path)
    assert res.success

    rows = {(r["order_id"], r["line_no"]): r for r in query(db, "select * from marts.fct_order_line")}
    assert len(rows) == 7
    assert rows[("O5", 1)]["revenue_vnd"] == 0 and rows[("O5", 1)]["status"] == "cancelled"
    assert rows[("O6", 1)]["revenue_vnd"] == 80_000
    assert rows[("O2", 1)]["ma_san_pham"] == "LS04" and rows[("O2", 1)]["is_unmapped_sku"] is False
    assert rows[("O2", 1)]["district_code"] == "536"
    assert sum(r["revenue_vnd"] for r in rows.values()) == 320_000
    # history untouched: lines that did not change were not rewritten
    for key in [("O1", 1), ("O1", 2), ("O3", 1), ("O4", 1)]:
        assert rows[key]["dbt_loaded_at"] == before[key], key
    for key in [("O5", 1), ("O2", 1)]:
        assert rows[key]["dbt_loaded_at"] != before[key], key

    monthly = query(db, "select year_month, sum(revenue_vnd) as revenue from marts.sales_monthly group by 1 order by 1")
    assert monthly == [{"year_month": "2024-11", "revenue": 0}, {"year_month": "2024-12", "revenue": 320_000}]

    compare_fct = ("select * exclude (dbt_loaded_at) from marts.fct_order_line order by order_id, line_no")
    compare_monthly = ("select * exclude (source_loaded_at) from marts.sales_monthly "
                       "order by order_month, ma_san_pham, district_code, channel")
    incremental = (query(db, compare_fct), query(db, compare_monthly))
    res = fx.run_dbt(db, ["run", "--select", "fct_order_line", "sales_monthly", "--full-refresh"], work_dir=tmp_path)
    assert res.success
    assert (query(db, compare_fct), query(db, compare_monthly)) == incremental


def test_build_without_ecommerce_feed_or_optional_columns(tmp_path):
    """dlt creates a table only once data arrives and a column only once it has a value: a night
    without any e-commerce feed, and a product sheet without tax numbers, still builds."""
    db = tmp_path / "ocop_work.duckdb"
    fx.create_raw(db)
    con = duckdb.connect(str(db))
    try:
        con.execute("drop table raw.ecommerce_listings")
        con.execute("drop table raw.ecommerce_order_lines")
        con.execute("alter table raw.district_products drop column ma_so_thue")
    finally:
        con.close()
    res = fx.run_dbt(db, ["build"], work_dir=tmp_path)
    assert res.success
    row = one(db, "select * from marts.kpi_province_snapshot where as_of_date = ?", [D])
    assert (row["valid_products"], row["owners"], row["products_on_ecommerce"]) == (6, 5, 0)
    assert one(db, "select count(*) as n from marts.fct_order_line")["n"] == 0


def _night_settings(built, tmp_path):
    """Settings of a warehouse under tmp_path whose working database is a copy of the built one."""
    from flows.config import load_settings

    settings = load_settings(tmp_path / "inbox", tmp_path / "warehouse")
    settings.work_dir.mkdir(parents=True)
    con = duckdb.connect(str(built["db"]))
    con.execute("checkpoint")
    con.close()
    shutil.copy(built["db"], settings.work_db)
    return settings


def test_nightly_build_loads_the_seeds_only_when_they_changed(built, tmp_path, monkeypatch):
    """flows.transform.dbt_build: the reference seeds (and their tests) are loaded by the first
    build, skipped while unchanged, loaded again when a seed file changes or their tables are gone."""
    import datetime as dt

    from flows import transform

    settings = _night_settings(built, tmp_path)

    def seeds_built() -> int:
        nodes = dbt_nodes_run(settings.dbt_target_dir)
        seeds = sum(n.startswith("seed.") for n in nodes)
        seed_tests = sum(n.startswith("test.ocop.unique_owner_types_owner_type") for n in nodes)
        assert seed_tests == (1 if seeds else 0)  # a seed's own tests run with it, and only then
        return seeds

    as_of = dt.date(2024, 12, 20)
    transform.dbt_build(settings, as_of)
    assert seeds_built() == 7
    transform.dbt_build(settings, as_of)
    assert seeds_built() == 0
    assert one(settings.work_db, "select count(*) as n from reference.districts")["n"] == 13
    monkeypatch.setattr(transform, "seeds_fingerprint", lambda: "a seed file changed")
    transform.dbt_build(settings, as_of)
    assert seeds_built() == 7
    con = duckdb.connect(str(settings.work_db))
    con.execute("drop table reference.owner_types")
    con.close()
    transform.dbt_build(settings, as_of)
    assert seeds_built() == 7


def test_staging_order_line_tests_read_the_lines_loaded_since_the_last_build(built, tmp_path):
    """stg_ecommerce__order_lines' tests (where: __loaded_since_last_build__) check the lines of loads
    newer than the newest one fct_order_line has read, not the whole history of raw."""
    db = tmp_path / "ocop_work.duckdb"
    con = duckdb.connect(str(built["db"]))
    con.execute("checkpoint")
    con.close()
    shutil.copy(built["db"], db)
    con = duckdb.connect(str(db))
    try:
        assert con.execute("select max(raw_load_id) from marts.fct_order_line").fetchone()[0] == fx.L2
        # a bad status in a load the last build already read, and one in a newer load
        for order_id, load in (("OLD-BAD", "1734600000.000001"), ("NEW-BAD", "1734900000.000001")):
            fx.upsert_order_line(con, order_id, 1, "2024-12-01 09:00:00+07", "SKU-LS02", 1, 80000, 0, "web",
                                 "lost", "2024-12-01 09:00:00+07", load_id=load)
    finally:
        con.close()
    res = fx.run_dbt(db, ["test", "--select", "stg_ecommerce__order_lines"], work_dir=tmp_path)
    by_test = {r.node.name: r for r in res.result.results}
    status = next(r for name, r in by_test.items() if name.startswith("accepted_values_stg_ecommerce"))
    assert str(status.status) in ("warn", "TestStatus.Warn") and status.failures == 1  # NEW-BAD only
    assert all(r.failures == 0 for name, r in by_test.items() if name.startswith("not_null"))


def test_the_nights_warm_dbt_process_builds_and_lets_go_of_the_database(built, tmp_path):
    """flows.transform.warm_dbt: the night's dbt runs in a process started (and parsed) ahead;
    each invocation there releases the database; a failing one is reported; when that process is
    gone, dbt runs in this process instead."""
    import datetime as dt

    from flows import transform

    settings = _night_settings(built, tmp_path)
    as_of = dt.date(2024, 12, 21)
    with transform.warm_dbt(settings, as_of) as warm:
        assert transform._warm is warm and warm.process.poll() is None
        pid = warm.process.pid
        outcome = transform.dbt_build(settings, as_of)
        assert outcome.success and outcome.nodes > 100, outcome
        assert warm.answered == 1 and warm.process.pid == pid and warm.process.poll() is None
        # built there for this night's date, and the database is free for this process to write
        assert one(settings.work_db, "select count(*) as n from marts.kpi_province_snapshot where as_of_date = ?",
                   [as_of])["n"] == 1
        con = duckdb.connect(str(settings.work_db))
        con.execute("create table main.written_after_the_build as select 1 as x")
        con.close()

        bad = transform.run_dbt(settings, ["run-operation", "no_such_macro"], as_of)
        assert not bad.success and any("no_such_macro" in f for f in bad.failures), bad
        assert warm.answered == 2 and warm.process.poll() is None

        warm.process.kill()
        warm.process.wait()
        again = transform.run_dbt(settings, ["build", "--select", "dim_district"], as_of)
        assert again.success and again.nodes >= 1 and warm.answered == 2 and warm.process is None
    assert transform._warm is None


def test_a_warm_dbt_process_the_night_did_not_need_is_stopped(built, tmp_path):
    """A night with nothing new never builds: its dbt process, still parsing, is ended."""
    from flows import transform
    from flows.config import load_settings

    settings = load_settings(tmp_path / "inbox", tmp_path / "warehouse")
    with transform.warm_dbt(settings, None) as warm:
        process = warm.process
        assert process.poll() is None
    assert process.poll() is not None and warm.process is None and transform._warm is None


def test_the_marts_not_null_columns_are_enforced_constraints(built, tmp_path):
    """The marts rebuilt whole each night declare their not-null columns as contract constraints
    (DuckDB enforces them when dbt writes the table: a null fails the build) instead of data tests.
    Every one declared in the marts' YAML is a NOT NULL constraint of the built table."""
    import yaml

    declared = set()
    for path in (fx.DBT_PROJECT_DIR / "models" / "marts").glob("*.yml"):
        for model in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models", []):
            for column in model.get("columns", []):
                if {"type": "not_null"} in (column.get("constraints") or []):
                    declared.add((model["name"], column["name"]))
    assert len(declared) >= 25 and ("dim_owner", "owner_key") in declared
    db = tmp_path / "ocop_work.duckdb"
    shutil.copy(built["db"], db)
    con = duckdb.connect(str(db))
    try:
        enforced = set(con.execute(
            "select table_name, unnest(constraint_column_names) from duckdb_constraints() "
            "where schema_name = 'marts' and constraint_type = 'NOT NULL'").fetchall())
        assert declared <= enforced, declared - enforced
        with pytest.raises(duckdb.ConstraintException, match="owner_name"):
            con.execute("insert into marts.dim_owner select * replace (null as owner_name) from marts.dim_owner limit 1")
    finally:
        con.close()


def test_a_night_with_only_new_orders_rebuilds_what_they_and_the_date_reach(built, tmp_path, monkeypatch):
    """flows.transform.dbt_build: after a build that succeeded, a night whose only new raw data is the
    e-commerce platform's rebuilds what that data and the as-of date reach (ORDERS_ONLY), and its
    marts are what a complete build makes. New district data, a changed project or a failed build
    make the next build complete again; so does a failing build of the new orders, at once."""
    import datetime as dt

    from flows import transform

    settings = _night_settings(built, tmp_path)

    def built_models() -> set[str]:
        return {n.split(".")[-1] for n in dbt_nodes_run(settings.dbt_target_dir) if n.startswith("model.")}

    complete = transform.dbt_build(settings, D)
    assert complete.scope == "everything" and "submission_status" in built_models()

    con = duckdb.connect(str(settings.work_db))
    try:  # the next day: a new order line of an unknown SKU, and a listing that maps it
        fx.upsert_order_line(con, "O9", 1, "2024-12-21 10:00:00+07", "SKU-NEW", 2, 70000, 0, "app",
                             "completed", "2024-12-21 10:00:00+07", load_id="1734800000.000001")
        fx.add_listing(con, "L9", "SKU-NEW", "LS01", "active", "2024-12-21 08:00:00+07",
                       "2024-12-21 08:00:00+07", "1734800000.000001")
    finally:
        con.close()
    night = D + dt.timedelta(days=1)
    orders_only = transform.dbt_build(settings, night)
    assert orders_only.scope.startswith("what the new e-commerce data") and orders_only.nodes < complete.nodes
    models = built_models()
    assert {"fct_order_line", "sales_monthly", "int_sku_map", "dim_product", "kpi_province_snapshot",
            "kpi_district_snapshot", "certificates_expiring", "dim_sales_point"} <= models
    assert not {"submission_status", "dim_district", "int_products", "stg_district__products"} & models
    line = one(settings.work_db, "select ma_san_pham, revenue_vnd from marts.fct_order_line where order_id = 'O9'")
    assert line == {"ma_san_pham": "LS01", "revenue_vnd": 140_000}
    assert one(settings.work_db, "select count(*) as n from marts.kpi_province_snapshot where as_of_date = ?",
               [night])["n"] == 1
    after_orders_only = snapshot_marts(settings.work_db)
    (settings.work_dir / transform.BUILD_STAMP).unlink()
    assert transform.dbt_build(settings, night).scope == "everything"
    assert_same_marts(after_orders_only, snapshot_marts(settings.work_db))

    con = duckdb.connect(str(settings.work_db))
    try:  # a district's file checked again: a new verdict
        con.execute("insert into raw.submission_verdicts select * replace (checked_at + interval 1 day as checked_at, "
                    "'1734900000.000001' as _dlt_load_id) from raw.submission_verdicts limit 1")
    finally:
        con.close()
    assert transform.dbt_build(settings, night).scope == "everything"
    assert transform.dbt_build(settings, night).scope != "everything"

    monkeypatch.setattr(transform, "project_fingerprint", lambda: "a model changed")
    assert transform.dbt_build(settings, night).scope == "everything"
    assert transform.dbt_build(settings, night).scope != "everything"

    con = duckdb.connect(str(settings.work_db))
    try:  # a district model's view gone: the build of the new orders fails, a complete one follows
        con.execute("drop view intermediate.int_products")
    finally:
        con.close()
    assert transform.dbt_build(settings, night).scope == "everything"
    assert "int_products" in built_models()

    con = duckdb.connect(str(settings.work_db))
    try:  # an order line the marts' tests refuse fails the build, and leaves nothing stamped ...
        con.execute("insert into marts.fct_order_line by name select * replace ('BAD-1' as order_id, -5 as qty, "
                    "-100000 as revenue_vnd, timestamptz '2999-01-01 00:00:00+00' as dbt_loaded_at) "
                    "from marts.fct_order_line limit 1")  # written last: assert_revenue_rule checks it
    finally:
        con.close()
    with pytest.raises(transform.DbtFailed):
        transform.dbt_build(settings, night)
    assert not (settings.work_dir / transform.BUILD_STAMP).exists()
    con = duckdb.connect(str(settings.work_db))
    try:  # ... so the build after it, the line gone, is complete
        con.execute("delete from marts.fct_order_line where order_id = 'BAD-1'")
    finally:
        con.close()
    assert transform.dbt_build(settings, night).scope == "everything"


def test_orders_only_selects_every_node_that_new_orders_or_the_as_of_date_reach(tmp_path):
    """ORDERS_ONLY, as dbt selects it, holds every model and test that reads the as-of date (through
    any macro) or an e-commerce raw table, or depends on one that does: a model that calls
    as_of_date() without the tag `as_of` fails here."""
    from flows import transform

    manifest = fx.run_dbt(tmp_path / "unused.duckdb", ["parse"], work_dir=tmp_path).result
    listed = fx.run_dbt(tmp_path / "unused.duckdb", ["ls", "--select", *transform.ORDERS_ONLY, "--output", "json",
                                                     "--output-keys", "unique_id"], work_dir=tmp_path)
    assert listed.success
    selected = {json.loads(line)["unique_id"] for line in listed.result}

    def macros(names, seen=None) -> set[str]:
        seen = set() if seen is None else seen
        for name in names:
            if name not in seen and name in manifest.macros:
                seen.add(name)
                macros(manifest.macros[name].depends_on.macros, seen)
        return seen

    orders = {f"source.ocop.raw.{table}" for table in transform.ORDERS_TABLES}
    reached: dict[str, bool] = {}

    def reaches(unique_id: str) -> bool:
        if unique_id not in reached:
            node = manifest.nodes.get(unique_id)  # None: a source or a macro
            reached[unique_id] = unique_id in orders or (node is not None and (
                "macro.ocop.as_of_date" in macros(node.depends_on.macros)
                or any(reaches(parent) for parent in getattr(node.depends_on, "nodes", []))))  # a seed: none
        return reached[unique_id]

    must = {u for u, n in manifest.nodes.items() if n.resource_type in ("model", "test") and reaches(u)}
    assert len(must) > 50 and "model.ocop.dim_sales_point" in must
    assert must <= selected, sorted(must - selected)
    assert "model.ocop.submission_status" not in selected  # what the selection saves
