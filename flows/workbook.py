"""Reading a district workbook into canonical rows, saying clearly what could not be read.

A workbook holds a products sheet and (usually) a sales-points sheet, found by content: a title
block, a header row (aliases mapped to canonical columns, see flows/reference/header_aliases.csv),
possibly a second merged header row and a numbering row "(1) (2) …", data rows, group rows,
a totals row and signature lines. The district and the report period come from the title block
and from the file and folder names.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import python_calamine

from flows import domain
from flows.domain import fold, nfc

MAX_SHEET_ROWS = 20_000          # a district has a few hundred products; more is not a report
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024  # zip-bomb guard: total size of the xlsx's parts
MAX_COMPRESSION_RATIO = 200
HEADER_SCAN_ROWS = 40

PRODUCT_COLUMNS = [
    "ma_san_pham", "ten_san_pham", "nhom_san_pham", "hang_sao", "diem", "so_quyet_dinh",
    "cap_cong_nhan", "hinh_thuc", "tiem_nang_5_sao", "ngay_cong_nhan", "ngay_het_han",
    "ten_chu_the", "loai_hinh_chu_the", "ma_so_thue", "xa_phuong", "len_san_tmdt", "lang_nghe",
    "chu_the_da_tap_huan", "kenh_hien_dai", "ghi_chu",
]
REQUIRED_PRODUCT_COLUMNS = ["ma_san_pham", "ten_san_pham", "hang_sao", "diem", "ngay_cong_nhan",
                            "ten_chu_the", "loai_hinh_chu_the"]
SALES_POINT_COLUMNS = ["ten_diem_ban", "dia_chi", "xa_phuong", "hinh_thuc", "ngay_hoat_dong"]
REQUIRED_SALES_POINT_COLUMNS = ["ten_diem_ban", "hinh_thuc", "ngay_hoat_dong"]

# canonical column -> parser (value -> parsed or ValueError)
_text = nfc
PRODUCT_PARSERS: dict[str, Callable[[Any], Any]] = {
    "ma_san_pham": lambda v: nfc(int(v) if isinstance(v, float) and v.is_integer() else v),
    "ten_san_pham": _text,
    "nhom_san_pham": domain.parse_product_group,
    "hang_sao": domain.parse_stars,
    "diem": domain.parse_score,
    "so_quyet_dinh": domain.parse_decision_no,
    "cap_cong_nhan": domain.parse_level,
    "hinh_thuc": domain.parse_kind,
    "tiem_nang_5_sao": domain.parse_flag,
    "ngay_cong_nhan": domain.parse_date,
    "ngay_het_han": domain.parse_date,
    "ten_chu_the": _text,
    "loai_hinh_chu_the": domain.parse_owner_type,
    "ma_so_thue": domain.parse_tax_number,
    "xa_phuong": _text,
    "len_san_tmdt": domain.parse_flag,
    "lang_nghe": domain.parse_flag,
    "chu_the_da_tap_huan": domain.parse_flag,
    "kenh_hien_dai": domain.parse_flag,
    "ghi_chu": _text,
}
SALES_POINT_PARSERS: dict[str, Callable[[Any], Any]] = {
    "ten_diem_ban": _text,
    "dia_chi": _text,
    "xa_phuong": _text,
    "hinh_thuc": domain.parse_sales_point_kind,
    "ngay_hoat_dong": domain.parse_date,
}

# Vietnamese labels and how to fix, used in alerts and feedback workbooks
COLUMN_LABELS = {
    "ma_san_pham": "Mã sản phẩm", "ten_san_pham": "Tên sản phẩm", "nhom_san_pham": "Nhóm sản phẩm",
    "hang_sao": "Hạng sao", "diem": "Điểm", "so_quyet_dinh": "Số quyết định",
    "cap_cong_nhan": "Cấp công nhận", "hinh_thuc": "Hình thức", "tiem_nang_5_sao": "Tiềm năng 5 sao",
    "ngay_cong_nhan": "Ngày công nhận", "ngay_het_han": "Ngày hết hạn", "ten_chu_the": "Tên chủ thể",
    "loai_hinh_chu_the": "Loại hình chủ thể", "ma_so_thue": "Mã số thuế", "xa_phuong": "Xã/phường",
    "len_san_tmdt": "Lên sàn TMĐT", "lang_nghe": "Làng nghề", "chu_the_da_tap_huan": "Chủ thể đã tập huấn",
    "kenh_hien_dai": "Kênh hiện đại", "ghi_chu": "Ghi chú", "ten_diem_ban": "Tên điểm bán",
    "dia_chi": "Địa chỉ", "ngay_hoat_dong": "Ngày hoạt động",
}


@dataclass
class Issue:
    level: str            # 'error' | 'warning'
    rule: str
    message: str          # Vietnamese, for the district officer
    sheet: str | None = None
    row: int | None = None
    column: str | None = None
    value: str | None = None
    fix: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class SheetData:
    name: str
    kind: str                      # 'products' | 'sales_points'
    header_row: int                # 1-based
    columns: dict[int, str]        # column index -> canonical name
    extra_columns: dict[int, str]  # column index -> original header (unknown columns, kept)
    headers: dict[int, str]        # column index -> original header text
    rows: list[tuple[int, list[Any]]]  # (1-based sheet row, cells)
    title_lines: list[str]


@dataclass
class ParsedSubmission:
    path: Path
    source_file: str
    content_hash: str
    file_size: int
    received_at: dt.datetime
    district_code: str | None = None
    period: str | None = None
    products_sheet: str | None = None
    sales_points_sheet: str | None = None
    products: list[dict] = field(default_factory=list)
    sales_points: list[dict] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def submission_id(self) -> str:
        return self.content_hash

    @property
    def file_name(self) -> str:
        return self.path.name

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]

    def error(self, rule: str, message: str, **where) -> None:
        self.issues.append(Issue("error", rule, message, **where))

    def warn(self, rule: str, message: str, **where) -> None:
        self.issues.append(Issue("warning", rule, message, **where))


class UnreadableWorkbook(Exception):
    """The file cannot be read as a workbook at all; the message says why, in Vietnamese."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Opening the file safely
