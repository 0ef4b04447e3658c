"""Reading a district workbook into canonical rows, saying clearly what could not be read.

A workbook holds a products sheet and (usually) a sales-points sheet, found by content: a title
block, a header row (aliases mapped to canonical columns, see flows/reference/header_aliases.csv),
possibly a second merged header row and a numbering row "(1) (2) …", data rows, group rows,
a totals row and signature lines. The district and the report period come from the title block
and from the file and folder names.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import posixpath
import re
import struct
import zipfile
import zlib
from xml.etree import ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import python_calamine

from flows import domain
from flows.files import file_sha256  # noqa: F401 - re-exported for the loaders
from flows.domain import fold, nfc

MAX_FILE_BYTES = 100 * 1024 * 1024    # a report is a few hundred KB; photos of products can make it tens of MB
MAX_SHEET_ROWS = 20_000               # a district has a few hundred products; more is not a report
MAX_SHEET_CELLS = 2_000_000           # rows x columns of a sheet's used range (the reader allocates it densely)
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024  # zip-bomb guard: total size of the xlsx's parts
MAX_COMPRESSION_RATIO = 200
HEADER_SCAN_ROWS = 200                # title blocks of any reasonable height

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


class HasIssues:
    """Errors and warnings of whatever holds a list of `Issue`s (a parsed file, a verdict)."""

    issues: list[Issue]

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]


@dataclass
class ParsedSubmission(HasIssues):
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


    def error(self, rule: str, message: str, **where) -> None:
        self.issues.append(Issue("error", rule, message, **where))

    def warn(self, rule: str, message: str, **where) -> None:
        self.issues.append(Issue("warning", rule, message, **where))


class UnreadableWorkbook(Exception):
    """The file cannot be read as a workbook at all; the message says why, in Vietnamese."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


DEFAULT_FIX = "Mở tệp bằng Excel, lưu lại dạng .xlsx không đặt mật khẩu rồi gửi lại."
TRIM_FIX = ("Xóa các dòng, cột thừa ngoài bảng (nhấn Ctrl+End để thấy ô cuối cùng có dữ liệu), "
            "lưu lại rồi gửi lại.")


def _n(number: int) -> str:
    """Vietnamese thousands separator: 20000 -> '20.000'."""
    return f"{number:,}".replace(",", ".")


# --------------------------------------------------------------------------------------------
# Opening the file safely: everything that could exhaust memory is checked on the container,
# streaming, before the reader (python-calamine) touches it. Calamine loads a whole sheet, and
# allocates its used range densely: one value typed at XFD1048576 would ask for 500 GB.
# --------------------------------------------------------------------------------------------

_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _ole2_stream_names(path: Path) -> bytes:
    """The directory sectors of an OLE2 (compound) file: enough to see which streams it holds."""
    with open(path, "rb") as fh:
        header = fh.read(512)
        if len(header) < 512:
            return header
        sector_size = 1 << min(max(struct.unpack_from("<H", header, 0x1E)[0], 7), 16)
        first_dir = struct.unpack_from("<I", header, 0x30)[0]
        names = header
        if first_dir < 0xFFFFFFFA:
            fh.seek((first_dir + 1) * sector_size)
            names += fh.read(8 * sector_size)
        fh.seek(0)
        return names + fh.read(1 << 20)


def _check_ole2(path: Path) -> None:
    names = _ole2_stream_names(path)
    if any(n.encode("utf-16-le") in names for n in ("EncryptedPackage", "EncryptionInfo")):
        raise UnreadableWorkbook("Tệp được đặt mật khẩu hoặc mã hóa; hãy gửi bản không đặt mật khẩu.",
                                 "Mở tệp bằng Excel, vào Tệp > Thông tin > Bảo vệ sổ làm việc, xóa mật khẩu, "
                                 "lưu lại rồi gửi lại.")
    if not any(n.encode("utf-16-le") in names for n in ("Workbook", "Book")):
        raise UnreadableWorkbook("Tệp không phải là bảng tính Excel (có thể là tài liệu Word hoặc PowerPoint).")
    # a legacy .xls (BIFF) sheet holds at most 65,536 x 256 cells: bounded; checked after loading


