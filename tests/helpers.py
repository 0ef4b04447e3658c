"""Shared test helpers: build district workbooks the way districts lay them out (no binary blobs)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence

import openpyxl
from openpyxl.utils import get_column_letter

# DESIGN.md, "The figures the demo must reproduce", for as-of 2024-12-20 (written out, not imported from the code)
DESIGN_FIGURES = {
    "valid_products": 191,
    "valid_products_3_star": 174,
    "valid_products_4_star": 17,
    "valid_products_5_star": 0,
    "districts_with_products": 13,
    "owners": 120,
    "owners_enterprise": 19,
    "owners_cooperative": 34,
    "owners_cooperative_group": 0,
    "owners_household": 67,
    "products_on_ecommerce": 130,
    "sales_points": 13,
    "sales_points_state_supported": 6,
    "sales_points_private": 7,
}

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
    from flows.config import load_settings

    settings = load_settings(tmp_path / "inbox", tmp_path / "warehouse")
    write_workbook(settings.districts_inbox / name, rows=rows, **workbook_kwargs)
    _, verdicts, _ = district_checks(settings, as_of)
    assert len(verdicts) == 1
    return settings, next(iter(verdicts.values()))


def district_checks(settings, as_of: dt.date = dt.date(2024, 12, 20)):
    """The district part of a night up to the GX verdicts (not saved): extract, parse, load raw,
    check. Returns (new files, verdicts, pending checks)."""
    from flows import districts, gate

    files = districts.find_new_files(settings)
    subs = districts.parse_files(settings, files, dt.datetime.now(dt.timezone.utc))
    districts.load_submissions(settings, subs)
    pending = districts.pending_checks(settings, as_of)
    verdicts = gate.validate_submissions(settings, pending.submissions, pending.products, pending.sales_points,
                                         pending.claimed, pending.live_codes, as_of)
    return files, verdicts, pending


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


# --------------------------------------------------------------------------------------------
# Raw .xlsx packages written part by part (no openpyxl): for files too big, too odd or too broken
# for openpyxl to write quickly: 100,000-row sheets, compressed bombs, far-away cells.
# --------------------------------------------------------------------------------------------

_XLSX_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>{overrides}</Types>')
_XLSX_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_XLSX_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>')
_XLSX_SHEET_HEAD = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
_XLSX_SHEET_TAIL = "</sheetData></worksheet>"


xlsx_column = get_column_letter  # 1 -> 'A', 16384 -> 'XFD'


def xml_row(row: int, values: Sequence[Any], first_column: int = 1) -> str:
    """One <row> of inline strings and numbers (None: no cell)."""
    from xml.sax.saxutils import escape

    cells = []
    for i, v in enumerate(values):
        if v is None:
            continue
        ref = f"{xlsx_column(first_column + i)}{row}"
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            cells.append(f'<c r="{ref}"><v>{v}</v></c>')
        else:
            cells.append(f'<c r="{ref}" t="inlineStr"><is><t>{escape(str(v))}</t></is></c>')
    return f'<row r="{row}">{"".join(cells)}</row>'


def write_raw_xlsx(path: Path, sheets: Sequence[tuple[str, Any]], compresslevel: int = 6) -> Path:
    """A minimal .xlsx: each sheet is (name, rows) where rows is an iterable of <row> XML strings,
    streamed into the zip (so a sheet of hundreds of MB never sits in memory)."""
    import zipfile
    from xml.sax.saxutils import quoteattr

    path.parent.mkdir(parents=True, exist_ok=True)
    overrides = "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{_XLSX_SHEET_TYPE}"/>'
                        for i in range(1, len(sheets) + 1))
    workbook = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
                + "".join(f'<sheet name={quoteattr(name)} sheetId="{i}" r:id="rId{i}"/>'
                          for i, (name, _) in enumerate(sheets, start=1))
                + "</sheets></workbook>")
    rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            + "".join(f'<Relationship Id="rId{i}" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                      f'relationships/worksheet" Target="worksheets/sheet{i}.xml"/>' for i in range(1, len(sheets) + 1))
            + "</Relationships>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
        zf.writestr("[Content_Types].xml", _XLSX_CONTENT_TYPES.format(overrides=overrides))
        zf.writestr("_rels/.rels", _XLSX_ROOT_RELS)
        zf.writestr("xl/workbook.xml", workbook)
        zf.writestr("xl/_rels/workbook.xml.rels", rels)
        for i, (_, rows) in enumerate(sheets, start=1):
            with zf.open(f"xl/worksheets/sheet{i}.xml", "w", force_zip64=True) as fh:
                fh.write(_XLSX_SHEET_HEAD.encode())
                buffer: list[str] = []
                for row in rows:
                    buffer.append(row)
                    if len(buffer) >= 2000:
                        fh.write("".join(buffer).encode())
                        buffer.clear()
                fh.write("".join(buffer).encode())
                fh.write(_XLSX_SHEET_TAIL.encode())
    return path


# --- processes (Linux /proc): whether a night's children have really ended
def _running_stat(stat_file: Path) -> list[str] | None:
    """The fields after the command name in /proc/<pid>/stat (state, ppid, pgrp, ...), or None
    when the process is gone or a zombie (it has ended; only its exit status is left)."""
    try:
        fields = stat_file.read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields


def process_running(pid: int) -> bool:
    return _running_stat(Path(f"/proc/{pid}/stat")) is not None


def group_running(pgid: int) -> bool:
    """Whether a process of process group `pgid` is still running."""
    return any((f := _running_stat(stat)) is not None and int(f[2]) == pgid
               for stat in Path("/proc").glob("[0-9]*/stat"))


# --- dbt
def dbt_nodes_run(target_dir: Path) -> set[str]:
    """The unique_ids of the nodes that the last dbt invocation writing to `target_dir` ran."""
    return {r["unique_id"] for r in json.loads((Path(target_dir) / "run_results.json").read_text())["results"]}


# --- marts compared between two builds over the same inputs
# Columns that differ between two nights over the same inputs, and why:
EXCLUDED = {
    "fct_order_line": {"raw_load_id",          # dlt load id (a timestamp) of the load that brought the line
                       "dbt_loaded_at"},       # when dbt wrote the row
    "sales_monthly": {"source_loaded_at"},     # max(dbt_loaded_at) of the month's lines
    "submission_status": {"received_at",       # when the night received the file
                          "checked_at"},       # when the gate checked it
    "dim_district": {"in_use_received_at", "last_submission_received_at"},  # received_at, per district
}


def snapshot_marts(db: Path) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every mart: (compared columns, sorted rows)."""
    import duckdb

    from flows import publish as publishing

    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for t in publishing.mart_tables(con, con.execute("select current_database()").fetchone()[0]):
            cols = [r[0] for r in con.execute(f"describe marts.{t}").fetchall()]
            missing = EXCLUDED.get(t, set()) - set(cols)
            assert not missing, f"EXCLUDED names columns that marts.{t} does not have: {missing}"
            keep = [c for c in cols if c not in EXCLUDED.get(t, set())]
            rows = con.execute(f"select {', '.join(keep)} from marts.{t} order by all").fetchall()
            out[t] = (keep, rows)
        return out
    finally:
        con.close()


def assert_same_marts(reference: dict, actual: dict) -> None:
    assert sorted(actual) == sorted(reference), "different set of marts"
    for t, (cols, rows) in reference.items():
        a_cols, a_rows = actual[t]
        assert a_cols == cols, f"marts.{t}: columns differ"
        assert len(a_rows) == len(rows), f"marts.{t}: {len(a_rows)} rows, the clean night has {len(rows)}"
        diff = [(i, r, a) for i, (r, a) in enumerate(zip(rows, a_rows)) if r != a]
        assert not diff, f"marts.{t}: {len(diff)} rows differ, first: {diff[0]}"
