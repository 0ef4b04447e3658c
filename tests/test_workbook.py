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


# --------------------------------------------------------------------------------------------
# Header aliases (flows/reference/header_aliases.csv), matched accent-, case-, space- and
# word-order-insensitively
# --------------------------------------------------------------------------------------------

import csv  # noqa: E402
import unicodedata  # noqa: E402

import pytest  # noqa: E402

from flows import workbook  # noqa: E402
from flows.config import REFERENCE_DIR  # noqa: E402


def test_every_canonical_column_has_aliases_kept_as_data():
    with open(REFERENCE_DIR / "header_aliases.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_kind = {}
    for r in rows:
        by_kind.setdefault(r["sheet"], set()).add(r["canonical"])
    assert set(workbook.PRODUCT_COLUMNS) <= by_kind["products"]
    assert set(workbook.SALES_POINT_COLUMNS) <= by_kind["sales_points"]
    for column in workbook.PRODUCT_COLUMNS:  # the form's own label always matches
        assert workbook.match_header(workbook.COLUMN_LABELS[column], "products") == column
    for column in workbook.SALES_POINT_COLUMNS:
        label = {"xa_phuong": "Xã/phường", "hinh_thuc": "Hình thức"}.get(column, workbook.COLUMN_LABELS.get(column))
        assert workbook.match_header(label, "sales_points") == column


@pytest.mark.parametrize("text, column", [
    ("Tên sản phẩm", "ten_san_pham"), ("TÊN SẢN PHẨM", "ten_san_pham"), ("ten san pham", "ten_san_pham"),
    (unicodedata.normalize("NFD", "Tên sản phẩm"), "ten_san_pham"), ("  Tên   sản\nphẩm ", "ten_san_pham"),
    ("TenSanPham", "ten_san_pham"), ("Tên sản phẩm (ghi đầy đủ)", "ten_san_pham"), ("Sản phẩm - Tên", "ten_san_pham"),
    ("Chủ thể OCOP Tên", "ten_chu_the"), ("Quyết định công nhận - Số", "so_quyet_dinh"),
    ("Quyết định công nhận Ngày", "ngay_cong_nhan"), ("Hạng sao (★)", "hang_sao"), ("MST", "ma_so_thue"),
    ("Điểm (thang 100)", "diem"), ("Lên sàn TMĐT (Có/Không)", "len_san_tmdt"), ("Số TT", "stt"),
    ("Số điện thoại", None), ("Tên", None), ("Số", None), ("", None), (None, None),
])
def test_header_matching(text, column):
    assert workbook.match_header(text, "products") == column


def test_alias_table_has_no_ambiguous_word_bag():
    exact, _, bags = workbook._alias_tables("products")
    assert len({workbook._bag(k) for k in exact}) >= len(bags)
    # every alias resolves to its own canonical column through the word-bag path too
    assert all(bags.get(workbook._bag(k), v) == v for k, v in exact.items())


@pytest.mark.parametrize("cells, kind", [
    (["", "", ""], "blank"),
    (["(1)", "(2)", "(3)", "(4)"], "header"),
    (["", "(mã tỉnh cấp)", "(ghi đầy đủ)", "", "(sao)", "(điểm)"], "header"),
    (["I. Xã Bình Châu", "", ""], "group"),
    (["II", "Xã An Hải"], "group"),
    (["Tổng cộng: 12 sản phẩm", "", "", "12"], "totals"),
    (["Cộng xã An Vĩnh", "", "", "", "3", "180,5"], "totals"),
    (["", "NGƯỜI LẬP BIỂU", "", "TRƯỞNG PHÒNG"], "signature"),
    (["", "(Ký, ghi rõ họ tên)", "", "(Ký tên, đóng dấu)"], "signature"),
    (["Ghi chú:", "Sản phẩm số 3 đã hết hạn"], "note"),
    (["", "", "", "Bình Sơn, ngày 05 tháng 01 năm 2025"], "note"),
    ([1, "QNg-524-001", "Tỏi", "Thực phẩm", 3, 62.5], "data"),
    (["", "QNg-524-002", "Công ty TNHH Hải Đăng"], "data"),  # half-filled: kept, the gate says what is missing
    ([2, "QNg-524-003", "Cộng đồng du lịch Hang Câu", "", 4], "data"),
])
def test_row_kinds(cells, kind):
    columns = {1: "ma_san_pham", 2: "ten_san_pham", 3: "nhom_san_pham", 4: "hang_sao", 5: "diem"}
    assert workbook._row_kind(cells, columns) == kind


def test_period_comes_from_the_report_line_not_the_signing_date():
    lines = ["UBND HUYỆN BÌNH SƠN CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Bình Sơn, ngày 05 tháng 01 năm 2025",
             "DANH SÁCH SẢN PHẨM OCOP", "Kỳ báo cáo: tháng 12/2024"]
    assert workbook._title_periods(lines) == {"2024-12"}
    assert workbook._title_periods(["DANH SÁCH SẢN PHẨM OCOP THÁNG 12/2024", "Bình Sơn, ngày 5 tháng 1 năm 2025"]) \
        == {"2024-12"}


def test_a_half_filled_row_is_loaded_not_dropped(tmp_path):
    inbox = _inbox(tmp_path)
    half = [2, "QNg-536-002", "Hành tím Lý Sơn"] + [None] * 13
    path = write_workbook(inbox / "districts" / "BC OCOP T12-2024 Ly Son.xlsx", rows=[product_row(1, "QNg-536-001"), half])
    sub = read_submission(path, inbox)
    assert [p["ma_san_pham"] for p in sub.products] == ["QNg-536-001", "QNg-536-002"]
    assert sub.products[1]["hang_sao"] is None  # the gate reports the missing values, row by row


def test_district_and_period_from_folder_names_accent_insensitively(tmp_path):
    inbox = _inbox(tmp_path)
    folder = inbox / "districts" / "BÌNH SƠN" / "T12-2024"
    path = write_workbook(folder / "Bao cao OCOP.xlsx", unit="DANH SÁCH SẢN PHẨM", period_line="Danh sách",
                          rows=[product_row(1, "QNg-524-001")])
    sub = read_submission(path, inbox)
    assert (sub.district_code, sub.period) == ("524", "2024-12") and not sub.errors


def test_a_row_of_units_under_the_header_is_not_a_product(tmp_path):
    inbox = _inbox(tmp_path)
    units = [None, "(mã tỉnh cấp)", "(ghi đầy đủ)", None, "(sao)", "(điểm)", None, None, None, "(dd/mm/yyyy)"]
    path = write_workbook(inbox / "districts" / "BC OCOP T12-2024 Ly Son.xlsx",
                          rows=[units, product_row(1, "QNg-536-001"), product_row(2, "QNg-536-002")])
    sub = read_submission(path, inbox)
    assert not sub.errors
    assert [(p["ma_san_pham"], p["row_number"]) for p in sub.products] == [("QNg-536-001", 9), ("QNg-536-002", 10)]
