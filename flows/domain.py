"""OCOP domain helpers: Vietnamese text, dates, stars, scores, owner types, districts, periods.

Pure functions, no I/O except reading the reference seeds once. Every parser returns `None` for
an empty cell and raises `ValueError` (with the reason in plain words) for a value it cannot read,
so the loader can report the exact cell.
"""
from __future__ import annotations

import csv
import datetime as dt
import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from flows.config import REFERENCE_DIR, SEEDS_DIR

EXCEL_EPOCH = dt.date(1899, 12, 30)
CERTIFICATE_MONTHS = 36

# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


_SPACES = re.compile(r"\s+")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def nfc(value: object) -> str | None:
    """NFC text with stray spaces trimmed and collapsed; None for empty."""
    if value is None:
        return None
    return _nfc_text(str(value))


@functools.lru_cache(maxsize=65536)  # the same words come back on every row of a workbook
def _nfc_text(text: str) -> str | None:
    text = unicodedata.normalize("NFC", text).replace("\u00a0", " ")
    text = _SPACES.sub(" ", text).strip()
    return text or None


def fold(value: object) -> str:
    """Accent-, case- and punctuation-insensitive key: 'Huyện Bình Sơn' -> 'huyen binh son'."""
    if value is None:
        return ""
    return _fold_text(str(value))


@functools.lru_cache(maxsize=65536)
def _fold_text(text: str) -> str:
    text = unicodedata.normalize("NFD", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    text = text.replace("đ", "d").replace("Đ", "D").lower()
    return _NOT_ALNUM.sub(" ", text).strip()


def compact(value: object) -> str:
    """`fold` without spaces: for CamelCase file names ('LySon')."""
    return fold(value).replace(" ", "")


# --------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------

_DATE_TEXT = re.compile(r"^(\d{1,2})\s*[/\-.]\s*(\d{1,2})\s*[/\-.]\s*(\d{4}|\d{2})(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?$")
_ISO_TEXT = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T].*)?$")
_WORDS_DATE = re.compile(r"^(?:ngay\s+)?(\d{1,2})\s+thang\s+(\d{1,2})\s+nam\s+(\d{4})$")  # ngày 22 tháng 3 năm 2024


def excel_serial_to_date(serial: float) -> dt.date:
    if not (1 <= serial < 2958466):
        raise ValueError(f"số {serial} không phải ngày Excel hợp lệ")
    return EXCEL_EPOCH + dt.timedelta(days=int(serial))


def parse_date(value: object) -> dt.date | None:
    """Real dates, Excel serial numbers, 'd/m/yyyy', 'dd-mm-yyyy', 'yyyy-mm-dd'; day first always."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, bool):
        raise ValueError(f"'{value}' không phải là ngày")
    if isinstance(value, (int, float)):
        return excel_serial_to_date(float(value))
    text = nfc(value)
    if text is None:
        return None
    if re.fullmatch(r"\d{5}(\.0+)?", text):
        return excel_serial_to_date(float(text))
    m = _DATE_TEXT.match(text) or _WORDS_DATE.match(fold(text))
    try:
        if m:
            day, month, year = map(int, m.groups())
            if year < 100:  # '22/3/24': two-digit years are this century
                year += 2000
            return dt.date(year, month, day)
        m = _ISO_TEXT.match(text)
        if m:
            year, month, day = map(int, m.groups())
            return dt.date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"'{text}' không phải ngày hợp lệ ({exc})") from None
    raise ValueError(f"'{text}' không đọc được thành ngày (dùng dạng ngày/tháng/năm, ví dụ 22/3/2024)")


def add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    last = [31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28, 31, 30, 31, 30,
            31, 31, 30, 31, 30, 31][month - 1]
    return dt.date(year, month, min(day.day, last))


def certificate_expiry(recognised_on: dt.date) -> dt.date:
    return add_months(recognised_on, CERTIFICATE_MONTHS)


# --------------------------------------------------------------------------------------------
# Numbers, stars, flags
# --------------------------------------------------------------------------------------------


def parse_score(value: object) -> float | None:
    """'62,5' / '62.5' / 62.5 -> 62.5"""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"'{value}' không phải là điểm")
    if isinstance(value, (int, float)):
        return float(value)
    text = nfc(value)
    if text is None:
        return None
    text = re.sub(r"(?i)(điểm|diem|đ)$", "", text.replace(" ", ""))  # '62,5 điểm'
    if re.fullmatch(r"\d+,\d+", text):
        text = text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"'{text}' không phải là điểm số (ví dụ 62,5)") from None


def parse_stars(value: object) -> int | None:
    """'3', '3 sao', '4*', '★★★★', 3.0 -> int."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"'{value}' không phải hạng sao")
    if isinstance(value, (int, float)):
        if float(value) != int(value):
            raise ValueError(f"'{value}' không phải hạng sao")
        return int(value)
    text = nfc(value)
    if text is None:
        return None
    if set(text) <= {"★", "☆", " "}:
        return text.count("★")
    if set(text) <= {"*", " "}:  # '***'
        return text.count("*")
    text = re.sub(r"^(\d)\s*★$", r"\1", text)  # '4★'
    m = re.fullmatch(r"(\d)(?:[.,]0+)?\s*(?:\*|sao)?", fold_keep_separators(text).strip())
    if m:
        return int(m.group(1))
    raise ValueError(f"'{text}' không đọc được hạng sao (ghi 3, 4 hoặc 5)")