# --------------------------------------------------------------------------------------------


def _check_container(path: Path) -> None:
    """Reject what would blow up memory before a reader touches it."""
    size = path.stat().st_size
    if size == 0:
        raise UnreadableWorkbook("Tệp rỗng (0 byte).")
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"\xd0\xcf\x11\xe0"):
        if path.suffix.lower() == ".xlsx":
            raise UnreadableWorkbook("Tệp được đặt mật khẩu hoặc mã hóa; hãy gửi bản không đặt mật khẩu.")
        return  # legacy .xls (OLE2): calamine reads it
    if not magic.startswith(b"PK"):
        raise UnreadableWorkbook("Tệp không phải là bảng tính Excel (.xlsx/.xls).")
    try:
        with zipfile.ZipFile(path) as zf:
            total = sum(info.file_size for info in zf.infolist())
    except zipfile.BadZipFile:
        raise UnreadableWorkbook("Tệp Excel bị hỏng, không mở được; hãy lưu lại và gửi lại.") from None
    if total > MAX_UNCOMPRESSED_BYTES or total > MAX_COMPRESSION_RATIO * max(size, 1) + 10_000_000:
        raise UnreadableWorkbook(
            f"Tệp giải nén quá lớn ({total // 1_000_000} MB từ {size // 1000} KB); không phải báo cáo bình thường.")


def _open(path: Path) -> python_calamine.CalamineWorkbook:
    _check_container(path)
    try:
        return python_calamine.CalamineWorkbook.from_path(str(path))
    except python_calamine.PasswordError:
        raise UnreadableWorkbook("Tệp được đặt mật khẩu; hãy gửi bản không đặt mật khẩu.") from None
    except Exception as exc:  # calamine raises several types for corrupt files
        raise UnreadableWorkbook(f"Tệp Excel bị hỏng, không đọc được ({type(exc).__name__}).") from None


# --------------------------------------------------------------------------------------------
# Finding the header and the data
# --------------------------------------------------------------------------------------------

_NUMBERING = re.compile(r"^\(?\s*\d{1,2}\s*\)?$")
_STOP_WORDS = ("tong cong", "tong so", "cong", "nguoi lap", "nguoi lap bieu", "truong phong", "xac nhan")


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _map_headers(cells: list[Any], aliases: dict[str, str]) -> dict[int, str]:
    mapped: dict[int, str] = {}
    for i, cell in enumerate(cells):
        key = fold(cell)
        if key in aliases and aliases[key] not in mapped.values():
            mapped[i] = aliases[key]
    return mapped


