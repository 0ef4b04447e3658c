"""A tiny working DuckDB with the raw tables of docs/raw-contract.md, and a helper to run dbt on it.

Two districts (524 Bình Sơn, 536 Lý Sơn), a handful of submissions, products, sales points,
listings and order lines; the figures they must give are worked out by hand in test_dbt_build.py.

    python tests/dbt/make_raw_fixture.py /tmp/ocop_fixture.duckdb   # builds the DB and runs dbt build
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import duckdb

from flows.config import DBT_PROJECT_DIR, process_environment

AS_OF = "2024-12-20"

DDL = """
create schema if not exists raw;
create table raw.submissions (
    submission_id varchar, source_file varchar, file_name varchar, content_hash varchar,
    file_size bigint, received_at timestamptz, district_code varchar, period varchar,
    products_sheet varchar, sales_points_sheet varchar, has_sales_points_sheet boolean,
    rows_received bigint, sales_points_received bigint, parse_errors varchar, parse_warnings varchar,
    _dlt_load_id varchar);
create table raw.submission_verdicts (
    submission_id varchar, checked_at timestamptz, status varchar, errors bigint, warnings bigint,
    failed_rules varchar, issues varchar, _dlt_load_id varchar);
create table raw.district_products (
    submission_id varchar, source_file varchar, content_hash varchar, sheet varchar, row_number bigint,
    ma_san_pham varchar, ten_san_pham varchar, nhom_san_pham varchar, nhom_san_pham_goc varchar,
    hang_sao bigint, diem double, so_quyet_dinh varchar, cap_cong_nhan varchar, hinh_thuc varchar,
    tiem_nang_5_sao boolean, ngay_cong_nhan date, ngay_het_han date, ten_chu_the varchar,
    loai_hinh_chu_the varchar, ma_so_thue varchar, xa_phuong varchar, len_san_tmdt boolean,
    lang_nghe boolean, chu_the_da_tap_huan boolean, kenh_hien_dai boolean, ghi_chu varchar,
    source_values varchar, _dlt_load_id varchar);
create table raw.district_sales_points (
    submission_id varchar, source_file varchar, content_hash varchar, sheet varchar, row_number bigint,
    ten_diem_ban varchar, dia_chi varchar, xa_phuong varchar, hinh_thuc varchar, ngay_hoat_dong date,
    source_values varchar, _dlt_load_id varchar);
create table raw.ecommerce_listings (
    listing_id varchar, sku varchar, ma_san_pham varchar, title varchar, price_vnd bigint,
    status varchar, listed_at timestamptz, updated_at timestamptz, source varchar, _dlt_load_id varchar);
create table raw.ecommerce_order_lines (
    order_id varchar, line_no bigint, ordered_at timestamptz, sku varchar, qty bigint,
    unit_price_vnd bigint, discount_vnd bigint, channel varchar, status varchar,
    buyer_province varchar, updated_at timestamptz, source varchar, _dlt_load_id varchar);
