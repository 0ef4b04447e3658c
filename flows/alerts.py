"""District alerts: a Vietnamese feedback workbook and a notification for every rejected submission,
and a reminder for districts that have not reported by the deadline.

DESIGN.md: "District officers get a clear alert, in Vietnamese, when their submission is rejected:
which file, which row, which rule, what to fix. Their last good submission stays published meanwhile."

- `write_feedback_workbook(settings, record)` writes `<feedback_dir>/<YYYY-MM>/<district-slug>.xlsx`
  (or `<feedback_dir>/chua-xac-dinh/<file-name-slug>.xlsx` when the district or the period could not
  be resolved): a header block, then one line per problem, errors first, by row. Every text cell is
  neutralised against formula injection (OWASP CSV injection). Written atomically.
- `send_rejection_alerts(settings, records, received_at)` does that for every rejected record and
  notifies every Apprise URL in `settings.alert_urls` (3 attempts with back-off per URL; a failure is
  logged and counted, never raised). Returns an `AlertReport` with a markdown table for a Prefect
  artifact.
- `late_districts(settings, submissions, today)` and `send_late_alerts(settings, codes, period)`:
  a district with no submission for last month by day `settings.late_day` of this month is late.

Nothing here raises because of a district's data or an unreachable notification service: the night
must go on and publish what is good.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from flows import domain
from flows.config import TIMEZONE, Settings
from flows.workbook import COLUMN_LABELS

log = logging.getLogger(__name__)

UNRESOLVED_DIR = "chua-xac-dinh"
MAX_PROBLEMS_IN_MESSAGE = 5
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1, 4)  # 3 attempts: now, after 1 s, after 4 more s
EXCEL_MAX_CELL_CHARS = 32_767

LEVEL_LABELS = {"error": "Lỗi", "warning": "Cảnh báo"}
FEEDBACK_COLUMNS = [  # (header, width cap)
    ("STT", 6), ("Mức độ", 10), ("Trang", 22), ("Dòng", 8), ("Cột", 20), ("Giá trị đã nhập", 30),
    ("Quy tắc", 26), ("Mô tả lỗi", 60), ("Cách sửa", 60),
]

# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

# OWASP "CSV injection": a cell starting with one of these can be read as a formula by Excel,
# LibreOffice or Google Sheets. Full-width forms are included (some Excel locales convert them).
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_ILLEGAL_XML_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def neutralise(value: Any) -> Any:
    """Text that a spreadsheet could run as a formula gets a leading apostrophe; other values pass.

    >>> neutralise("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    >>> neutralise("Tỏi Lý Sơn"), neutralise(-2), neutralise(None)
    ('Tỏi Lý Sơn', -2, None)
    """
    if not isinstance(value, str):
        return value
    text = _ILLEGAL_XML_CHARS.sub("", value)  # openpyxl refuses control characters
    if text.lstrip(" ").startswith(_FORMULA_TRIGGERS):
        text = "'" + text
    if len(text) > EXCEL_MAX_CELL_CHARS:
        text = text[: EXCEL_MAX_CELL_CHARS - 1] + "…"
    return text


def _present(value: Any) -> str | None:
    """A clean text for a field that may be None, NaN, pd.NA, a number or a string."""
    if value is None:
        return None
    try:
        if value != value:  # NaN
            return None
    except (TypeError, ValueError):  # pd.NA
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0
    return 0 if math.isnan(number) else int(number)


def slugify(text: str, max_len: int = 80) -> str:
    """'BC OCOP T12-2024 Bình Sơn' -> 'bc-ocop-t12-2024-binh-son' (only [a-z0-9-], never empty)."""
    slug = domain.fold(text).replace(" ", "-")[:max_len].strip("-")
    return slug or "tep-khong-ten"


def period_label(period: str | None) -> str:
    """'2024-12' -> '12/2024'."""
    if period and re.fullmatch(r"\d{4}-\d{2}", period):
        return f"{period[5:7]}/{period[:4]}"
    return "chưa xác định"


def previous_period(today: dt.date) -> str:
    first = today.replace(day=1) - dt.timedelta(days=1)
    return f"{first.year:04d}-{first.month:02d}"


def _district(code: str | None) -> domain.District | None:
    return domain.districts().get(code) if code else None


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None or _present(value) is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return None


def format_vn_time(value: Any) -> str:
    """'20/12/2024 09:00 (giờ Việt Nam)'. A naive time is taken as UTC (what the warehouse stores)."""
    moment = _as_datetime(value)
    if moment is None:
        return "không rõ"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(TIMEZONE).strftime("%d/%m/%Y %H:%M") + " (giờ Việt Nam)"


def _logger():
    """Prefect's run logger inside a flow or task run (so the UI shows it), the module's elsewhere."""
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:
        return log


# --------------------------------------------------------------------------------------------
# One rejected submission, as the alert sees it
# --------------------------------------------------------------------------------------------


@dataclass
class Problem:
    level: str
    rule: str
    message: str
    sheet: str | None = None
    row: int | None = None
    column: str | None = None
    value: str | None = None
    fix: str | None = None

    @property
    def level_label(self) -> str:
        return LEVEL_LABELS.get(self.level, self.level)

    @property
    def column_label(self) -> str | None:
        return COLUMN_LABELS.get(self.column, self.column) if self.column else None

    def where(self) -> str:
        parts = []
        if self.sheet:
            parts.append(f"trang “{self.sheet}”")
        if self.row is not None:
            parts.append(f"dòng {self.row}")
        if self.column_label:
            parts.append(f"cột {self.column_label}")
        return ", ".join(parts) or "toàn tệp"


_COLUMN_ORDER = {c: i for i, c in enumerate(COLUMN_LABELS)}


def problems(record: dict) -> list[Problem]:
    """The record's issues, errors first then warnings; whole-file issues first, then by sheet and row."""
    raw = record.get("issues") or []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = []
    out = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        row = _present(item.get("row"))
        out.append(Problem(
            level=_present(item.get("level")) or "error", rule=_present(item.get("rule")) or "",
            message=_present(item.get("message")) or "", sheet=_present(item.get("sheet")),
            row=_int(row) if row is not None and re.fullmatch(r"-?\d+(\.0+)?", row) else None,
            column=_present(item.get("column")), value=_present(item.get("value")), fix=_present(item.get("fix"))))
    out.sort(key=lambda p: (p.level != "error", p.row is not None, p.sheet or "", p.row or 0,
                            _COLUMN_ORDER.get(p.column or "", 999), p.rule))
    return out


@dataclass
class Rejection:
    submission_id: str
    district_code: str | None
    period: str | None
    source_file: str
    received_at: Any
    errors: int
    warnings: int
    problems: list[Problem]

    @classmethod
    def from_record(cls, record: dict, received_at: Any = None) -> "Rejection":
        code = _present(record.get("district_code"))
        period = _present(record.get("period"))
        found = problems(record)
        return cls(
            submission_id=_present(record.get("submission_id")) or "",
            district_code=code if _district(code) else None,
            period=period if period and re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period) else None,
            source_file=Path(_present(record.get("source_file")) or "").name or "(không rõ tên tệp)",
            received_at=received_at if received_at is not None else record.get("received_at"),
            errors=_int(record["errors"]) if "errors" in record else sum(p.level == "error" for p in found),
            warnings=_int(record["warnings"]) if "warnings" in record else sum(p.level == "warning" for p in found),
            problems=found,
        )

    @property
    def resolved(self) -> bool:
        return self.district_code is not None and self.period is not None

    @property
    def unit_name(self) -> str:
        d = _district(self.district_code)
        return d.full_name if d else "chưa xác định được đơn vị"

    def feedback_path(self, settings: Settings) -> Path:
        if self.resolved:
            return settings.feedback_dir / self.period / f"{_district(self.district_code).slug}.xlsx"
        return settings.feedback_dir / UNRESOLVED_DIR / f"{slugify(Path(self.source_file).stem)}.xlsx"


