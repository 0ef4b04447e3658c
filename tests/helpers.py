"""Shared test helpers: build district workbooks the way districts lay them out (no binary blobs)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence

import openpyxl

PRODUCT_HEADER = ["STT", "Mã sản phẩm", "Tên sản phẩm", "Nhóm sản phẩm", "Hạng sao", "Điểm", "Số quyết định",
                  "Cấp công nhận", "Hình thức", "Ngày công nhận", "Ngày hết hạn", "Tên chủ thể",
                  "Loại hình chủ thể", "Mã số thuế", "Xã/phường", "Lên sàn TMĐT"]
SALES_HEADER = ["STT", "Tên điểm bán", "Địa chỉ", "Xã/phường", "Hình thức", "Ngày hoạt động"]


def product_row(n: int, code: str, name: str = "Tỏi Lý Sơn", stars: Any = 3, score: Any = 62.5,
                recognised: Any = dt.date(2024, 3, 22), expires: Any = None, owner: str = "HTX Nông nghiệp An Vĩnh",
                owner_type: str = "HTX", tax: Any = "4300123456", group: str = "Thực phẩm", ecommerce: str = "Có",
                decision: str = "1425/QĐ-UBND", level: str = "Huyện", kind: str = "Mới", commune: str = "An Vĩnh") -> list:
    if expires is None and isinstance(recognised, dt.date):
        expires = recognised.replace(year=recognised.year + 3)
    return [n, code, name, group, stars, score, decision, level, kind, recognised, expires, owner, owner_type,
            tax, commune, ecommerce]


def write_workbook(path: Path, *, unit: str = "UBND HUYỆN LÝ SƠN", period_line: str = "Kỳ báo cáo: tháng 12/2024",
                   header: Sequence[str] = PRODUCT_HEADER, rows: Sequence[Sequence[Any]] = (),
                   sales_header: Sequence[str] | None = SALES_HEADER, sales_rows: Sequence[Sequence[Any]] = (),
                   totals: bool = True, sheet_name: str = "San pham OCOP", title_rows: int | None = None,
                   instructions_first: bool = False) -> Path:
    """A products sheet (title block, header row, rows, totals, signatures) and a sales-points sheet."""
    wb = openpyxl.Workbook()
    ws = wb.active
    if instructions_first:
        ws.title = "Huong dan"
        ws.append(["Hướng dẫn: điền danh sách sản phẩm OCOP vào trang sau."])
        ws = wb.create_sheet(sheet_name)
    else:
        ws.title = sheet_name

    def title_block(sheet, title: str) -> None:
        sheet.append([unit, None, None, None, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"])
        sheet.append(["PHÒNG NÔNG NGHIỆP VÀ PTNT", None, None, None, "Độc lập - Tự do - Hạnh phúc"])
        sheet.append([])
        sheet.append([title])
        sheet.append([period_line])
        for _ in range((title_rows or 6) - 5):
            sheet.append([])

    title_block(ws, "DANH SÁCH SẢN PHẨM OCOP ĐƯỢC CÔNG NHẬN")
    ws.append(list(header))
    for r in rows:
        ws.append(list(r))
    if totals:
        ws.append([f"Tổng cộng: {len(rows)} sản phẩm"])
        ws.append([])
        ws.append([None, "Người lập biểu", None, None, None, "TRƯỞNG PHÒNG"])
        ws.append([None, "Nguyễn Thị Lan", None, None, None, "Trần Văn Hùng"])
    if sales_header is not None:
        sp = wb.create_sheet("Diem ban")
        title_block(sp, "DANH SÁCH ĐIỂM GIỚI THIỆU VÀ BÁN SẢN PHẨM OCOP")
        sp.append(list(sales_header))
        for r in sales_rows:
            sp.append(list(r))
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def check_submission(tmp_path: Path, rows: Sequence[Sequence[Any]], *, name: str = "BC OCOP T12-2024 Ly Son.xlsx",
                     as_of: dt.date = dt.date(2024, 12, 20), **workbook_kwargs):
    """Write one workbook, load it raw with dlt, run the GX submission gate: (settings, verdict)."""
    from flows import districts, gate
    from flows.config import load_settings

    settings = load_settings(tmp_path / "inbox", tmp_path / "warehouse")
    write_workbook(settings.districts_inbox / name, rows=rows, **workbook_kwargs)
    files = districts.find_new_files(settings)
    subs = districts.parse_files(settings, files, dt.datetime.now(dt.timezone.utc))
    districts.load_submissions(settings, subs)
    pending = districts.pending_checks(settings, as_of)
    verdicts = gate.validate_submissions(settings, pending.submissions, pending.products, pending.sales_points,
                                         pending.claimed, pending.live_codes, as_of)
    assert len(verdicts) == 1
    return settings, next(iter(verdicts.values()))


class AlertReceiver:
    """A local HTTP server that records JSON posts and answers with the given status codes in turn."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.posts: list[dict] = []
        self.paths: list[str] = []
        self.hits = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.hits += 1
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.posts.append(json.loads(body))
                    receiver.paths.append(self.path)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path="/ocop-alerts"):
        return f"json://127.0.0.1:{self.port}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