_TRUE = {"co", "x", "yes", "y", "1", "true", "da", "dung", "v"}
_FALSE = {"khong", "no", "n", "0", "false", "chua", "k"}
_TRUE_MARKS = {"✓", "✔", "√", "☑", "✅"}  # tick marks fold to nothing
_FALSE_MARKS = {"✗", "✘", "☐"}


def parse_flag(value: object) -> bool | None:
    """Có / Không / x / blank."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    key = fold(value)
    if not key:
        mark = nfc(value)
        if mark in _TRUE_MARKS:
            return True
        if mark in _FALSE_MARKS:
            return False
        return None
    if key in _TRUE or key.startswith("co "):
        return True
    if key in _FALSE or key.startswith("khong "):
        return False
    raise ValueError(f"'{nfc(value)}' không phải Có/Không")


def parse_decision_no(value: object) -> str | None:
    """' 1425 / QĐ-UBND' -> '1425/QĐ-UBND'."""
    text = nfc(value)
    if text is None:
        return None
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    return re.sub(r"\s+", "", text)


def parse_tax_number(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = nfc(value)
    if text is None:
        return None
    return re.sub(r"[\s.]", "", text)


TAX_NUMBER_RE = re.compile(r"^\d{10}(-\d{3})?$")

# --------------------------------------------------------------------------------------------
# Coded values from reference data
# --------------------------------------------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@functools.cache
def _owner_type_aliases() -> dict[str, str]:
    return {fold(r["alias"]): r["owner_type"] for r in _read_csv(SEEDS_DIR / "owner_type_aliases.csv")}


@functools.cache
def _group_aliases() -> dict[str, str]:
    return {fold(r["alias"]): r["group_code"] for r in _read_csv(SEEDS_DIR / "product_group_aliases.csv")}


@functools.cache
def header_aliases() -> dict[str, dict[str, str]]:
    """sheet kind -> folded alias -> canonical column."""
    out: dict[str, dict[str, str]] = {}
    for r in _read_csv(REFERENCE_DIR / "header_aliases.csv"):
        out.setdefault(r["sheet"], {})[fold(r["alias"])] = r["canonical"]
    return out


def parse_owner_type(value: object) -> str | None:
    key = fold(value)
    if not key:
        return None
    aliases = _owner_type_aliases()
    if key in aliases:
        return aliases[key]
    for alias in sorted(aliases, key=len, reverse=True):  # 'Cty TNHH Một thành viên' -> longest prefix
        if len(alias) > 2 and key.startswith(alias + " "):
            return aliases[alias]
    raise ValueError(f"'{nfc(value)}' không phải loại hình chủ thể (DN, HTX, THT, Hộ kinh doanh, Cơ sở)")


def parse_product_group(value: object) -> str | None:
    """2023 groups (Decision 148) or 2019 groups (Decision 1048) -> group code I..VI."""
    key = fold(value)
    if not key:
        return None
    key = re.sub(r"^(nhom )?(i{1,3}|iv|v|vi|[1-6])\s+", "", key)  # 'I. Thực phẩm', 'Nhóm 1 ...'
    groups = _group_aliases()
    if key in groups:
        return groups[key]
    raise ValueError(f"'{nfc(value)}' không thuộc 6 nhóm sản phẩm OCOP (Quyết định 148/QĐ-TTg)")


_LEVELS = {"huyen": "huyen", "cap huyen": "huyen", "tinh": "tinh", "cap tinh": "tinh",
           "trung uong": "trung_uong", "cap trung uong": "trung_uong", "tw": "trung_uong"}
_KINDS = {"moi": "moi", "cong nhan moi": "moi", "cong nhan lai": "cong_nhan_lai", "danh gia lai": "cong_nhan_lai",
          "nang hang": "nang_hang", "nang sao": "nang_hang"}
_SALES_POINT_KINDS = {"nha nuoc ho tro": "nha_nuoc_ho_tro", "ngan sach ho tro": "nha_nuoc_ho_tro",
                      "nha nuoc": "nha_nuoc_ho_tro", "xa hoi hoa": "xa_hoi_hoa", "xhh": "xa_hoi_hoa",
                      "tu nhan": "xa_hoi_hoa"}


def _coded(table: dict[str, str], what: str):
    def parse(value: object) -> str | None:
        key = fold(value)
        if not key:
            return None
        if key in table:
            return table[key]
        raise ValueError(f"'{nfc(value)}' không phải {what} hợp lệ")
    return parse


parse_level = _coded(_LEVELS, "cấp công nhận (Huyện/Tỉnh/Trung ương)")
parse_kind = _coded(_KINDS, "hình thức công nhận (Mới/Công nhận lại/Nâng hạng)")
parse_sales_point_kind = _coded(_SALES_POINT_KINDS, "hình thức điểm bán (Nhà nước hỗ trợ/Xã hội hóa)")

STAR_BANDS = {3: (50.0, 70.0), 4: (70.0, 90.0), 5: (90.0, 100.0001)}


def stars_for_score(score: float) -> int | None:
    for stars, (low, high) in STAR_BANDS.items():
        if low <= score < high:
            return stars
    return None


def score_fits_stars(stars: int, score: float, five_star_potential: bool = False) -> bool:
    """Score inside its star band; a province-rated 4-star product put forward as 'tiềm năng 5 sao'
    may carry a 90+ score."""
    if stars not in STAR_BANDS:
        return False
    low, high = STAR_BANDS[stars]
    if low <= score < high:
        return True
    return stars == 4 and bool(five_star_potential) and 90.0 <= score <= 100.0


# --------------------------------------------------------------------------------------------
# Districts and periods
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class District:
    code: str
    name: str
    full_name: str
    slug: str


@functools.cache
def districts() -> dict[str, District]:
    return {r["district_code"]: District(r["district_code"], r["district_name"], r["full_name"], r["slug"])
            for r in _read_csv(SEEDS_DIR / "districts.csv")}


@functools.cache
def _district_alias_patterns() -> list[tuple[re.Pattern, re.Pattern, str]]:
    out = []
    for r in _read_csv(SEEDS_DIR / "district_aliases.csv"):
        alias = fold(r["alias"])
        spaced = re.compile(r"(?<![0-9a-z])" + re.escape(alias) + r"(?![0-9a-z])")
        joined = re.compile(re.escape(alias.replace(" ", "")))
        out.append((spaced, joined, r["district_code"]))
    return out


def find_districts(text: object) -> set[str]:
    """District codes named in a free text (title line, file or folder name)."""
    folded = fold(text)
    if not folded:
        return set()
    found = {code for spaced, _, code in _district_alias_patterns() if spaced.search(folded)}
    if not found:  # CamelCase file names: 'OCOP_TraBong_T12'
        squashed = " " + folded.replace(" ", "") + " "
        found = {code for _, joined, code in _district_alias_patterns() if joined.search(squashed)}
    return found


_TITLE_UNIT = re.compile(
    r"\b(?:ubnd|uy ban nhan dan|phong nong nghiep.*?|phong kinh te.*?)\s+(huyen|thanh pho|thi xa|tp|tx)\s+(.+)$")


def district_from_title(line: object) -> set[str]:
    """'UBND HUYỆN BÌNH SƠN' -> {'524'}; a province line ('UBND TỈNH QUẢNG NGÃI') names none."""
    folded = fold(line)
    m = _TITLE_UNIT.search(folded)
    if not m:
        return set()
    unit, rest = m.groups()
    if unit in ("thanh pho", "tp") and fold(rest).startswith("quang ngai"):
        return {"522"}
    return find_districts(rest)


_PERIOD_PATTERNS = [
    re.compile(r"thang\s+(\d{1,2})\s*(?:nam\s*)?[/\-. ]\s*(\d{4})"),     # tháng 12/2024, tháng 12 năm 2024
    re.compile(r"(?<![0-9a-z])t\s*(\d{1,2})\s*[/\-._ ]\s*(\d{4})(?!\d)"),  # T12-2024, T6.2024
    re.compile(r"(?<!\d)(\d{4})\s*[\-_.]\s*(\d{1,2})(?!\d)"),             # 2024-12 (year first)
    re.compile(r"(?<!\d)(\d{1,2})\s*[\-_.]\s*(\d{4})(?!\d)"),             # 12-2024, 12.2024
    re.compile(r"(?<![\d/])(\d{1,2})\s*/\s*(\d{4})(?!\d)"),               # 12/2024 (not the end of 22/12/2024)
]


def find_period(text: object) -> str | None:
    """'Kỳ báo cáo: tháng 12/2024', 'BC OCOP T12-2024', '2024-12' -> '2024-12'."""
    folded = fold(text)
    if not folded:
        return None
    # fold() turns separators into spaces; match on a variant that keeps them for the numeric forms
    raw = re.sub(r"\s+", " ", unicodedata.normalize("NFC", str(text)).lower())
    raw = fold_keep_separators(raw)
    for i, pattern in enumerate(_PERIOD_PATTERNS):
        m = pattern.search(raw)
        if m:
            a, b = m.groups()
            year, month = (int(a), int(b)) if i == 2 else (int(b), int(a))
            if 1 <= month <= 12 and 2000 <= year <= 2100:
                return f"{year:04d}-{month:02d}"
    return None


def fold_keep_separators(text: str) -> str:
    text = unicodedata.normalize("NFD", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    return text.replace("đ", "d").replace("Đ", "d").lower()


def period_end(period: str) -> dt.date:
    year, month = map(int, period.split("-"))
    return add_months(dt.date(year, month, 1), 1) - dt.timedelta(days=1)