# --------------------------------------------------------------------------------------------
# The feedback workbook
# --------------------------------------------------------------------------------------------


def _header_block(rej: Rejection) -> list[tuple[str, Any]]:
    unit = rej.unit_name if rej.district_code else "Chưa xác định được đơn vị gửi báo cáo"
    period = f"tháng {period_label(rej.period)}" if rej.period else "Chưa xác định được kỳ báo cáo"
    return [
        ("Đơn vị", unit),
        ("Kỳ báo cáo", period),
        ("Tệp đã gửi", rej.source_file),
        ("Thời điểm nhận", format_vn_time(rej.received_at)),
        ("Kết quả", "Báo cáo bị từ chối"),
        ("Số lỗi", rej.errors),
        ("Số cảnh báo", rej.warnings),
        ("Hướng dẫn", "Sửa tất cả các dòng có mức độ “Lỗi” trong tệp gốc rồi gửi lại toàn bộ tệp. "
                      "“Cảnh báo” không làm báo cáo bị từ chối nhưng nên kiểm tra lại. "
                      "Trong thời gian này, báo cáo được chấp nhận gần nhất của đơn vị vẫn được sử dụng."),
        ("Ghi chú", "Giá trị bắt đầu bằng =, +, -, @ được thêm dấu ' ở đầu để Excel không hiểu nhầm là công thức."),
    ]


