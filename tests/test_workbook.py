import datetime as dt
import json

from helpers import PRODUCT_HEADER, product_row, write_workbook

from flows.workbook import read_submission


def _inbox(tmp_path):
    return tmp_path / "inbox"


def test_reads_title_block_header_rows_totals_and_signatures(tmp_path):
    inbox = _inbox(tmp_path)
    path = write_workbook(inbox / "districts" / "2024-12" / "BC OCOP T12-2024 Ly Son.xlsx",
                          rows=[product_row(1, "QNg-536-001"), product_row(2, "QNg-536-002", stars="★★★★", score="75,5",
                                                                             recognised="5/7/2024", level="Tỉnh")],
                          sales_rows=[[1, "Điểm bán OCOP Lý Sơn", "Thôn Đông", "An Vĩnh", "Xã hội hóa", dt.date(2023, 5, 1)]])
    sub = read_submission(path, inbox)
    assert (sub.district_code, sub.period) == ("536", "2024-12")
    assert not sub.errors
    assert [p["ma_san_pham"] for p in sub.products] == ["QNg-536-001", "QNg-536-002"]
    assert [p["row_number"] for p in sub.products] == [8, 9]  # original sheet rows: 6 title rows + header
    second = sub.products[1]
    assert (second["hang_sao"], second["diem"], second["ngay_cong_nhan"]) == (4, 75.5, dt.date(2024, 7, 5))
    assert second["ngay_het_han"] == dt.date(2027, 7, 5)  # blank expiry: recognition + 36 months
    assert json.loads(second["source_values"])["Điểm"] == "75,5"  # what the district typed is kept
    assert sub.sales_points[0]["hinh_thuc"] == "xa_hoi_hoa"


def test_missing_sales_points_sheet_is_a_warning(tmp_path):
    inbox = _inbox(tmp_path)
    path = write_workbook(inbox / "districts" / "BC OCOP T12-2024 Ly Son.xlsx", rows=[product_row(1, "QNg-536-001")],
                          sales_header=None)
    sub = read_submission(path, inbox)
    assert not sub.errors
    assert [w.rule for w in sub.warnings] == ["sales_points_sheet_missing"]


def test_conflicting_district_is_rejected_with_reason(tmp_path):
    inbox = _inbox(tmp_path)
    path = write_workbook(inbox / "districts" / "BC OCOP T12-2024 Binh Son.xlsx", unit="UBND HUYỆN LÝ SƠN",
                          rows=[product_row(1, "QNg-536-001")])
    sub = read_submission(path, inbox)
    assert [e.rule for e in sub.errors] == ["district_conflict"]
    assert "Lý Sơn" in sub.errors[0].message and "Bình Sơn" in sub.errors[0].message


def test_unresolvable_period_is_rejected(tmp_path):
    inbox = _inbox(tmp_path)
    path = write_workbook(inbox / "districts" / "OCOP Ly Son.xlsx", period_line="Danh sách", rows=[product_row(1, "X")])
    assert "period_unresolved" in [e.rule for e in read_submission(path, inbox).errors]


def test_missing_required_column_and_unreadable_cells(tmp_path):
    inbox = _inbox(tmp_path)
    header = [h for h in PRODUCT_HEADER if h != "Điểm"]
    row = product_row(1, "QNg-536-001", recognised="hôm qua")
    del row[5]
    path = write_workbook(inbox / "districts" / "BC OCOP T12-2024 Ly Son.xlsx", header=header, rows=[row])
    sub = read_submission(path, inbox)
    rules = {e.rule for e in sub.errors}
    assert {"required_columns", "ngay_cong_nhan_unreadable"} <= rules
    bad_date = next(e for e in sub.errors if e.rule == "ngay_cong_nhan_unreadable")
    assert (bad_date.row, bad_date.value) == (8, "hôm qua")


def test_not_a_workbook_is_rejected(tmp_path):
    inbox = _inbox(tmp_path)
    path = inbox / "districts" / "BC OCOP T12-2024 Ly Son.xlsx"
    path.parent.mkdir(parents=True)
    path.write_text("this is not excel")
    sub = read_submission(path, inbox)
    assert [e.rule for e in sub.errors] == ["unreadable_file"]
    assert (sub.district_code, sub.period) == ("536", "2024-12")  # still resolved from the name, for the alert