_CELL_COLUMN = re.compile(rb'<c r="([A-Z]{1,3})[0-9]{1,7}"(?:\s[^>]*)?(?<!/)>')
_CELL_ROW = re.compile(rb'<c r="[A-Z]{1,3}([0-9]{1,7})"(?:\s[^>]*)?(?<!/)>')
# any other way of writing a cell (namespace prefix, r not first, no r at all): the slow path
_ANY_CELL = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c(\s[^>]*)?(?<!/)>")
_ANY_ROW = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?row[\s>/]")
_R_ATTR = re.compile(rb'\sr\s*=\s*["\']([A-Z]{1,3})([0-9]{1,7})["\']')


def _column_number(letters: bytes | str) -> int:
    n = 0
    for ch in letters.encode() if isinstance(letters, str) else letters:
        n = n * 26 + ch - 64
    return n


def _column_letter(number: int) -> str:
    out = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        out = chr(65 + rest) + out
    return out


def _scan_worksheet(stream, sheet: str) -> None:
    """Find the used range of a worksheet part (cells that hold a value) without loading it."""
    max_row = max_col = 0
    last_cell = ""            # the cell that set max_row, to name in the message
    generic_rows = 0
    tail = b""
    while True:
        chunk = stream.read(1 << 20)
        if not chunk and not tail:
            break
        buffer = tail + chunk
        cut = buffer.rfind(b">") + 1 if chunk else len(buffer)
        part, tail = buffer[:cut], (buffer[cut:] if chunk else b"")
        if len(tail) > 65536:  # a very long text without '>': no cell tag can be that long
            tail = tail[-4096:]
        fast = part.count(b'<c r="')
        if fast == part.count(b"<c ") + part.count(b"<c>") and b":c " not in part and b":c>" not in part:
            columns = _CELL_COLUMN.findall(part)   # the two lists are the same cells, in the same order
            if columns:
                max_col = max(max_col, max(map(_column_number, set(columns))))
                rows = list(map(int, _CELL_ROW.findall(part)))
                top = max(range(len(rows)), key=rows.__getitem__)
                if rows[top] > max_row:
                    max_row, last_cell = rows[top], f"{columns[top].decode()}{rows[top]}"
        else:  # unusual writer: every cell on its own
            generic_rows += len(_ANY_ROW.findall(part))
            for attributes in _ANY_CELL.findall(part):
                m = _R_ATTR.search(b" " + attributes)
                if m:
                    max_col = max(max_col, _column_number(m.group(1)))
                    if int(m.group(2)) > max_row:
                        max_row, last_cell = int(m.group(2)), (m.group(1) + m.group(2)).decode()
            if generic_rows > max_row:
                max_row, last_cell = generic_rows, f"dòng {generic_rows}"
        if max_row > MAX_SHEET_ROWS:
            raise UnreadableWorkbook(
                f"Trang '{sheet}' có hơn {_n(MAX_SHEET_ROWS)} dòng (có dữ liệu đến ô {last_cell}), vượt giới hạn "
                f"{_n(MAX_SHEET_ROWS)} dòng của một báo cáo.", TRIM_FIX)
        if max_row * max_col > MAX_SHEET_CELLS:
            raise UnreadableWorkbook(
                f"Trang '{sheet}' có vùng dữ liệu quá lớn: đến ô {_column_letter(max_col)}{max_row} "
                f"({_n(max_row)} dòng × {_n(max_col)} cột); có ô bị gõ nhầm ở rất xa bảng.", TRIM_FIX)