def write_feedback_workbook(settings: Settings, record: dict, received_at: Any = None) -> Path:
    """Write the Vietnamese feedback workbook for one rejected submission; returns its path."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    rej = record if isinstance(record, Rejection) else Rejection.from_record(record, received_at)
    path = rej.feedback_path(settings)

    wb = Workbook()
    ws = wb.active
    ws.title = "Phản hồi"
    bold = Font(bold=True)
    widths = [len(h) + 2 for h, _ in FEEDBACK_COLUMNS]

    def put(row: int, col: int, value: Any, **style) -> None:
        cell = ws.cell(row=row, column=col)
        cell.value = neutralise(value)
        if isinstance(cell.value, str):
            cell.data_type = "s"  # never a formula, whatever the text
        for k, v in style.items():
            setattr(cell, k, v)

    put(1, 1, "PHẢN HỒI KẾT QUẢ KIỂM TRA BÁO CÁO OCOP", font=Font(bold=True, size=14))
    row = 2
    block_rows: list[tuple[int, Any]] = []
    for label, value in _header_block(rej):
        put(row, 1, label + ":", font=bold, alignment=Alignment(vertical="top"))
        ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=2)
        put(row, 3, value, alignment=Alignment(horizontal="left", vertical="top", wrap_text=True),
            font=Font(bold=True, color="C00000") if value == "Báo cáo bị từ chối" else Font())
        ws.merge_cells(start_row=row, start_column=3, end_row=row, end_column=len(FEEDBACK_COLUMNS))
        block_rows.append((row, value))
        row += 1
    row += 1
    header_row = row
    fill = PatternFill("solid", fgColor="DDEBF7")
    for col, (header, _) in enumerate(FEEDBACK_COLUMNS, start=1):
        put(header_row, col, header, font=bold, fill=fill,
            alignment=Alignment(horizontal="center", vertical="center", wrap_text=True))
    wrap = Alignment(vertical="top", wrap_text=True)
    top = Alignment(vertical="top")
    for n, p in enumerate(rej.problems, start=1):
        row += 1
        values = [n, p.level_label, p.sheet, p.row, p.column_label, p.value, p.rule, p.message, p.fix]
        for col, value in enumerate(values, start=1):
            put(row, col, value, alignment=wrap if col >= 6 else top,
                **({"font": Font(bold=True, color="C00000")} if col == 2 and p.level == "error" else {}))
            if value is not None:
                longest = max((len(line) for line in str(value).splitlines()), default=0)
                widths[col - 1] = max(widths[col - 1], longest + 2)
    if not rej.problems:
        put(row + 1, 1, "Không có chi tiết lỗi theo dòng; xem phần Kết quả ở trên.")
    final = [min(width, cap) for (_, cap), width in zip(FEEDBACK_COLUMNS, widths)]
    for col, width in enumerate(final, start=1):
        ws.column_dimensions[get_column_letter(col)].width = width
    merged_width = sum(final[2:])  # Excel does not grow a merged row to fit wrapped text: size it here
    for r, value in block_rows:
        lines = math.ceil(len(str(value)) * 1.1 / max(merged_width, 1))
        if lines > 1:
            ws.row_dimensions[r].height = 15 * lines
    ws.freeze_panes = ws.cell(row=header_row + 1, column=1)
    if rej.problems:
        ws.auto_filter.ref = f"A{header_row}:{get_column_letter(len(FEEDBACK_COLUMNS))}{row}"
    ws.print_title_rows = f"{header_row}:{header_row}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".xlsx.tmp", dir=path.parent)
    os.close(fd)
    try:
        wb.save(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------------------------
# Notifications (Apprise)
# --------------------------------------------------------------------------------------------


@dataclass
class Delivery:
    url: str            # with secrets masked
    subject: str        # submission id or district code the message was about
    title: str
    ok: bool
    attempts: int
    error: str | None = None


def _private_url(url: str) -> str:
    try:
        import apprise

        obj = apprise.Apprise.instantiate(url)
        if obj is not None:
            return obj.url(privacy=True)
    except Exception:
        pass
    return url.split("://", 1)[0] + "://…"


def _failure_reason(result: Any) -> str | None:
    try:
        entries = [e for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")]
    except Exception:
        return None
    return entries[-1].message if entries else None


def _notify_once(url: str, title: str, body: str, notify_type: str, attach: Path | None) -> tuple[bool, str | None]:
    import apprise

    # app_id goes into HTTP headers (User-Agent): ASCII only, or every HTTP plugin fails
    asset = apprise.AppriseAsset(app_id="OCOP-Quang-Ngai", app_desc="OCOP data warehouse, Quang Ngai")
    ap = apprise.Apprise(asset=asset)
    if not ap.add(url):
        return False, "invalid Apprise URL"
    kwargs = {}
    if attach is not None and attach.exists():
        kwargs["attach"] = str(attach)
    result = ap.notify(body=body, title=title, notify_type=notify_type, body_format=apprise.NotifyFormat.TEXT,
                       **kwargs)
    try:
        return bool(result), None if result else (_failure_reason(result) or "delivery failed")
    finally:
        close = getattr(result, "close", None)
        if close:
            close()


def deliver(url: str, title: str, body: str, *, subject: str = "", notify_type: str = "failure",
            attach: Path | None = None, retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
            sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """Send one message to one Apprise URL: first try, then one retry after each delay. Never raises."""
    logger = _logger()
    private = _private_url(url)
    error: str | None = None
    attempts = 0
    for attempt, delay in enumerate([None, *retry_delays], start=1):
        if delay:
            sleep(delay)
        attempts = attempt
        try:
            ok, error = _notify_once(url, title, body, notify_type, attach)
        except Exception as exc:  # a plugin bug or an odd URL must not stop the night
            ok, error = False, f"{type(exc).__name__}: {exc}"
        if ok:
            if attempt > 1:
                logger.info("alert to %s delivered on attempt %d (%s)", private, attempt, subject)
            return Delivery(private, subject, title, True, attempt)
        if error == "invalid Apprise URL":
            break  # retrying cannot help
        logger.warning("alert to %s failed (attempt %d of %d, %s): %s", private, attempt,
                       len(retry_delays) + 1, subject, error)
    logger.error("alert to %s NOT delivered after %d attempt(s) (%s): %s", private, attempts, subject, error)
    return Delivery(private, subject, title, False, attempts, error)


def _fan_out(settings: Settings, title: str, body: str, subject: str, notify_type: str, attach: Path | None,
             retry_delays: Sequence[float], dead: set[str], sleep: Callable[[float], None]) -> list[Delivery]:
    """Every alert URL; a URL that already failed every attempt this run gets one try, not the back-off."""
    out = []
    for url in settings.alert_urls:
        d = deliver(url, title, body, subject=subject, notify_type=notify_type, attach=attach,
                    retry_delays=() if url in dead else retry_delays, sleep=sleep)
        if not d.ok:
            dead.add(url)
        out.append(d)
    return out


def rejection_title(rej: Rejection) -> str:
    if rej.district_code and rej.period:
        return f"[OCOP] Báo cáo OCOP của {rej.unit_name} kỳ {period_label(rej.period)} bị từ chối"
    if rej.district_code:
        return f"[OCOP] Báo cáo OCOP của {rej.unit_name} (tệp {rej.source_file}) bị từ chối"
    if rej.period:
        return f"[OCOP] Báo cáo OCOP kỳ {period_label(rej.period)} (tệp {rej.source_file}) bị từ chối"
    return f"[OCOP] Báo cáo OCOP (tệp {rej.source_file}) bị từ chối"


def rejection_body(rej: Rejection, feedback: Path | None, max_problems: int = MAX_PROBLEMS_IN_MESSAGE) -> str:
    lines = [
        f"Đơn vị: {rej.unit_name if rej.district_code else 'chưa xác định được'}",
        f"Kỳ báo cáo: {'tháng ' + period_label(rej.period) if rej.period else 'chưa xác định được'}",
        f"Tệp: {rej.source_file}",
        f"Thời điểm nhận: {format_vn_time(rej.received_at)}",
        f"Kết quả: BỊ TỪ CHỐI – {rej.errors} lỗi, {rej.warnings} cảnh báo.",
        "",
    ]
    shown = rej.problems[:max_problems]
    if shown:
        lines.append(f"Các vấn đề đầu tiên ({len(shown)}/{len(rej.problems)}):")
        for n, p in enumerate(shown, start=1):
            text = f"{n}. [{p.level_label}] {p.where()}: {p.message}"
            if p.value is not None:
                text += f" (giá trị đã nhập: “{p.value}”)"
            if p.fix:
                text += f" → Cách sửa: {p.fix}"
            lines.append(text)
        if len(rej.problems) > len(shown):
            lines.append(f"… và {len(rej.problems) - len(shown)} vấn đề khác, xem tệp phản hồi.")
        lines.append("")
    if feedback is not None:
        lines.append(f"Tệp phản hồi chi tiết (từng dòng, quy tắc và cách sửa): {feedback}")
    else:
        lines.append("Không tạo được tệp phản hồi chi tiết; bộ phận dữ liệu sẽ gửi lại sau.")
    lines += [
        "Vui lòng sửa các lỗi trong tệp gốc và gửi lại toàn bộ tệp báo cáo.",
        "Trong thời gian này, báo cáo được chấp nhận gần nhất của đơn vị vẫn được sử dụng.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The night's rejections
# --------------------------------------------------------------------------------------------


@dataclass
class AlertReport:
    feedback_files: list[Path] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)   # what could not be done (besides deliveries)
    markdown: str = ""

    @property
    def notifications_sent(self) -> int:
        return sum(d.ok for d in self.deliveries)

    @property
    def notifications_failed(self) -> int:
        return sum(not d.ok for d in self.deliveries)

    def as_dict(self) -> dict:
        return {
            "feedback_files": [str(p) for p in self.feedback_files],
            "notifications_sent": self.notifications_sent,
            "notifications_failed": self.notifications_failed,
            "failed_deliveries": [d.__dict__ for d in self.deliveries if not d.ok],
            "failures": list(self.failures),
        }


def _received_for(record: dict, received_at: dict | None) -> Any:
    if received_at:
        sid = _present(record.get("submission_id"))
        if sid in received_at:
            return received_at[sid]
    return record.get("received_at")


def send_rejection_alerts(settings: Settings, records: Iterable[dict], received_at: dict | None = None,
                          retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS, attach_feedback: bool = True,
                          sleep: Callable[[float], None] = time.sleep) -> AlertReport:
    """Feedback workbook + notification for every record with status 'rejected'. Never raises.

    `records` are the verdict records of the night (`validate_submissions`), `received_at` maps a
    submission id to when it was received (else the record's own `received_at`, if any). Each URL
    gets up to 1 + len(retry_delays) attempts. With `attach_feedback` the workbook is attached to
    the notification (e-mail, chat) so the officer gets it without access to the server.
    """
    logger = _logger()
    records = list(records or [])
    report = AlertReport()
    feedback: dict[str, Path] = {}
    dead: set[str] = set()
    rejected = [r for r in records if _present(r.get("status")) == "rejected"]
    # oldest first: if a district sent two bad files for one period, the newest one's workbook stays
    rejected.sort(key=lambda r: (_as_datetime(_received_for(r, received_at)) or dt.datetime.min).isoformat())
    for record in rejected:
        try:
            rej = Rejection.from_record(record, _received_for(record, received_at))
        except Exception as exc:
            report.failures.append(f"{record.get('submission_id')}: unreadable verdict record ({exc})")
            logger.error("alert: cannot read verdict record %s: %s", record.get("submission_id"), exc)
            continue
        path = None
        try:
            path = write_feedback_workbook(settings, rej)
            report.feedback_files.append(path)
            feedback[rej.submission_id] = path
        except Exception as exc:
            report.failures.append(f"{rej.source_file}: feedback workbook not written ({type(exc).__name__}: {exc})")
            logger.error("alert: feedback workbook for %s not written: %s", rej.source_file, exc)
        title, body = rejection_title(rej), rejection_body(rej, path)
        report.deliveries += _fan_out(settings, title, body, rej.submission_id or rej.source_file, "failure",
                                      path if attach_feedback else None, retry_delays, dead, sleep)
    if rejected and not settings.alert_urls:
        logger.warning("alert: %d rejected submission(s) but no alert URL configured (OCOP_ALERT_URLS); "
                       "feedback workbooks are in %s", len(rejected), settings.feedback_dir)
    report.markdown = night_table_markdown(records, feedback, received_at)
    return report


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def _md(value: Any) -> str:
    text = _present(value)
    if text is None:
        return "—"
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s+", " ", text))


def night_table_markdown(records: Iterable[dict], feedback: dict[str, Path] | None = None,
                         received_at: dict | None = None) -> str:
    """Per-district status of the night: every district (those without a new file say so), then
    submissions whose district could not be resolved."""
    records = list(records or [])
    feedback = feedback or {}
    lines = ["| district | period | file | status | errors | warnings | failed rules | feedback |",
             "|---|---|---|---|---|---|---|---|"]
    by_district: dict[str | None, list[dict]] = {}
    for r in records:
        code = _present(r.get("district_code"))
        by_district.setdefault(code if _district(code) else None, []).append(r)

    def line(name: str, r: dict) -> str:
        fb = feedback.get(_present(r.get("submission_id")) or "")
        status = _present(r.get("status")) or "?"
        return (f"| {_md(name)} | {_md(r.get('period'))} | {_md(Path(_present(r.get('source_file')) or '').name)} | "
                f"{'**rejected**' if status == 'rejected' else _md(status)} | {_int(r.get('errors'))} | "
                f"{_int(r.get('warnings'))} | {_md(r.get('failed_rules'))} | "
                f"{_md('/'.join(fb.parts[-2:])) if fb else '—'} |")

    def order(r: dict) -> str:
        return (_present(r.get("period")) or "") + str(_as_datetime(_received_for(r, received_at)) or "")

    for code, d in sorted(domain.districts().items()):
        rows = sorted(by_district.get(code, []), key=order)
        if not rows:
            lines.append(f"| {_md(d.full_name)} | — | — | no new file | — | — | — | — |")
        lines += [line(d.full_name, r) for r in rows]
    lines += [line("(unresolved)", r) for r in sorted(by_district.get(None, []), key=order)]
    rejected = sum(_present(r.get("status")) == "rejected" for r in records)
    return (f"## District submissions tonight: {len(records)} checked, {rejected} rejected\n\n" + "\n".join(lines))


# --------------------------------------------------------------------------------------------
# Late districts
# --------------------------------------------------------------------------------------------


def late_districts(settings: Settings, submissions: Iterable[tuple[Any, Any]], today: dt.date) -> list[str]:
    """District codes with no submission (accepted or rejected) for last month by day
    `settings.late_day` of this month. Before or on that day nobody is late."""
    if today.day <= settings.late_day:
        return []
    period = previous_period(today)
    reported = {_present(code) for code, p in submissions if _present(p) == period}
    return sorted(code for code in domain.districts() if code not in reported)


def _reminders_file(settings: Settings) -> Path:
    return settings.work_dir / "late_reminders.json"


def already_reminded(settings: Settings, period: str) -> set[str]:
    """Districts already sent a late reminder for this period: one reminder per district and period."""
    path = _reminders_file(settings)
    if not path.exists():
        return set()
    return set(json.loads(path.read_text(encoding="utf-8")).get(period, []))


def record_reminders(settings: Settings, codes: Iterable[str], period: str) -> None:
    path = _reminders_file(settings)
    sent = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    sent[period] = sorted(set(sent.get(period, [])) | set(codes))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(sent, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _deadline(today: dt.date, late_day: int) -> dt.date:
    last = (today.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    return today.replace(day=max(1, min(late_day, last.day)))


def late_message(settings: Settings, code: str, period: str, today: dt.date) -> tuple[str, str]:
    d = _district(code)
    name = d.full_name if d else f"Đơn vị mã {code}"
    deadline = _deadline(today, settings.late_day).strftime("%d/%m/%Y")
    title = f"[OCOP] {name} chưa gửi báo cáo OCOP kỳ {period_label(period)}"
    body = "\n".join([
        f"Đơn vị: {name}",
        f"Kỳ báo cáo: tháng {period_label(period)}",
        f"Hạn gửi: ngày {deadline}",
        f"Tình trạng: đến ngày {today.strftime('%d/%m/%Y')} chưa nhận được báo cáo OCOP kỳ "
        f"tháng {period_label(period)} của đơn vị.",
        "",
        "Vui lòng gửi bảng tính báo cáo sản phẩm OCOP và điểm giới thiệu, bán sản phẩm OCOP của kỳ này "
        "sớm nhất có thể. Trong thời gian chưa có báo cáo mới, số liệu của đơn vị vẫn lấy theo báo cáo "
        "được chấp nhận gần nhất.",
    ])
    return title, body


def send_late_alerts(settings: Settings, codes: Iterable[str], period: str, today: dt.date | None = None,
                     retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
                     sleep: Callable[[float], None] = time.sleep) -> AlertReport:
    """One Vietnamese 'late' warning per district code to every alert URL. Never raises."""
    from flows.config import today_in_vietnam

    today = today or today_in_vietnam()
    report = AlertReport()
    dead: set[str] = set()
    codes = [c for c in (_present(c) for c in codes) if c]
    for code in codes:
        title, body = late_message(settings, code, period, today)
        report.deliveries += _fan_out(settings, title, body, f"late:{code}:{period}", "warning", None,
                                      retry_delays, dead, sleep)
    if codes:
        names = ", ".join(_md(_district(c).full_name if _district(c) else c) for c in codes)
        report.markdown = f"## Late for {period} (deadline day {settings.late_day})\n\n{names}"
        if not settings.alert_urls:
            _logger().warning("late districts for %s: %s; no alert URL configured", period, ", ".join(codes))
    return report
