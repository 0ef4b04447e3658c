"""Second nights on a copy of the demo warehouse: a rejected submission, a blocked publication."""
from __future__ import annotations

import datetime as dt
import hashlib
import shutil

import duckdb
import openpyxl
import pytest
from helpers import AlertReceiver, dbt_nodes_run, product_row, write_workbook

from flows.cli import main as ocop

pytestmark = pytest.mark.e2e
AS_OF = dt.date(2024, 12, 20)


@pytest.fixture
def night_copy(demo_night, tmp_path):
    """The demo night's inbox and warehouse, copied so this test can run more nights on them."""
    settings, _ = demo_night
    inbox, warehouse = tmp_path / "inbox", tmp_path / "warehouse"
    shutil.copytree(settings.inbox, inbox)
    shutil.copytree(settings.warehouse, warehouse, ignore=shutil.ignore_patterns(".ocop-run.lock"))
    return inbox, warehouse


def _district_kpis(db, code):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("select * from marts.kpi_district_snapshot where district_code = ? order by as_of_date",
                           [code]).fetchall()
    finally:
        con.close()


def test_rejected_submission_keeps_earlier_figures_and_alerts_the_district(night_copy, monkeypatch, capsys):
    inbox, warehouse = night_copy
    before = _district_kpis(warehouse / "ocop.duckdb", "536")
    # Lý Sơn re-sends December: a product code claimed by Bình Sơn, and a score outside its star band
    write_workbook(inbox / "districts" / "2024-12" / "DS san pham OCOP Ly Son T12-2024 (sua).xlsx",
                   rows=[product_row(1, "QNg-524-001"), product_row(2, "QNg-536-099", stars=3, score=75)])
    with AlertReceiver() as receiver:
        monkeypatch.setenv("OCOP_ALERT_URLS", receiver.url())
        code = ocop(["run", "--inbox", str(inbox), "--warehouse", str(warehouse), "--as-of", AS_OF.isoformat()])
    out = capsys.readouterr().out
    assert code == 0  # a rejected submission is reported, not fatal
    assert "1 rejected" in out and "ma_san_pham_claimed" in out and "diem_in_star_band" in out

    con = duckdb.connect(str(warehouse / "ocop.duckdb"), read_only=True)
    rows = con.execute("select source_file, status, in_use, errors, failed_rules from marts.submission_status "
                       "where district_code = '536' and period = '2024-12' order by received_at").fetchall()
    con.close()
    assert [(r[1], r[2]) for r in rows] == [("accepted", True), ("rejected", False)]
    assert rows[1][3] == 2 and rows[1][4] == "diem_in_star_band,ma_san_pham_claimed"
    assert _district_kpis(warehouse / "ocop.duckdb", "536") == before  # the earlier figures stay published

    feedback = warehouse / "feedback" / "2024-12" / "ly-son.xlsx"
    sheet = openpyxl.load_workbook(feedback).active
    text = "\n".join(" ".join(str(c) for c in row if c is not None) for row in sheet.iter_rows(values_only=True))
    assert "ma_san_pham_claimed" in text and "QNg-524-001" in text and "diem_in_star_band" in text
    assert len(receiver.posts) == 1
    alert = receiver.posts[0]
    assert "Lý Sơn" in alert["title"] and "12/2024" in alert["title"]
    assert "ly-son.xlsx" in alert["message"]


def test_a_failing_marts_gate_publishes_nothing_and_says_why(night_copy, capsys):
    inbox, warehouse = night_copy
    published = warehouse / "ocop.duckdb"
    digest = hashlib.sha256(published.read_bytes()).hexdigest()
    # corrupt history the incremental model keeps: a negative order line that no new night rewrites
    con = duckdb.connect(str(warehouse / "work" / "ocop_work.duckdb"))
    con.execute("insert into marts.fct_order_line by name select * replace ('BAD-1' as order_id, -5 as qty, "
                "-100000 as revenue_vnd) from marts.fct_order_line limit 1")
    con.close()
    (inbox / "districts" / "2024-12" / "note.txt").write_text("một tệp mới để đêm nay có việc")
    code = ocop(["run", "--inbox", str(inbox), "--warehouse", str(warehouse), "--as-of", AS_OF.isoformat()])
    err = capsys.readouterr().err
    assert code != 0
    # dbt's own tests or the GX marts gate stop it (whichever sees it first), and the run says which check
    assert "nothing published" in err or "dbt build failed" in err
    assert "revenue" in err or "order_line" in err
    assert hashlib.sha256(published.read_bytes()).hexdigest() == digest  # the previous publication stays


def test_marts_gate_names_the_failing_expectation(demo_night, tmp_path):
    from flows import gate

    settings, _ = demo_night
    work = tmp_path / "work.duckdb"
    shutil.copyfile(settings.work_db, work)
    con = duckdb.connect(str(work))
    assert gate.validate_marts(settings, con).success
    con.execute("update marts.kpi_province_snapshot set valid_products_3_star = valid_products_3_star + 1 "
                "where as_of_date = ?", [AS_OF])
    result = gate.validate_marts(settings, con)
    con.close()
    assert not result.success
    assert any("kpi_province_stars_sum" in f for f in result.failures), result.failures


