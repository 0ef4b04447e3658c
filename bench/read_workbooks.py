"""Benchmark: read 13 district workbooks of 500 products each (one per district-level unit).

    PYTHONPATH=. python bench/read_workbooks.py [--rows 500] [--repeat 5] [--keep DIR]

The workbooks are generated first (openpyxl, not timed), in the layouts districts use: title blocks of
different heights, one- and two-row merged headers, a numbering row, group and totals rows,
signatures, values typed in many forms. Then each is read with flows.workbook.read_submission
(python-calamine) `--repeat` times; the best time is reported per workbook, with rows/s.
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openpyxl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flows import domain  # noqa: E402
from flows.workbook import _check_container, read_submission  # noqa: E402

FILE_NAMES = {
    "522": "Bao cao OCOP thang 12.2024 - TP Quang Ngai.xlsx", "524": "BC OCOP T12-2024 Binh Son.xlsx",
    "525": "OCOP_TraBong_T12_2024.xlsx", "527": "Son Tinh - DS OCOP thang 12-2024.xlsx",
    "528": "TuNghia_BaoCao_OCOP_2024-12.xlsx", "529": "DS san pham OCOP Son Ha 12-2024.xlsx",
    "530": "Son Tay_OCOP_T12.2024.xlsx", "531": "MINH LONG - OCOP 12 2024.xlsx",
    "532": "Bao cao san pham OCOP Nghia Hanh T12 nam 2024.xlsx", "533": "BC_OCOP_MoDuc_thang12_2024.xlsx",
    "534": "Duc Pho - bao cao OCOP 12-2024.xlsx", "535": "OCOP Ba To T12-2024.xlsx",
    "536": "DS san pham OCOP Ly Son T12-2024.xlsx",
}
SINGLE = ["STT", "Mã sản phẩm", "Tên sản phẩm", "Nhóm sản phẩm", "Hạng sao", "Điểm", "Số quyết định", "Cấp công nhận",
          "Hình thức", "Tiềm năng 5 sao", "Ngày công nhận", "Ngày hết hạn", "Tên chủ thể", "Loại hình chủ thể",
          "Mã số thuế", "Xã/phường", "Lên sàn TMĐT", "Làng nghề", "Chủ thể đã tập huấn", "Kênh hiện đại", "Ghi chú"]
TOP = ["STT", "Sản phẩm", None, None, "Hạng sao", "Điểm", "Quyết định công nhận", None, None, "Tiềm năng 5 sao",
       "Ngày công nhận", "Ngày hết hạn", "Chủ thể OCOP", None, None, "Xã/phường", "Lên sàn TMĐT", "Làng nghề",
       "Chủ thể đã tập huấn", "Kênh hiện đại", "Ghi chú"]
BOTTOM = [None, "Mã", "Tên", "Nhóm", None, None, "Số", "Cấp", "Hình thức", None, None, None, "Tên", "Loại hình",
          "Mã số thuế"] + [None] * 6
GROUPS = ["Thực phẩm", "Đồ uống", "Thảo dược", "Thủ công mỹ nghệ", "Sinh vật cảnh", "Dịch vụ du lịch nông thôn"]
OWNERS = ["HTX", "DN", "Cty TNHH", "Hộ kinh doanh", "Cơ sở", "THT"]
STARS = ["3", "3 sao", "★★★", 3, "4*", "★★★★"]
COMMUNES = ["Xã Một", "Xã Hai", "Xã Ba", "Thị trấn Bốn"]


def _row(i: int, code: str) -> list:
    day = dt.date(2022, 1, 1) + dt.timedelta(days=(i * 7) % 1000)
    stars = STARS[i % len(STARS)]
    four = str(stars).startswith("4") or stars == "★★★★"
    score = 70 + (i % 19) + 0.5 if four else 50 + (i % 19) + 0.25
    date_forms = [day, f"{day.day}/{day.month}/{day.year}", (day - domain.EXCEL_EPOCH).days, day.isoformat()]
    return [i + 1, f"QNg-{code}-{i:04d}", f"Sản phẩm số {i} của huyện", GROUPS[i % 6], stars,
            str(score).replace(".", ",") if i % 2 else score, f"{1000 + i % 50}/QĐ-UBND", "Tỉnh" if four else "Huyện",
            "Mới", "Không", date_forms[i % 4], None, f"Chủ thể số {i // 3}", OWNERS[(i // 3) % 6],
            f"43{i // 3:08d}", COMMUNES[i % 4], "x" if i % 3 else "", "Không", "Có", "x" if i % 5 == 0 else None, None]


def write(path: Path, code: str, variant: int, rows: int) -> None:
    district = domain.districts()[code]
    wb = openpyxl.Workbook()
    ws = wb.active
    if variant % 3 == 1:
        ws.title = "Huong dan"
        ws.append(["Hướng dẫn: điền danh sách sản phẩm OCOP vào trang sau."])
        ws = wb.create_sheet("DS OCOP")
    else:
        ws.title = "San pham OCOP"
    ws.append([f"UBND {district.full_name.upper()}", None, None, None, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"])
    ws.append(["PHÒNG NÔNG NGHIỆP VÀ PTNT", None, None, None, "Độc lập - Tự do - Hạnh phúc"])
    for _ in range(variant % 4):
        ws.append([])
    ws.append(["DANH SÁCH SẢN PHẨM OCOP ĐƯỢC CÔNG NHẬN"])
    ws.append(["Kỳ báo cáo: tháng 12/2024"])
    ws.append([])
    header_row = ws.max_row + 1
    if variant % 2:
        ws.append(TOP)
        ws.append(BOTTOM)
        for c0, c1 in ((2, 4), (7, 9), (13, 15)):
            ws.merge_cells(start_row=header_row, start_column=c0, end_row=header_row, end_column=c1)
    else:
        ws.append(SINGLE)
    if variant % 4 == 3:
        ws.append([f"({j})" for j in range(1, len(SINGLE) + 1)])
    for i in range(rows):
        if variant % 3 == 2 and i % 125 == 0:
            ws.append([f"{'I II III IV'.split()[i // 125]}. {COMMUNES[i // 125 % 4]}"])
        ws.append(_row(i, code))
    ws.append([f"Tổng cộng: {rows} sản phẩm"])
    ws.append([])
    ws.append([None, "NGƯỜI LẬP BIỂU", None, None, None, "TRƯỞNG PHÒNG"])
    ws.append([None, "Nguyễn Văn A", None, None, None, "Trần Thị B"])
    sp = wb.create_sheet("Diem ban")
    sp.append([f"UBND {district.full_name.upper()}"])
    sp.append(["Kỳ báo cáo: tháng 12/2024"])
    sp.append(["STT", "Tên điểm bán", "Địa chỉ", "Xã/phường", "Hình thức", "Ngày hoạt động"])
    sp.append([1, f"Điểm bán OCOP {district.name}", "Thôn 1", COMMUNES[0], "Xã hội hóa", dt.date(2023, 5, 1)])
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the workbooks here and keep them")
    args = parser.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    inbox = args.keep or Path(tmp.name) / "inbox"
    paths = []
    for variant, (code, name) in enumerate(FILE_NAMES.items()):
        path = inbox / "districts" / "2024-12" / name
        write(path, code, variant, args.rows)
        paths.append((code, path))

    print(f"{'workbook':52} {'KB':>6} {'rows':>5} {'check ms':>9} {'first ms':>9} {'best ms':>8} {'rows/s':>8}")
    times, firsts, total_rows = [], [], 0
    for code, path in paths:
        runs, checks = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            _check_container(path)
            checks.append(time.perf_counter() - start)
            start = time.perf_counter()
            sub = read_submission(path, inbox)
            runs.append(time.perf_counter() - start)
        assert not sub.errors and sub.district_code == code and len(sub.products) == args.rows, \
            (path.name, [e.message for e in sub.errors][:3], len(sub.products))
        best = min(runs)
        times.append(best)
        total_rows += len(sub.products)
        firsts.append(runs[0])
        print(f"{path.name:52} {path.stat().st_size // 1024:6d} {len(sub.products):5d} {min(checks) * 1000:9.1f} "
              f"{runs[0] * 1000:9.1f} {best * 1000:8.1f} {len(sub.products) / best:8.0f}")
    print(f"{'all 13 workbooks':52} {'':6} {total_rows:5d} {'':9} {sum(firsts) * 1000:9.1f} {sum(times) * 1000:8.1f} "
          f"{total_rows / sum(times):8.0f}")
    print(f"median per workbook: {statistics.median(times) * 1000:.1f} ms best of {args.repeat}, "
          f"{statistics.median(firsts) * 1000:.1f} ms first read; 'check' (the container pre-scan) is part of the read")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