def _combine_two_rows(top: list[Any], bottom: list[Any]) -> list[str]:
    """Two-row header with merged parents: the parent's text carries right over the blank cells."""
    combined, parent = [], ""
    for i in range(max(len(top), len(bottom))):
        t = _cell_text(top[i]) if i < len(top) else ""
        b = _cell_text(bottom[i]) if i < len(bottom) else ""
        parent = t or parent if b else t
        combined.append(f"{parent} {b}".strip() if b else t)
    return combined


def _find_header(rows: list[list[Any]], kind: str) -> tuple[int, dict[int, str], list[str], int] | None:
    """(header row index, column map, header texts, rows the header spans) or None."""
    aliases = domain.header_aliases()[kind]
    key_column = "ten_san_pham" if kind == "products" else "ten_diem_ban"
    best = None
    for i, cells in enumerate(rows[:HEADER_SCAN_ROWS]):
        texts = [_cell_text(c) for c in cells]
        candidates = [(_map_headers(texts, aliases), texts, 1)]
        if i + 1 < len(rows):
            two = _combine_two_rows(cells, rows[i + 1])
            candidates.append((_map_headers(two, aliases), two, 2))
            # second row alone may hold the sub-headers while the first holds the rest
            merged = [b if fold(b) in aliases else (t if fold(t) in aliases else c)
                      for t, b, c in zip(texts + [""] * len(two), [_cell_text(x) for x in rows[i + 1]] + [""] * len(two), two)]
            candidates.append((_map_headers(merged, aliases), merged, 2))
        for mapped, texts_used, span in candidates:
            if key_column in mapped.values() and len(mapped) >= 3:
                score = (len(mapped), -span)
                if best is None or score > best[0]:
                    best = (score, (i, mapped, texts_used, span))
        if best is not None:
            return best[1]
    return None


def _read_sheet(sheet: python_calamine.CalamineSheet) -> list[list[Any]]:
    if sheet.total_height > MAX_SHEET_ROWS:
        raise UnreadableWorkbook(
            f"Trang '{sheet.name}' có {sheet.total_height:,} dòng, vượt giới hạn {MAX_SHEET_ROWS:,} dòng của một báo cáo.")
    return sheet.to_python(skip_empty_area=False)


def _sheet_data(name: str, rows: list[list[Any]], kind: str) -> SheetData | None:
    found = _find_header(rows, kind)
    if found is None:
        return None
    header_index, mapped, texts, span = found
    first_data = header_index + span
    if first_data < len(rows):  # a numbering row "(1) (2) (3) …" right below the header
        cells = [c for c in rows[first_data] if _cell_text(c).strip()]
        if cells and all(_NUMBERING.match(_cell_text(c).strip()) for c in cells) and len(cells) >= 3:
            first_data += 1
    extras = {i: nfc(t) for i, t in enumerate(texts) if i not in mapped and nfc(t) and fold(t) != "stt"}
    headers = {i: nfc(t) for i, t in enumerate(texts) if nfc(t)}
    columns = {i: c for i, c in mapped.items() if c != "stt"}
    data: list[tuple[int, list[Any]]] = []
    for offset, cells in enumerate(rows[first_data:]):
        row_number = first_data + offset + 1
        filled = [(i, c) for i, c in enumerate(cells) if _cell_text(c).strip()]
        if not filled:
            continue
        first_text = fold(filled[0][1])
        if any(first_text.startswith(w) for w in _STOP_WORDS) and len([i for i, _ in filled if i in columns]) <= 2:
            if first_text.startswith(("tong", "cong")):
                break  # totals row: what follows is signatures
            continue
        mapped_filled = [i for i, _ in filled if i in columns]
        if len(mapped_filled) < 3:
            continue  # group rows ("I. Xã Bình Châu"), stray notes, signature names
        data.append((row_number, cells))
    title_lines = [" ".join(_cell_text(c) for c in r if _cell_text(c).strip()) for r in rows[:header_index]]
    return SheetData(name, kind, header_index + 1, columns, extras, headers, data, [t for t in title_lines if t])


# --------------------------------------------------------------------------------------------
# District and period
# --------------------------------------------------------------------------------------------