def _worksheet_names(zf: zipfile.ZipFile) -> dict[str, str]:
    """Worksheet part name -> sheet name (from xl/workbook.xml and its relationships)."""
    try:
        workbook = ElementTree.fromstring(zf.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    except (KeyError, ElementTree.ParseError, zipfile.BadZipFile, OSError, EOFError):
        return {}
    targets = {r.get("Id"): r.get("Target") or "" for r in rels}
    out = {}
    for element in workbook.iter():
        if element.tag.rsplit("}", 1)[-1] != "sheet":
            continue
        rid = next((v for k, v in element.attrib.items() if k.rsplit("}", 1)[-1] == "id"), None)
        target = targets.get(rid)
        if target:
            part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
            out[part] = element.get("name") or part
    return out


def _check_zip(path: Path, size: int) -> None:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = {i.filename for i in infos}
            if "xl/workbook.xml" not in names and "xl/workbook.bin" not in names:
                if "content.xml" in names:
                    return  # OpenDocument spreadsheet (.ods): calamine reads it
                kind = ("tài liệu Word" if "word/document.xml" in names else
                        "bài trình chiếu PowerPoint" if "ppt/presentation.xml" in names else "tệp nén .zip")
                raise UnreadableWorkbook(f"Tệp không phải là bảng tính Excel (đây là {kind}).")
            declared = sum(i.file_size for i in infos)
            if declared > MAX_UNCOMPRESSED_BYTES or declared > MAX_COMPRESSION_RATIO * size + 10_000_000:
                raise UnreadableWorkbook(
                    f"Tệp giải nén quá lớn ({_n(declared // 1_000_000)} MB từ tệp {_n(max(size // 1000, 1))} KB); "
                    "không phải báo cáo bình thường.", TRIM_FIX)
            sheets = _worksheet_names(zf)
            for info in infos:
                if info.is_dir():
                    continue
                # stream every part: zipfile stops at the declared size and checks the CRC, so a part that
                # lies about its size or is damaged is caught here, in 1 MB steps
                with zf.open(info) as stream:
                    if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml"):
                        _scan_worksheet(stream, sheets.get(info.filename, info.filename))
                    else:
                        while stream.read(1 << 20):
                            pass
    except UnreadableWorkbook:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
            NotImplementedError):
        raise UnreadableWorkbook("Tệp Excel bị hỏng (có thể gửi chưa hết), không mở được; hãy lưu lại và gửi lại.") from None


def _check_container(path: Path) -> None:
    """Reject what is not a workbook, or would blow up memory, before a reader touches it."""
    size = path.stat().st_size
    if size == 0:
        raise UnreadableWorkbook("Tệp rỗng (0 byte).", "Gửi lại tệp báo cáo (tệp vừa gửi không có nội dung).")
    if size > MAX_FILE_BYTES:
        raise UnreadableWorkbook(f"Tệp quá lớn ({_n(size // 1_000_000)} MB); báo cáo OCOP chỉ vài trăm KB.", TRIM_FIX)
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic == _OLE2_MAGIC:
        _check_ole2(path)
    elif magic.startswith(b"PK\x03\x04") or magic.startswith(b"PK\x05\x06"):
        _check_zip(path, size)
    elif magic.startswith(b"%PDF"):
        raise UnreadableWorkbook("Tệp là PDF, không phải bảng tính Excel; hãy gửi tệp .xlsx.")
    else:
        raise UnreadableWorkbook("Tệp không phải là bảng tính Excel (.xlsx/.xls).")


def _open(path: Path) -> python_calamine.CalamineWorkbook:
    _check_container(path)
    try:
        with open(path, "rb") as fh:  # by content, not by extension: an .xls renamed .xlsx still reads
            return python_calamine.CalamineWorkbook.from_filelike(fh)
    except python_calamine.PasswordError:
        raise UnreadableWorkbook("Tệp được đặt mật khẩu; hãy gửi bản không đặt mật khẩu.") from None
    except Exception as exc:  # calamine raises several types for corrupt files
        raise UnreadableWorkbook(f"Tệp Excel bị hỏng, không đọc được ({type(exc).__name__}).") from None


def _worksheets(book: python_calamine.CalamineWorkbook) -> Iterator[tuple[str, list[list[Any]], list]]:
    """(name, rows from A1, merged ranges) of every worksheet, one at a time."""
    try:
        kinds = {m.name: str(m.typ) for m in book.sheets_metadata}
    except Exception:  # noqa: BLE001 - metadata is a nicety
        kinds = {}
    for name in book.sheet_names:
        if kinds.get(name, "WorkSheet").rsplit(".", 1)[-1] not in ("WorkSheet", "Worksheet"):
            continue  # chart sheets, macro sheets
        try:
            sheet = book.get_sheet_by_name(name)
        except Exception as exc:  # noqa: BLE001
            raise UnreadableWorkbook(f"Trang '{name}' bị hỏng, không đọc được ({type(exc).__name__}).") from None
        rows_used, cols_used = sheet.end[0] + 1 if sheet.end else 0, sheet.end[1] + 1 if sheet.end else 0
        if rows_used > MAX_SHEET_ROWS or rows_used * cols_used > MAX_SHEET_CELLS:  # .xls/.ods: after loading
            raise UnreadableWorkbook(
                f"Trang '{name}' có {_n(rows_used)} dòng × {_n(cols_used)} cột, vượt giới hạn "
                f"{_n(MAX_SHEET_ROWS)} dòng của một báo cáo.", TRIM_FIX)
        try:
            merges = list(sheet.merged_cell_ranges or [])
        except Exception:  # noqa: BLE001 - not every format has them
            merges = []
        yield name, sheet.to_python(skip_empty_area=False), merges