"""

L1 = "1730000000.000001"  # district loads
L2 = "1734700000.000001"  # e-commerce load of the first night

# submission_id, district, period, received_at, has sales-points sheet, product rows, sales-point rows, errors json
SUBMISSIONS = [
    ("sub_bs_2024_06", "524", "2024-06", "2024-07-03 09:00:00+07", True, 3, 2),
    ("sub_bs_2024_11", "524", "2024-11", "2024-12-05 10:00:00+07", False, 3, 0),
    ("sub_bs_2024_12", "524", "2024-12", "2024-12-15 08:00:00+07", True, 1, 1),   # rejected
    ("sub_ls_2024_09", "536", "2024-09", "2024-10-02 09:00:00+07", True, 2, 1),
    ("sub_ls_2024_11", "536", "2024-11", "2024-11-28 09:00:00+07", True, 4, 2),   # in use
    ("sub_ls_2024_10", "536", "2024-10", "2024-12-10 09:00:00+07", False, 1, 0),  # later, older period
    ("sub_unknown", None, None, "2024-12-16 09:00:00+07", False, 0, 0),          # unresolved, rejected
]

# submission_id, checked_at, status, errors, warnings, failed_rules
VERDICTS = [
    ("sub_bs_2024_06", "2024-07-03 09:05:00+07", "accepted", 0, 0, ""),
    ("sub_bs_2024_11", "2024-12-05 10:05:00+07", "accepted", 0, 1, "nhom_san_pham_known"),
    ("sub_bs_2024_12", "2024-12-15 08:05:00+07", "accepted", 0, 0, ""),
    ("sub_bs_2024_12", "2024-12-15 09:00:00+07", "rejected", 2, 0, "hang_sao_valid,diem_matches_hang_sao"),
    ("sub_ls_2024_09", "2024-10-02 09:05:00+07", "accepted", 0, 0, ""),
    ("sub_ls_2024_11", "2024-11-28 09:05:00+07", "accepted", 0, 0, ""),
    ("sub_ls_2024_10", "2024-12-10 09:05:00+07", "accepted", 0, 0, ""),
    ("sub_unknown", "2024-12-16 09:05:00+07", "rejected", 1, 0, "district_resolved"),
]

NFD_TRAN_THI_LY = "Tra\u0300n Thi\u0323 Ly\u0301"  # "Trần Thị Lý" decomposed (NFD)

# submission, row, ma, ten, nhom, nhom_goc, sao, diem, so_qd, cap, hinh_thuc, tiem5, ngay_cn, ngay_hh,
# chu_the, loai, mst, xa, tmdt, lang_nghe, tap_huan, kenh_hien_dai
P = [
    ("sub_bs_2024_06", 5, "BS01", "Mạch nha Bình Sơn", "I", "Thực phẩm", 3, 62.0, "1001/QĐ-UBND", "huyen", "moi", False,
     "2021-05-10", "2024-05-10", "HTX Nông nghiệp Bình Minh", "hop_tac_xa", "4300000001", "Bình Minh", True, False, True, False),
    ("sub_bs_2024_06", 6, "BS02", "Bánh tráng Bình Sơn", "I", "Thực phẩm", 3, 58.5, "1500/QĐ-UBND", "huyen", "moi", False,
     "2022-03-15", None, "Hộ kinh doanh Nguyễn Văn Bình", "ho_kinh_doanh", None, "Bình Châu", True, False, True, False),
    ("sub_bs_2024_06", 7, "BS03", "Tinh dầu sả Bình Sơn", "III", "Dược liệu", 3, 66.0, "300/QĐ-UBND", "huyen", "moi", False,
     "2023-01-20", "2026-01-20", "Công ty TNHH Hương Sả", "doanh_nghiep", "4300000002", "Bình Trung", True, False, True, True),
    ("sub_bs_2024_11", 5, "BS02", "Bánh tráng Bình Sơn", "I", "Thực phẩm", 3, 58.5, "1500/QĐ-UBND", "huyen", "moi", False,
     "2022-03-15", None, "Ho kinh doanh  Nguyen Van Binh", "ho_kinh_doanh", None, "Bình Châu", True, False, True, False),
    ("sub_bs_2024_11", 6, "BS03", "Tinh dầu sả Bình Sơn", "III", "Dược liệu", 4, 78.0, "2100/QĐ-UBND", "tinh", "nang_hang", False,
     "2024-08-01", "2027-08-01", "Công ty TNHH Hương Sả", "doanh_nghiep", "4300000002", "Bình Trung", True, False, True, True),
    ("sub_bs_2024_11", 7, "BS04", "Chổi đót Bình Sơn", "IV", "Thủ công mỹ nghệ", 3, 55.0, "3500/QĐ-UBND", "huyen", "moi", False,
     "2024-10-10", "2027-10-10", "HTX Nông nghiệp Bình Minh", "hop_tac_xa", "4300000001", "Bình Minh", False, True, True, False),
    ("sub_bs_2024_12", 5, "BS05", "Gốm Bình Sơn", "IV", "Thủ công mỹ nghệ", 5, 92.0, "5000/QĐ-UBND", "trung_uong", "moi", True,
     "2024-12-01", "2027-12-01", "HTX Gốm Bình Sơn", "hop_tac_xa", None, "Bình Hòa", False, True, True, False),
    ("sub_ls_2024_09", 5, "LS01", "Tỏi Lý Sơn", "I", "Thực phẩm", 3, 60.0, "200/QĐ-UBND", "huyen", "moi", False,
     "2023-06-01", "2026-06-01", "Tổ hợp tác sản xuất tỏi An Vĩnh", "to_hop_tac", None, "An Vĩnh", True, False, False, False),
    ("sub_ls_2024_09", 6, "LS02", "Hành tím Lý Sơn", "I", "Thực phẩm", 4, 75.0, "150/QĐ-UBND", "tinh", "moi", False,
     "2022-12-01", "2025-12-01", "Trần Thị Lý", "ho_kinh_doanh", None, "An Hải", False, False, True, False),
    ("sub_ls_2024_11", 5, "LS01", "Tỏi Lý Sơn", "I", "Thực phẩm", 3, 65.0, "200/QĐ-UBND", "huyen", "moi", False,
     "2023-06-01", "2026-06-01", "Tổ hợp tác sản xuất tỏi An Vĩnh", "to_hop_tac", None, "An Vĩnh", True, False, False, False),
    ("sub_ls_2024_11", 6, "LS02", "Hành tím Lý Sơn", "I", "Thực phẩm", 4, 75.0, "150/QĐ-UBND", "tinh", "moi", False,
     "2022-12-01", "2025-12-01", "Trần Thị Lý", "ho_kinh_doanh", None, "An Hải", False, False, True, False),
    ("sub_ls_2024_11", 7, "LS03", "Rong biển Lý Sơn", "I", "Thực phẩm", 3, 57.0, "4000/QĐ-UBND", "huyen", "moi", False,
     "2024-12-20", "2027-12-20", "Tran Thi Ly", "to_hop_tac", None, "An Hải", True, False, True, False),
    ("sub_ls_2024_11", 8, "LS04", "Bánh ít lá gai Lý Sơn", "I", "Thực phẩm", 3, 52.0, "900/QĐ-UBND", "huyen", "moi", False,
     "2021-12-20", "2024-12-20", NFD_TRAN_THI_LY, "ho_kinh_doanh", None, "An Hải", False, False, True, False),
    ("sub_ls_2024_10", 5, "LS01", "Tỏi Lý Sơn", "I", "Thực phẩm", 3, 61.0, "200/QĐ-UBND", "huyen", "moi", False,
     "2023-06-01", "2026-06-01", "Tổ hợp tác sản xuất tỏi An Vĩnh", "to_hop_tac", None, "An Vĩnh", True, False, False, False),
]

# submission, row, name, address, commune, funding, opened
SP = [
    ("sub_bs_2024_06", 5, "Điểm bán OCOP Bình Sơn", "Thị trấn Châu Ổ", "Châu Ổ", "nha_nuoc_ho_tro", "2023-05-01"),
    ("sub_bs_2024_06", 6, "Cửa hàng đặc sản Bình Minh", "Xã Bình Minh", "Bình Minh", "xa_hoi_hoa", "2024-03-01"),
    ("sub_bs_2024_12", 5, "Cửa hàng Gốm", "Xã Bình Hòa", "Bình Hòa", "xa_hoi_hoa", "2024-12-01"),
    ("sub_ls_2024_09", 5, "Điểm giới thiệu sản phẩm OCOP Lý Sơn", "Thôn Đông", "An Vĩnh", "xa_hoi_hoa", "2023-01-01"),
    ("sub_ls_2024_11", 5, "Điểm giới thiệu sản phẩm OCOP Lý Sơn", "Thôn Đông", "An Vĩnh", "xa_hoi_hoa", "2023-01-01"),
    ("sub_ls_2024_11", 6, "Cửa hàng OCOP cảng Lý Sơn", "Cảng Lý Sơn", "An Vĩnh", "nha_nuoc_ho_tro", "2025-01-10"),
]

# listing_id, sku, ma, status, listed_at, updated_at
LISTINGS = [
    ("L1", "SKU-BS02", " bs02 ", "active", "2024-01-01 08:00:00+07", "2024-06-01 08:00:00+07"),
    ("L2", "SKU-BS03", "BS03", "delisted", "2023-05-01 08:00:00+07", "2024-11-01 08:00:00+07"),
    ("L3", "SKU-LS02", "LS02", "active", "2025-01-05 08:00:00+07", "2025-01-05 08:00:00+07"),
    ("L4", "SKU-LS01", "LS01", "active", "2024-06-01 08:00:00+07", "2024-06-01 08:00:00+07"),
    ("L5", "SKU-BS01", "BS01", "active", "2022-01-01 08:00:00+07", "2022-01-01 08:00:00+07"),
    ("L6", "SKU-LS03", "LS03", "draft", "2024-12-01 08:00:00+07", "2024-12-01 08:00:00+07"),
    ("L7", "SKU-BS04", "BS04", "delisted", "2024-10-15 08:00:00+07", "2024-12-25 08:00:00+07"),
]

# order_id, line_no, ordered_at, sku, qty, unit price, discount, channel, status, updated_at
ORDER_LINES = [
    ("O1", 1, "2024-12-01 10:00:00+07", "SKU-BS02", 2, 50000, 10000, "web", "completed", "2024-12-02 10:00:00+07"),
    ("O1", 2, "2024-12-01 10:00:00+07", "SKU-LS01", 1, 120000, 0, "web", "cancelled", "2024-12-02 11:00:00+07"),
    ("O2", 1, "2024-12-03 15:00:00+07", "SKU-UNKNOWN", 3, 10000, 0, "app", "completed", "2024-12-04 10:00:00+07"),
    ("O3", 1, "2024-12-01 00:30:00+07", "SKU-LS01", 1, 120000, 0, "app", "completed", "2024-12-02 09:00:00+07"),
    ("O4", 1, "2024-12-10 12:00:00+07", "SKU-BS04", 5, 20000, 5000, "web", "returned", "2024-12-15 12:00:00+07"),
    ("O5", 1, "2024-11-15 09:00:00+07", "SKU-BS03", 1, 300000, 0, "web", "completed", "2024-11-16 09:00:00+07"),
]


def create_raw(db_path: str | Path) -> Path:
    """Create the raw schema with the fixture rows (replacing any file at db_path)."""
    db_path = Path(db_path)
    if db_path.exists():
        db_path.unlink()
    con = duckdb.connect(str(db_path))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(DDL)
        for sid, district, period, received, has_sp, rows, sp_rows in SUBMISSIONS:
            name = f"BC OCOP {period or 'unknown'} {district or 'unknown'}.xlsx"
            errors = '[{"rule": "district_resolved", "message": "Không xác định được huyện"}]' if district is None else "[]"
            con.execute(
                "insert into raw.submissions values (?, ?, ?, ?, ?, ?::timestamptz, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [sid, f"districts/{name}", name, sid, 10_000, received, district, period, "San pham",
                 "Diem ban" if has_sp else None, has_sp, rows, sp_rows, errors, "[]", L1],
            )
        for sid, checked, status, errors, warnings, rules in VERDICTS:
            con.execute(
                "insert into raw.submission_verdicts values (?, ?::timestamptz, ?, ?, ?, ?, ?, ?)",
                [sid, checked, status, errors, warnings, rules, "[]", L1],
            )
        for r in P:
            (sid, row, ma, ten, nhom, nhom_goc, sao, diem, qd, cap, ht, t5, ncn, nhh, chu, loai, mst, xa,
             tmdt, ln, th, khd) = r
            con.execute(
                "insert into raw.district_products values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?::date, ?::date, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [sid, f"districts/{sid}.xlsx", sid, "San pham", row, ma, ten, nhom, nhom_goc, sao, diem, qd, cap,
                 ht, t5, ncn, nhh, chu, loai, mst, xa, tmdt, ln, th, khd, None, "{}", L1],
            )
        for sid, row, name, addr, xa, ht, opened in SP:
            con.execute(
                "insert into raw.district_sales_points values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?::date, ?, ?)",
                [sid, f"districts/{sid}.xlsx", sid, "Diem ban", row, name, addr, xa, ht, opened, "{}", L1],
            )
        for lid, sku, ma, status, listed, updated in LISTINGS:
            add_listing(con, lid, sku, ma, status, listed, updated, L2)
        for line in ORDER_LINES:
            upsert_order_line(con, *line, load_id=L2)
    finally:
        con.close()
    return db_path


def add_listing(con, lid, sku, ma, status, listed, updated, load_id):
    con.execute("delete from raw.ecommerce_listings where listing_id = ?", [lid])
    con.execute(
        "insert into raw.ecommerce_listings values (?, ?, ?, ?, ?, ?, ?::timestamptz, ?::timestamptz, ?, ?)",
        [lid, sku, ma, f"Listing {lid}", 100_000, status, listed, updated, "listings.jsonl", load_id],
    )


def upsert_order_line(con, order_id, line_no, ordered_at, sku, qty, price, discount, channel, status, updated,
                      load_id):
    """What dlt's merge does: the newest version of (order_id, line_no) replaces the old one."""
    con.execute("delete from raw.ecommerce_order_lines where order_id = ? and line_no = ?", [order_id, line_no])
    con.execute(
        "insert into raw.ecommerce_order_lines values (?, ?, ?::timestamptz, ?, ?, ?, ?, ?, ?, ?, ?::timestamptz, ?, ?)",
        [order_id, line_no, ordered_at, sku, qty, price, discount, channel, status, "Quảng Ngãi", updated,
         "orders.jsonl", load_id],
    )