def test_marts_gate_checks_the_order_lines_the_publication_takes(demo_night, tmp_path):
    """With `since`, the gate's pass over fct_order_line reads the rows written after it (what a
    publication built from the previous one takes); without, every row."""
    from flows import gate, publish as publishing

    settings, _ = demo_night
    work = tmp_path / "work.duckdb"
    shutil.copyfile(settings.work_db, work)
    con = duckdb.connect(str(work))
    since = publishing.incremental_since(settings, "fct_order_line", con)
    assert since is not None  # the demo night's publication records its watermark
    # a bad line dbt wrote before the publication (not taken tonight), then one written after it
    con.execute("insert into marts.fct_order_line by name select * replace ('OLD-BAD' as order_id, -5 as qty) "
                "from marts.fct_order_line limit 1")
    assert gate.validate_marts(settings, con, since).success
    assert not gate.validate_marts(settings, con, None).success
    con.execute("insert into marts.fct_order_line by name select * replace ('NEW-BAD' as order_id, -5 as qty, "
                "now() as dbt_loaded_at) from marts.fct_order_line limit 1")
    result = gate.validate_marts(settings, con, since)
    con.close()
    assert not result.success and any("fct_order_line" in f for f in result.failures), result.failures


def test_platform_api_refusing_the_token_does_not_stop_the_districts_night(night_copy, monkeypatch, capsys):
    from flows.platform_server import PlatformServer

    inbox, warehouse = night_copy
    write_workbook(inbox / "districts" / "2025-01" / "BC OCOP T1-2025 Ly Son.xlsx",
                   period_line="Kỳ báo cáo: tháng 1/2025", rows=[product_row(1, "QNg-536-001")])
    with PlatformServer(token="the-right-token", n_listings=3, n_order_lines=10) as server:
        monkeypatch.setenv("OCOP_FEED_API_URL", server.url)
        monkeypatch.setenv("OCOP_FEED_API_TOKEN", "a-wrong-token")
        code = ocop(["run", "--inbox", str(inbox), "--warehouse", str(warehouse), "--as-of", "2025-01-20"])
    out = capsys.readouterr().out
    assert code == 0
    assert "published (as-of 2025-01-20)" in out and "1 accepted" in out
    assert "API auth_failed" in out and "401" in out
    assert "a-wrong-token" not in out


def test_a_night_of_new_orders_only_rebuilds_what_they_reach_and_publishes_them(night_copy, capsys):
    """The night after the demo brings one order line and no district file: dbt builds what the
    platform's data and the as-of date reach (flows/transform.py ORDERS_ONLY), and the publication
    has the new line and the new date's KPIs, the earlier figures unchanged."""
    import json

    inbox, warehouse = night_copy
    before = _district_kpis(warehouse / "ocop.duckdb", "524")
    con = duckdb.connect(str(warehouse / "ocop.duckdb"), read_only=True)
    status_before = con.execute("select * from marts.submission_status order by all").fetchall()
    con.close()
    line = {"order_id": "DH2412210001", "line_no": 1, "ordered_at": "2024-12-21T09:00:00+07:00",
            "sku": "SKU-QNg-524-013-200G", "qty": 3, "unit_price_vnd": 72000, "discount_vnd": 0, "channel": "web",
            "status": "completed", "buyer_province": "Quảng Ngãi", "updated_at": "2024-12-21T09:00:00+07:00"}
    (inbox / "ecommerce" / "orders-2024-12-21.jsonl").write_text(json.dumps(line, ensure_ascii=False) + "\n",
                                                                 encoding="utf-8")
    code = ocop(["run", "--inbox", str(inbox), "--warehouse", str(warehouse), "--as-of", "2024-12-21"])
    captured = capsys.readouterr()
    assert code == 0 and "published (as-of 2024-12-21)" in captured.out
    built = dbt_nodes_run(warehouse / "work" / "dbt-target")
    assert {"model.ocop.fct_order_line", "model.ocop.kpi_province_snapshot", "model.ocop.dim_product"} <= built
    assert not {"model.ocop.submission_status", "model.ocop.int_products"} & built

    con = duckdb.connect(str(warehouse / "ocop.duckdb"), read_only=True)
    try:
        assert con.execute("select revenue_vnd, order_date from marts.fct_order_line where order_id = 'DH2412210001'"
                           ).fetchall() == [(216_000, dt.date(2024, 12, 21))]
        assert con.execute("select count(*) from marts.kpi_province_snapshot where as_of_date = '2024-12-21'"
                           ).fetchone()[0] == 1
        assert con.execute("select * from marts.submission_status order by all").fetchall() == status_before
    finally:
        con.close()
    after = _district_kpis(warehouse / "ocop.duckdb", "524")
    month_ends = [row for row in before if row[0] < AS_OF]
    assert month_ends and [row for row in after if row[0] < AS_OF] == month_ends