# --------------------------------------------------------------------------------------------
# Finding the header and the data
# --------------------------------------------------------------------------------------------

_NUMBERING = re.compile(r"^\(?\s*(?:\d{1,2}|[A-Za-z])\s*\)?$")   # (1) (2) … or 1 2 3 … or A B C …
_BRACKETED = re.compile(r"^(?:\(.*\)|\[.*\])$", re.S)              # units under a header: (sao) (điểm) (dd/mm/yyyy)
_PARENTHESES = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_NOISE_WORDS = {"ocop"}
_TOTALS = re.compile(r"^(?:tong cong|tong so|tong|cong)(?: |$)(?!ty\b|nhan\b|nghe\b|dong\b)")
_GROUP = re.compile(r"^(?:(?:[ivx]+|[a-z])(?: |$)|(?:xa|phuong|thi tran|thon|nhom|cum|khu vuc|linh vuc|huyen)\b)")
_NOTE = re.compile(r"^(?:ghi chu|chu thich|luu y)\b")
_SIGNATURE = re.compile(
    r"^(?:nguoi lap|nguoi tong hop|nguoi duyet|nguoi ky|can bo tong hop|truong phong|pho truong phong|kt |tm |q |"
    r"chu tich|pho chu tich|giam doc|pho giam doc|thu truong|xac nhan|lanh dao|ky ghi ro|ky ten|ky dong dau|"
    r"ky va ghi ro|noi nhan)")


def _decoration(filled: list[tuple[int, Any]]) -> bool:
    """A numbering row '(1) (2) (3) …' or a row of units '(sao) (điểm) (dd/mm/yyyy)' under a header."""
    texts = [_cell_text(c).strip() for _, c in filled]
    return (len(texts) >= 3 and all(_NUMBERING.match(t) for t in texts)) or \
        (len(texts) >= 2 and all(_BRACKETED.match(t) for t in texts))


def _signature(filled: list[tuple[int, Any]]) -> bool:
    """Most of the row is signature words: 'Người lập biểu', 'KT. TRƯỞNG PHÒNG', '(Ký, ghi rõ họ tên)'."""
    folded = [fold(_cell_text(c)) for _, c in filled]
    return sum(1 for f in folded if _SIGNATURE.match(f)) * 2 >= len(folded)


def _filled(value: Any) -> bool:
    """A cell with something in it (calamine gives '' for an empty cell)."""
    if value is None or value == "":
        return False
    return not isinstance(value, str) or bool(value.strip())


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@functools.cache
def _alias_tables(kind: str) -> tuple[dict[str, str], dict[str, str], dict[tuple[str, ...], str]]:
    """(folded alias, alias without spaces, alias as a bag of words) -> canonical column."""
    exact = domain.header_aliases()[kind]
    compact = {k.replace(" ", ""): v for k, v in exact.items()}
    bags: dict[tuple[str, ...], set[str]] = {}
    for k, v in exact.items():
        bags.setdefault(_bag(k), set()).add(v)
    return exact, compact, {b: next(iter(v)) for b, v in bags.items() if len(v) == 1}


def _bag(folded: str) -> tuple[str, ...]:
    return tuple(sorted(w for w in folded.split() if w not in _NOISE_WORDS))


def match_header(text: Any, kind: str) -> str | None:
    """Canonical column for a header text, accent-, case-, space- and word-order-insensitively;
    a note in brackets ('Điểm (thang 100)', 'Lên sàn TMĐT (Có/Không)') is ignored."""
    exact, compact, bags = _alias_tables(kind)
    raw = _cell_text(text)
    for candidate in dict.fromkeys((fold(raw), fold(_PARENTHESES.sub(" ", raw)))):
        if not candidate:
            continue
        hit = exact.get(candidate) or compact.get(candidate.replace(" ", "")) or bags.get(_bag(candidate))
        if hit:
            return hit
    return None