def run_dbt(db_path: str | Path, args: list[str], as_of: str = AS_OF, work_dir: str | Path | None = None):
    """Run one dbt command in-process against db_path; target/ and logs/ go to work_dir (a temp dir)."""
    from dbt.cli.main import dbtRunner

    work_dir = Path(work_dir or tempfile.mkdtemp(prefix="ocop-dbt-"))
    env = {
        "OCOP_WORK_DB": str(db_path),
        "DBT_TARGET_PATH": str(work_dir / "target"),
        "DBT_LOG_PATH": str(work_dir / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }
    with process_environment(**env):
        cli_args = [
            *args,
            "--project-dir", str(DBT_PROJECT_DIR),
            "--profiles-dir", str(DBT_PROJECT_DIR),
            "--vars", f"{{as_of_date: '{as_of}'}}",
        ]
        try:
            return dbtRunner().invoke(cli_args)
        finally:
            # dbt-duckdb keeps the database open in this process; let go of it (as flows/transform.py does)
            from dbt.adapters.duckdb.connections import DuckDBConnectionManager

            DuckDBConnectionManager.close_all_connections()


def build(db_path: str | Path, work_dir: str | Path | None = None):
    """Create the raw fixture and run `dbt build` on it. Returns the dbtRunnerResult."""
    create_raw(db_path)
    return run_dbt(db_path, ["build"], work_dir=work_dir)


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else str(Path(tempfile.mkdtemp()) / "ocop_fixture.duckdb")
    res = build(target)
    print(f"dbt build on {target}: {'OK' if res.success else 'FAILED'}")
    sys.exit(0 if res.success else 1)