def _resolve(sub: ParsedSubmission, title_lines: list[str], inbox_relative: Path) -> None:
    title_districts: set[str] = set()
    title_periods: set[str] = set()
    for line in title_lines:
        title_districts |= domain.district_from_title(line)
        if "ky bao cao" in fold(line) or "thang" in fold(line):
            period = domain.find_period(line)
            if period:
                title_periods.add(period)
    name_districts = domain.find_districts(sub.path.stem)
    folder_districts: set[str] = set()
    for part in inbox_relative.parent.parts:
        folder_districts |= domain.find_districts(part)
    name_period = domain.find_period(sub.path.stem)
    folder_period = next((p for p in map(domain.find_period, reversed(inbox_relative.parent.parts)) if p), None)

    named = name_districts | folder_districts
    if len(title_districts) > 1 or (not title_districts and len(named) > 1):
        sub.error("district_ambiguous", "Không xác định được huyện: tên tệp hoặc tiêu đề nêu nhiều đơn vị "
                  f"({', '.join(domain.districts()[c].full_name for c in sorted(title_districts or named))}).",
                  fix="Ghi đúng một đơn vị ở dòng tiêu đề (ví dụ 'UBND HUYỆN BÌNH SƠN') và trong tên tệp.")
    elif title_districts and named and title_districts != named:
        t, n = next(iter(title_districts)), sorted(named)
        sub.error("district_conflict", f"Tiêu đề ghi {domain.districts()[t].full_name} nhưng tên tệp/thư mục ghi "
                  f"{', '.join(domain.districts()[c].full_name for c in n)}.",
                  fix="Kiểm tra lại tệp đã gửi đúng đơn vị chưa; sửa tiêu đề hoặc tên tệp cho khớp.")
    elif title_districts or named:
        sub.district_code = next(iter(title_districts or named))
    else:
        sub.error("district_unresolved", "Không xác định được huyện/thị xã/thành phố của báo cáo.",
                  fix="Ghi dòng tiêu đề 'UBND HUYỆN …' và đặt tên tệp có tên đơn vị, ví dụ 'BC OCOP T12-2024 Binh Son.xlsx'.")

    if len(title_periods) > 1 or (title_periods and name_period and name_period not in title_periods):
        sub.error("period_conflict", f"Kỳ báo cáo không thống nhất: tiêu đề {', '.join(sorted(title_periods))}, "
                  f"tên tệp {name_period or '—'}.", fix="Sửa 'Kỳ báo cáo: tháng MM/YYYY' và tên tệp cho khớp.")
    elif title_periods:
        sub.period = next(iter(title_periods))
    elif name_period:
        sub.period = name_period
    elif folder_period:
        sub.period = folder_period
    else:
        sub.error("period_unresolved", "Không xác định được kỳ báo cáo.",
                  fix="Ghi dòng 'Kỳ báo cáo: tháng MM/YYYY' dưới tiêu đề, ví dụ 'Kỳ báo cáo: tháng 12/2024'.")


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def _canonical_rows(sub: ParsedSubmission, sheet: SheetData, parsers: dict[str, Callable]) -> list[dict]:
    out = []
    for row_number, cells in sheet.rows:
        record: dict[str, Any] = {"sheet": sheet.name, "row_number": row_number}
        source_values = {}
        for i, header in sheet.headers.items():
            if i < len(cells) and _cell_text(cells[i]).strip():
                v = cells[i]
                if isinstance(v, (dt.date, dt.datetime)):
                    v = v.isoformat()
                elif isinstance(v, float) and v.is_integer():
                    v = int(v)  # Excel stores every number as a float; show 6, not 6.0
                source_values[header] = v
        for column, parse in parsers.items():
            index = next((i for i, c in sheet.columns.items() if c == column), None)
            raw = cells[index] if index is not None and index < len(cells) else None
            if isinstance(raw, str) and not raw.strip():
                raw = None
            if column == "nhom_san_pham":
                record["nhom_san_pham_goc"] = nfc(raw)  # as written (2019 or 2023 group name)
            try:
                record[column] = parse(raw)
            except (ValueError, TypeError) as exc:
                record[column] = None
                sub.error(f"{column}_unreadable", f"{COLUMN_LABELS.get(column, column)}: {exc}", sheet=sheet.name,
                          row=row_number, column=COLUMN_LABELS.get(column, column), value=_cell_text(raw),
                          fix=f"Sửa ô {COLUMN_LABELS.get(column, column)} ở dòng {row_number}.")
        record["source_values"] = json.dumps(source_values, ensure_ascii=False, default=str)
        out.append(record)
    return out