def _map_headers(texts: list[str | tuple[str, str]], kind: str) -> dict[int, str]:
    """texts: one header text per column, or (parent, child) for a column under a merged parent."""
    mapped: dict[int, str] = {}
    used: set[str] = set()
    for i, text in enumerate(texts):
        if isinstance(text, tuple):
            parent, child = text
            column = match_header(f"{parent} {child}", kind) or match_header(child, kind)
        else:
            column = match_header(text, kind)
        if column and column not in used:
            mapped[i] = column
            used.add(column)
    return mapped


def _two_row_texts(top: list[Any], bottom: list[Any], top_merges: dict[int, tuple[int, int]]
                   ) -> list[str | tuple[str, str]]:
    """Two-row header: a parent ('Chủ thể OCOP', merged across) over its children ('Tên', 'Loại hình', …);
    the other columns are merged down, their text in the top row."""
    out: list[str | tuple[str, str]] = []
    parent, parent_end = "", None
    for i in range(max(len(top), len(bottom))):
        t = _cell_text(top[i]).strip() if i < len(top) else ""
        b = _cell_text(bottom[i]).strip() if i < len(bottom) else ""
        if i in top_merges:                       # a horizontally merged parent starts here
            parent, parent_end = t, top_merges[i][1]
        elif t:
            parent, parent_end = t, None          # unmerged: carries right over blank top cells
        elif (parent_end is not None and i > parent_end) or (parent_end is None and not b):
            parent, parent_end = "", None
        if b:
            out.append((parent, b) if parent else b)
        else:
            out.append(t)
    return out


def _header_text(text: str | tuple[str, str]) -> str:
    return " - ".join(nfc(t) or "" for t in text) if isinstance(text, tuple) else (nfc(text) or "")


def _find_header(rows: list[list[Any]], kind: str, merges: list | None = None
                 ) -> tuple[int, dict[int, str], list[str], int] | None:
    """(header row index, column map, header texts, rows the header spans) or None."""
    key_column = "ten_san_pham" if kind == "products" else "ten_diem_ban"
    merges = merges or []
    for i, cells in enumerate(rows[:HEADER_SCAN_ROWS]):
        if sum(1 for c in cells if _cell_text(c).strip()) < 3:
            continue
        single = [_cell_text(c) for c in cells]
        candidates = [(_map_headers(single, kind), single, 1)]
        if i + 1 < len(rows):
            top_merges = {c0: (c0, c1) for (r0, c0), (r1, c1) in merges if r0 == i and r1 == i and c1 > c0}
            two = _two_row_texts(cells, rows[i + 1], top_merges)
            candidates.append((_map_headers(two, kind), two, 2))
        best = None
        for mapped, texts, span in candidates:
            if key_column in mapped.values() and len(mapped) >= 3:
                score = (len(mapped), -span)
                if best is None or score > best[0]:
                    best = (score, (i, mapped, [_header_text(t) for t in texts], span))
        if best is not None:
            return best[1]
    return None


def _row_kind(cells: list[Any], columns: dict[int, str], header_words: dict[int, set[str]] | None = None) -> str:
    """'data', 'blank', 'group' (I. Xã Bình Châu), 'totals', 'note', 'signature', or 'header' (the header
    or its numbering row repeated further down, as in a list pasted from a paginated report)."""
    filled = [(i, c) for i, c in enumerate(cells) if _filled(c)]
    if not filled:
        return "blank"
    mapped = sum(1 for i, _ in filled if i in columns)
    if _decoration(filled) and not _signature(filled):  # '(Ký, ghi rõ họ tên)' is a signature line
        return "header"
    if header_words and mapped >= 3:
        hits = misses = 0
        for i, c in filled:
            words = header_words.get(i)
            if words is None or not isinstance(c, str):
                continue
            if fold(c) in words:
                hits += 1
                if hits >= 3:
                    return "header"
            else:
                misses += 1
                if misses >= 2:  # a data row: stop looking
                    break
    first = fold(_cell_text(filled[0][1]))
    if _TOTALS.match(first):
        return "totals"
    if _NOTE.match(first):
        return "note"
    if mapped <= 4:  # a product row fills more than four columns; these few may be something else
        if _signature(filled):
            return "signature"
        if _GROUP.match(first) and mapped <= 2:
            return "group"
        if mapped < 2:
            return "note"  # a stray line: place and date, a name, a remark
    return "data"


