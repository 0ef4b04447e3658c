"""The GX submission gate, one workbook per rule (real dlt load, real GX suite from expectations/)."""
from __future__ import annotations

import datetime as dt

import pytest
from helpers import SALES_HEADER, check_submission, product_row

GOOD = [product_row(1, "QNg-536-001"), product_row(2, "QNg-536-002", name="Hành Lý Sơn")]


def test_a_clean_submission_is_accepted(tmp_path):
    _, verdict = check_submission(tmp_path, GOOD)
    assert verdict.status == "accepted", verdict.issues
    assert verdict.errors == []


@pytest.mark.parametrize("rows, rule, row, value", [
    ([product_row(1, "QNg-536-001"), product_row(2, "QNg-536-001")], "ma_san_pham_unique", 8, "QNg-536-001"),
    ([product_row(1, None)], "ma_san_pham_required", 8, None),
    ([product_row(1, "QNg-536-001", name=None)], "ten_san_pham_required", 8, None),
    ([product_row(1, "QNg-536-001", owner=None)], "ten_chu_the_required", 8, None),
    ([product_row(1, "QNg-536-001", stars=6, score=95)], "hang_sao_in_set", 8, "6"),
    ([product_row(1, "QNg-536-001", stars=3, score=75)], "diem_in_star_band", 8, "75"),
    ([product_row(1, "QNg-536-001", stars="4 sao", score="65,5")], "diem_in_star_band", 8, "65,5"),
    ([product_row(1, "QNg-536-001", recognised=dt.date(2025, 1, 3))], "ngay_cong_nhan_after_period", 8, "2025-01-03"),
    ([product_row(1, "QNg-536-001", recognised=dt.date(2024, 1, 3), expires=dt.date(2023, 1, 3))],
     "ngay_het_han_invalid", 8, "2023-01-03"),
    ([product_row(1, "QNg-536-001", recognised=dt.date(2024, 1, 3), expires=dt.date(2027, 6, 3))],
     "ngay_het_han_invalid", 8, "2027-06-03"),
    ([product_row(1, "QNg-536-001", tax="43001234")], "ma_so_thue_format", 8, "43001234"),
    ([product_row(1, "QNg-536-001", recognised="hôm qua")], "ngay_cong_nhan_unreadable", 8, "hôm qua"),
    ([product_row(1, "QNg-536-001", owner_type="Liên doanh")], "loai_hinh_chu_the_unreadable", 8, "Liên doanh"),
    ([product_row(1, "QNg-536-001", group="Điện tử")], "nhom_san_pham_unreadable", 8, "Điện tử"),
])
def test_each_error_rule_rejects_the_submission(tmp_path, rows, rule, row, value):
    _, verdict = check_submission(tmp_path, rows)
    assert verdict.status == "rejected"
    hits = [i for i in verdict.errors if i.rule == rule]
    assert hits, [i.rule for i in verdict.errors]
    assert hits[0].row == row
    assert hits[0].value == value
    assert hits[0].message and hits[0].fix  # Vietnamese message and how to fix it


def test_a_sheet_without_data_rows_is_rejected(tmp_path):
    _, verdict = check_submission(tmp_path, [])
    assert "no_data_rows" in verdict.failed_rules


def test_sales_point_rules(tmp_path):
    _, verdict = check_submission(tmp_path, GOOD, sales_rows=[[1, "Điểm bán OCOP", "Thôn Đông", "An Vĩnh", "Tư nhân góp",
                                                                dt.date(2023, 5, 1)]], sales_header=SALES_HEADER)
    assert verdict.status == "rejected"
    assert "hinh_thuc_unreadable" in verdict.failed_rules


@pytest.mark.parametrize("rows, rule", [
    ([product_row(1, "QNg-536-001", owner="HTX An Vĩnh"), product_row(2, "QNg-536-002", owner="HTX Đông Hải")],
     "chu_the_inconsistent"),
    ([product_row(1, "QNg-536-001", recognised=dt.date(2022, 1, 20))], "expiring_within_90_days"),
    ([product_row(1, "QNg-536-001", commune=None)], "xa_phuong_missing"),
])
def test_warning_rules_report_but_do_not_block(tmp_path, rows, rule):
    _, verdict = check_submission(tmp_path, rows)
    assert verdict.status == "accepted"
    assert rule in {w.rule for w in verdict.warnings}