def _finish_products(sub: ParsedSubmission, sheet: SheetData) -> None:
    present = set(sheet.columns.values())
    for column in REQUIRED_PRODUCT_COLUMNS:
        if column not in present:
            sub.error("required_columns", f"Thiếu cột bắt buộc '{COLUMN_LABELS[column]}' ở trang {sheet.name}.",
                      sheet=sheet.name, row=sheet.header_row, column=COLUMN_LABELS[column],
                      fix=f"Thêm cột '{COLUMN_LABELS[column]}' vào dòng tiêu đề cột.")
    if "nhom_san_pham" not in present:
        sub.warn("product_group_missing", "Không có cột 'Nhóm sản phẩm': nhóm của các sản phẩm được ghi là chưa rõ.",
                 sheet=sheet.name, fix="Thêm cột 'Nhóm sản phẩm' (6 nhóm theo Quyết định 148/QĐ-TTg).")
    rows = _canonical_rows(sub, sheet, PRODUCT_PARSERS)
    for r in rows:
        if r["ngay_het_han"] is None and r["ngay_cong_nhan"] is not None:  # column missing or cell blank
            r["ngay_het_han"] = domain.certificate_expiry(r["ngay_cong_nhan"])
    sub.products = rows


def _finish_sales_points(sub: ParsedSubmission, sheet: SheetData) -> None:
    present = set(sheet.columns.values())
    for column in REQUIRED_SALES_POINT_COLUMNS:
        if column not in present:
            sub.error("required_columns", f"Thiếu cột bắt buộc '{COLUMN_LABELS[column]}' ở trang {sheet.name}.",
                      sheet=sheet.name, row=sheet.header_row, column=COLUMN_LABELS[column],
                      fix=f"Thêm cột '{COLUMN_LABELS[column]}' vào dòng tiêu đề cột.")
    sub.sales_points = _canonical_rows(sub, sheet, SALES_POINT_PARSERS)


def read_submission(path: Path, inbox: Path, received_at: dt.datetime | None = None,
                    content_hash: str | None = None) -> ParsedSubmission:
    """Parse one district file. Never raises for bad content: problems become issues."""
    path = Path(path)
    try:
        relative = path.resolve().relative_to(Path(inbox).resolve())
    except ValueError:
        relative = Path(path.name)
    sub = ParsedSubmission(
        path=path, source_file=relative.as_posix(), content_hash=content_hash or file_sha256(path),
        file_size=path.stat().st_size,
        received_at=received_at or dt.datetime.now(dt.timezone.utc),
    )
    try:
        book = _open(path)
        products = sales = None
        for name in book.sheet_names:
            rows = _read_sheet(book.get_sheet_by_name(name))
            if products is None:
                products = _sheet_data(name, rows, "products")
                if products is not None:
                    continue
            if sales is None:
                sales = _sheet_data(name, rows, "sales_points")
        book.close()
    except UnreadableWorkbook as exc:
        sub.error("unreadable_file", str(exc), fix="Mở tệp bằng Excel, lưu lại dạng .xlsx không đặt mật khẩu rồi gửi lại.")
        _resolve(sub, [], relative)
        return sub

    if products is None:
        sub.error("products_sheet_missing", "Không tìm thấy trang danh sách sản phẩm OCOP (dòng tiêu đề cột có "
                  "'Tên sản phẩm', 'Hạng sao', …).", fix="Dùng mẫu báo cáo của tỉnh, giữ nguyên dòng tiêu đề cột.")
        _resolve(sub, [], relative)
        return sub
    sub.products_sheet = products.name
    _resolve(sub, products.title_lines + (sales.title_lines if sales else []), relative)
    _finish_products(sub, products)
    if products.extra_columns:
        sub.warn("extra_columns", "Các cột ngoài mẫu được lưu nhưng không dùng: "
                 + ", ".join(products.extra_columns.values()), sheet=products.name)
    if sales is None:
        sub.warn("sales_points_sheet_missing", "Không có trang điểm giới thiệu và bán sản phẩm OCOP: giữ nguyên "
                 "danh sách điểm bán đã báo cáo lần trước.", fix="Thêm trang điểm bán theo mẫu ở kỳ sau.")
    else:
        sub.sales_points_sheet = sales.name
        _finish_sales_points(sub, sales)
    if not sub.products:
        sub.error("no_data_rows", f"Trang {products.name} không có dòng sản phẩm nào.", sheet=products.name,
                  fix="Điền danh sách sản phẩm OCOP dưới dòng tiêu đề cột.")
    return sub