def _sheet_data(name: str, rows: list[list[Any]], kind: str, merges: list | None = None) -> SheetData | None:
    found = _find_header(rows, kind, merges)
    if found is None:
        return None
    header_index, mapped, texts, span = found
    first_data = header_index + span
    while first_data < min(len(rows), header_index + span + 2):  # numbering "(1) (2) …", units "(sao) (điểm)"
        if not _decoration([(i, c) for i, c in enumerate(rows[first_data]) if _filled(c)]):
            break
        first_data += 1
    columns = {i: c for i, c in mapped.items() if c != "stt"}
    extras = {i: t for i, t in enumerate(texts) if i not in mapped and t and fold(t) != "stt"}
    headers = {i: t for i, t in enumerate(texts) if t}
    header_words: dict[int, set[str]] = {}
    for cells in rows[header_index:header_index + span]:
        for i, c in enumerate(cells):
            if isinstance(c, str) and c.strip():
                header_words.setdefault(i, set()).add(fold(c))
    data: list[tuple[int, list[Any]]] = []
    for offset, cells in enumerate(rows[first_data:]):
        kind_of_row = _row_kind(cells, columns, header_words)
        if kind_of_row == "signature":
            break  # what follows is signatures and names
        if kind_of_row == "data":
            data.append((first_data + offset + 1, cells))
    title_lines = [" ".join(_cell_text(c).strip() for c in r if _cell_text(c).strip()) for r in rows[:header_index]]
    return SheetData(name, kind, header_index + 1, columns, extras, headers, data, [t for t in title_lines if t])


# --------------------------------------------------------------------------------------------
# District and period
# --------------------------------------------------------------------------------------------

_PLACE_DATE = re.compile(r"\bngay\s+\d{1,2}\s+thang\b")  # 'Bình Sơn, ngày 5 tháng 01 năm 2025': a signing date


def _title_periods(title_lines: list[str]) -> set[str]:
    """Periods named by the title block: the 'Kỳ báo cáo' line, else a 'tháng MM/YYYY' title line."""
    folded = [(line, fold(line)) for line in title_lines]
    report_lines = [line for line, f in folded if "ky bao cao" in f]
    if not report_lines:
        report_lines = [line for line, f in folded if "thang" in f and not _PLACE_DATE.search(f)]
    return {p for p in map(domain.find_period, report_lines) if p}


def _resolve(sub: ParsedSubmission, title_lines: list[str], inbox_relative: Path) -> None:
    title_districts: set[str] = set()
    for line in title_lines:
        title_districts |= domain.district_from_title(line)
    title_periods = _title_periods(title_lines)
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


def _source_value(v: Any) -> Any:
    if isinstance(v, (dt.date, dt.datetime, dt.time)):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return int(v)  # Excel stores every number as a float; show 6, not 6.0
    if isinstance(v, dt.timedelta):
        return str(v)
    return v


def _canonical_rows(sub: ParsedSubmission, sheet: SheetData, parsers: dict[str, Callable]) -> list[dict]:
    out = []
    index_of = {c: i for i, c in sheet.columns.items()}
    for row_number, cells in sheet.rows:
        record: dict[str, Any] = {"sheet": sheet.name, "row_number": row_number}
        source_values = {}
        for i, v in enumerate(cells):  # everything the district typed, unknown columns included
            if _filled(v):
                source_values[sheet.headers.get(i) or f"Cột {_column_letter(i + 1)}"] = (
                    v if type(v) is str else _source_value(v))
        for column, parse in parsers.items():
            index = index_of.get(column)
            raw = cells[index] if index is not None and index < len(cells) else None
            if isinstance(raw, str) and not raw.strip():
                raw = None
            if column == "nhom_san_pham":
                record["nhom_san_pham_goc"] = nfc(raw)  # as written (2019 or 2023 group name)
            try:
                record[column] = parse(raw)
            except (ValueError, TypeError) as exc:
                record[column] = None
                label = COLUMN_LABELS.get(column, column)
                sub.error(f"{column}_unreadable", f"{label}: {exc}", sheet=sheet.name, row=row_number, column=label,
                          value=_cell_text(raw), fix=f"Sửa ô {label} ở dòng {row_number}.")
        record["source_values"] = json.dumps(source_values, ensure_ascii=False, default=str)
        out.append(record)
    return out


def _check_required(sub: ParsedSubmission, sheet: SheetData, required: list[str]) -> None:
    present = set(sheet.columns.values())
    for column in required:
        if column not in present:
            sub.error("required_columns", f"Thiếu cột bắt buộc '{COLUMN_LABELS[column]}' ở trang {sheet.name}.",
                      sheet=sheet.name, row=sheet.header_row, column=COLUMN_LABELS[column],
                      fix=f"Thêm cột '{COLUMN_LABELS[column]}' vào dòng tiêu đề cột.")


def _finish_products(sub: ParsedSubmission, sheets: list[SheetData]) -> None:
    for sheet in sheets:
        _check_required(sub, sheet, REQUIRED_PRODUCT_COLUMNS)
        if "nhom_san_pham" not in sheet.columns.values():
            sub.warn("product_group_missing", "Không có cột 'Nhóm sản phẩm': nhóm của các sản phẩm được ghi là "
                     "chưa rõ.", sheet=sheet.name, fix="Thêm cột 'Nhóm sản phẩm' (6 nhóm theo Quyết định 148/QĐ-TTg).")
        rows = _canonical_rows(sub, sheet, PRODUCT_PARSERS)
        for r in rows:
            if r["ngay_het_han"] is None and r["ngay_cong_nhan"] is not None:  # column missing or cell blank
                r["ngay_het_han"] = domain.certificate_expiry(r["ngay_cong_nhan"])
        sub.products.extend(rows)
        if sheet.extra_columns:
            sub.warn("extra_columns", "Các cột ngoài mẫu được lưu nhưng không dùng: "
                     + ", ".join(sheet.extra_columns.values()), sheet=sheet.name)


def _finish_sales_points(sub: ParsedSubmission, sheets: list[SheetData]) -> None:
    for sheet in sheets:
        _check_required(sub, sheet, REQUIRED_SALES_POINT_COLUMNS)
        sub.sales_points.extend(_canonical_rows(sub, sheet, SALES_POINT_PARSERS))


def _pick(sheets: list[SheetData]) -> list[SheetData]:
    """The sheets to read: the first one with data rows first, then any other that has rows
    (a list split over several sheets); an empty copy of the form is ignored when another has rows."""
    with_rows = [s for s in sheets if s.rows]
    return with_rows or sheets[:1]


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
    products: list[SheetData] = []
    sales: list[SheetData] = []
    try:
        book = _open(path)
        try:
            for name, rows, merges in _worksheets(book):
                found = _sheet_data(name, rows, "products", merges)
                if found is not None:
                    products.append(found)
                    continue
                found = _sheet_data(name, rows, "sales_points", merges)
                if found is not None:
                    sales.append(found)
        finally:
            book.close()
    except UnreadableWorkbook as exc:
        sub.error("unreadable_file", str(exc), fix=exc.fix or DEFAULT_FIX)
        _resolve(sub, [], relative)
        return sub

    if not products:
        sub.error("products_sheet_missing", "Không tìm thấy trang danh sách sản phẩm OCOP (dòng tiêu đề cột có "
                  "'Tên sản phẩm', 'Hạng sao', …).", fix="Dùng mẫu báo cáo của tỉnh, giữ nguyên dòng tiêu đề cột.")
        _resolve(sub, [], relative)
        return sub
    products, sales = _pick(products), _pick(sales) if sales else []
    sub.products_sheet = products[0].name
    _resolve(sub, products[0].title_lines + (sales[0].title_lines if sales else []), relative)
    if len(products) > 1:
        sub.warn("several_products_sheets", "Danh sách sản phẩm nằm ở nhiều trang; đã đọc tất cả: "
                 + ", ".join(s.name for s in products), fix="Gộp danh sách sản phẩm vào một trang ở kỳ sau.")
    _finish_products(sub, products)
    if not sales:
        sub.warn("sales_points_sheet_missing", "Không có trang điểm giới thiệu và bán sản phẩm OCOP: giữ nguyên "
                 "danh sách điểm bán đã báo cáo lần trước.", fix="Thêm trang điểm bán theo mẫu ở kỳ sau.")
    else:
        sub.sales_points_sheet = sales[0].name
        _finish_sales_points(sub, sales)
    if not sub.products:
        sheet = products[0].name
        sub.error("no_data_rows", f"Trang {sheet} không có dòng sản phẩm nào.", sheet=sheet,
                  fix="Điền danh sách sản phẩm OCOP dưới dòng tiêu đề cột.")
    return sub
