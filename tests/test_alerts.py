"""District alerts: feedback workbooks and Apprise notifications, against a real local HTTP server."""
from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import socket
from pathlib import Path

import openpyxl
import pytest

from flows import alerts
from flows.config import Settings
from flows.workbook import Issue
from helpers import AlertReceiver as _Receiver

NO_WAIT = (0, 0)  # 3 attempts, no back-off: keeps the tests fast


# ---------------------------------------------------------------------------- fixtures

def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _settings(tmp_path: Path, urls=()) -> Settings:
    return Settings(inbox=tmp_path / "inbox", warehouse=tmp_path / "warehouse", alert_urls=tuple(urls))


def _record(issues: list[Issue], *, district="524", period="2024-12", source="BC OCOP T12-2024 Binh Son.xlsx",
            sid="abc123", status="rejected") -> dict:
    errors = [i for i in issues if i.level == "error"]
    return {
        "submission_id": sid, "checked_at": dt.datetime(2025, 1, 2, 19, 5, tzinfo=dt.timezone.utc),
        "status": status, "errors": len(errors), "warnings": len(issues) - len(errors),
        "failed_rules": ",".join(sorted({i.rule for i in errors})),
        "issues": json.dumps([i.as_dict() for i in issues], ensure_ascii=False),
        "district_code": district, "period": period, "source_file": source,
    }


ISSUES = [
    Issue("warning", "product_group_missing", "Thiếu nhóm sản phẩm.", sheet="San pham OCOP", row=9,
          column="nhom_san_pham", value=None, fix="Ghi nhóm sản phẩm theo Quyết định 148/QĐ-TTg."),
    Issue("error", "score_out_of_star_band", "Điểm 45 không khớp hạng 3 sao (50–69 điểm).", sheet="San pham OCOP",
          row=14, column="diem", value="45", fix="Kiểm tra lại điểm hoặc hạng sao theo quyết định công nhận."),
    Issue("error", "date_unreadable", "Không đọc được ngày công nhận.", sheet="San pham OCOP", row=8,
          column="ngay_cong_nhan", value="31/02/2024", fix="Ghi ngày theo dạng ngày/tháng/năm, ví dụ 22/03/2024."),
    Issue("error", "stars_unreadable", "Hạng sao không hợp lệ.", sheet="San pham OCOP", row=11,
          column="hang_sao", value="=HYPERLINK(\"http://evil.example\",\"bấm\")", fix="Ghi 3, 4 hoặc 5."),
]
RECEIVED = {"abc123": dt.datetime(2025, 1, 2, 2, 0, tzinfo=dt.timezone.utc)}


def _rows(path: Path) -> tuple[list[list], int]:
    """The problem lines of a feedback workbook (below the table header) and the header's row number."""
    ws = openpyxl.load_workbook(path).active
    header = next(r for r in ws.iter_rows(min_row=1) if r[0].value == "STT")[0].row
    lines = [[c.value for c in r] for r in ws.iter_rows(min_row=header + 1, max_col=9)]
    return [line for line in lines if any(v is not None for v in line)], header


# ---------------------------------------------------------------------------- neutralise

@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2", "@SUM(A1)", "\t=1+1", "\r=1",
                                  " =1+1", "\uff1d1+1"])
def test_neutralise_prefixes_formula_like_text(text):
    assert alerts.neutralise(text) == "'" + text


@pytest.mark.parametrize("value", ["Tỏi Lý Sơn", "45", "", None, -2, 3.5])
def test_neutralise_leaves_ordinary_values(value):
    assert alerts.neutralise(value) == value


def test_neutralise_strips_control_characters():
    assert alerts.neutralise("a\x00b\x07c") == "abc"


# ---------------------------------------------------------------------------- feedback workbook

def test_feedback_workbook_lines(tmp_path):
    settings = _settings(tmp_path)
    path = alerts.write_feedback_workbook(settings, _record(ISSUES), RECEIVED["abc123"])
    assert path == settings.feedback_dir / "2024-12" / "binh-son.xlsx"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # atomic: no leftovers

    lines, header_row = _rows(path)
    ws = openpyxl.load_workbook(path).active
    assert [c.value for c in ws[header_row]][:9] == ["STT", "Mức độ", "Trang", "Dòng", "Cột", "Giá trị đã nhập",
                                                     "Quy tắc", "Mô tả lỗi", "Cách sửa"]
    assert ws[header_row][0].font.b
    assert ws.freeze_panes == f"A{header_row + 1}"
    assert ws.column_dimensions["H"].width > ws.column_dimensions["A"].width
    # errors first, by row; then the warning
    assert [(l[0], l[1], l[2], l[3], l[4], l[6]) for l in lines] == [
        (1, "Lỗi", "San pham OCOP", 8, "Ngày công nhận", "date_unreadable"),
        (2, "Lỗi", "San pham OCOP", 11, "Hạng sao", "stars_unreadable"),
        (3, "Lỗi", "San pham OCOP", 14, "Điểm", "score_out_of_star_band"),
        (4, "Cảnh báo", "San pham OCOP", 9, "Nhóm sản phẩm", "product_group_missing"),
    ]
    assert lines[0][5] == "31/02/2024" and lines[0][8].startswith("Ghi ngày theo dạng")
    assert lines[2][5] == "45" and lines[2][7].startswith("Điểm 45")
    assert lines[3][5] is None and "148/QĐ-TTg" in lines[3][8]

    header_text = " ".join(str(c.value) for r in ws.iter_rows(max_row=header_row - 1) for c in r if c.value)
    for expected in ("Huyện Bình Sơn", "tháng 12/2024", "BC OCOP T12-2024 Binh Son.xlsx",
                     "02/01/2025 09:00", "Báo cáo bị từ chối", "Số lỗi:", "Số cảnh báo:"):
        assert expected in header_text
    counts = {ws.cell(r, 1).value: ws.cell(r, 3).value for r in range(1, header_row)}
    assert counts["Số lỗi:"] == 3 and counts["Số cảnh báo:"] == 1


def test_feedback_workbook_formulas_come_back_as_inert_text(tmp_path):
    nasty = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1", "-2", "@SUM(A1)"]
    issues = [Issue("error", "r" + str(n), "=1+1 trong thông điệp", sheet="=Sheet", row=10 + n, column="diem",
                    value=v, fix="+ sửa lại") for n, v in enumerate(nasty)]
    path = alerts.write_feedback_workbook(_settings(tmp_path), _record(issues, source="-BC.xlsx"))

    wb = openpyxl.load_workbook(path)
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value is not None]
    assert not [c.coordinate for c in cells if c.data_type == "f"], "no formula cells"
    assert all(not (isinstance(c.value, str) and c.value.startswith(("=", "+", "-", "@"))) for c in cells)
    lines, _ = _rows(path)
    assert [l[5] for l in lines] == ["'" + v for v in nasty]
    value_cells = [c for c in cells if isinstance(c.value, str) and c.value.lstrip("'") in nasty]
    assert len(value_cells) == 4 and all(c.data_type == "s" for c in value_cells)
    assert all(l[2] == "'=Sheet" and l[7] == "'=1+1 trong thông điệp" and l[8] == "'+ sửa lại" for l in lines)
    # the raw XML holds no formula element either
    import zipfile
    with zipfile.ZipFile(path) as z:
        assert "<f>" not in z.read("xl/worksheets/sheet1.xml").decode()


def test_feedback_path_when_district_or_period_unresolved(tmp_path):
    settings = _settings(tmp_path)
    issue = [Issue("error", "district_unresolved", "Không xác định được đơn vị gửi báo cáo.")]
    p1 = alerts.write_feedback_workbook(settings, _record(issue, district=None, source="../Báo cáo tháng 12.xlsx"))
    assert p1 == settings.feedback_dir / "chua-xac-dinh" / "bao-cao-thang-12.xlsx"
    p2 = alerts.write_feedback_workbook(settings, _record(issue, district="524", period=float("nan"),
                                                          source="OCOP Binh Son.xlsx"))
    assert p2 == settings.feedback_dir / "chua-xac-dinh" / "ocop-binh-son.xlsx"
    lines, _ = _rows(p1)
    assert lines[0][:4] == [1, "Lỗi", None, None] and lines[0][6] == "district_unresolved"


# ---------------------------------------------------------------------------- notifications

def test_rejection_alert_delivered_as_json(tmp_path):
    with _Receiver() as server:
        settings = _settings(tmp_path, [server.url()])
        accepted = _record([], district="536", sid="ok1", status="accepted", source="LySon.xlsx")
        report = alerts.send_rejection_alerts(settings, [_record(ISSUES), accepted], RECEIVED, retry_delays=NO_WAIT)

    assert report.notifications_sent == 1 and report.notifications_failed == 0
    assert report.feedback_files == [settings.feedback_dir / "2024-12" / "binh-son.xlsx"]
    assert server.paths == ["/ocop-alerts"]
    post = server.posts[0]
    assert post["title"] == "[OCOP] Báo cáo OCOP của Huyện Bình Sơn kỳ 12/2024 bị từ chối"
    body = post["message"]
    for expected in ("Huyện Bình Sơn", "tháng 12/2024", "BC OCOP T12-2024 Binh Son.xlsx", "3 lỗi", "1 cảnh báo",
                     "dòng 8", "cột Ngày công nhận", "Không đọc được ngày công nhận",
                     str(settings.feedback_dir / "2024-12" / "binh-son.xlsx")):
        assert expected in body, expected
    assert body.index("dòng 8") < body.index("dòng 11") < body.index("dòng 14")
    # the workbook travels with the message, for officers without access to the server
    attached = post["attachments"][0]
    assert attached["filename"] == "binh-son.xlsx"
    assert openpyxl.load_workbook(io.BytesIO(base64.b64decode(attached["base64"]))).active["A1"].value

    # the night table: every district, the rejection with its feedback file
    md = report.markdown
    assert "| Huyện Bình Sơn | 2024-12 | BC OCOP T12-2024 Binh Son.xlsx | **rejected** | 3 | 1 |" in md
    assert "| 2024-12/binh-son.xlsx |" in md
    assert "| Huyện Lý Sơn |" in md and "| accepted | 0 | 0 |" in md
    assert md.count("no new file") == 11


def test_delivery_retried_after_server_errors(tmp_path, caplog):
    with _Receiver(statuses=[500, 500]) as server:
        settings = _settings(tmp_path, [server.url()])
        waits = []
        with caplog.at_level(logging.WARNING, logger="flows.alerts"):
            report = alerts.send_rejection_alerts(settings, [_record(ISSUES)], RECEIVED, retry_delays=(0.01, 0.04),
                                                  sleep=waits.append)
    assert server.hits == 3 and len(server.posts) == 1
    assert waits == [0.01, 0.04]  # exponential back-off between the attempts
    assert report.notifications_sent == 1 and report.deliveries[0].attempts == 3
    assert len([r for r in caplog.records if "failed (attempt" in r.message]) == 2


def test_retry_delays_really_wait(tmp_path):
    import time

    with _Receiver(statuses=[500]) as server:
        start = time.monotonic()
        d = alerts.deliver(server.url(), "t", "b", retry_delays=(0.2, 0.8))
        assert d.ok and d.attempts == 2 and 0.2 <= time.monotonic() - start < 0.8


def test_unreachable_url_is_logged_not_raised(tmp_path, caplog):
    settings = _settings(tmp_path, [f"json://127.0.0.1:{_closed_port()}/x", "not a url at all"])
    with caplog.at_level(logging.WARNING, logger="flows.alerts"):
        report = alerts.send_rejection_alerts(settings, [_record(ISSUES), _record(ISSUES[:1], sid="w", district="536")],
                                              RECEIVED, retry_delays=NO_WAIT)
    assert report.notifications_sent == 0 and report.notifications_failed == 4
    assert len(report.feedback_files) == 2 and all(p.exists() for p in report.feedback_files)
    first = report.deliveries[0]
    assert first.attempts == 3 and first.error
    assert report.deliveries[1].attempts == 1 and report.deliveries[1].error == "invalid Apprise URL"
    assert report.deliveries[2].attempts == 1  # a URL already dead this run is not retried again
    assert any("NOT delivered" in r.message for r in caplog.records)
    assert report.as_dict()["notifications_failed"] == 4


def test_no_urls_still_writes_feedback(tmp_path):
    report = alerts.send_rejection_alerts(_settings(tmp_path), [_record(ISSUES)], RECEIVED)
    assert report.deliveries == [] and len(report.feedback_files) == 1


# ---------------------------------------------------------------------------- late districts

@pytest.mark.parametrize("today, expected_late", [
    (dt.date(2025, 1, 4), False),
    (dt.date(2025, 1, 5), False),   # the deadline day itself: still on time
    (dt.date(2025, 1, 6), True),
    (dt.date(2025, 1, 31), True),
])
def test_late_districts_boundary(tmp_path, today, expected_late):
    settings = _settings(tmp_path)
    received = [("524", "2024-12"), ("536", "2024-12"), ("522", "2024-11"), ("525", "2025-01")]
    late = alerts.late_districts(settings, received, today)
    if expected_late:
        assert "524" not in late and "536" not in late
        assert {"522", "525", "534"} <= set(late) and len(late) == 11
    else:
        assert late == []


def test_late_districts_period_across_year_and_late_day(tmp_path):
    settings = Settings(inbox=tmp_path, warehouse=tmp_path, late_day=10)
    assert alerts.late_districts(settings, [], dt.date(2025, 3, 10)) == []
    late = alerts.late_districts(settings, [(524, "2025-02")], dt.date(2025, 3, 11))
    assert "524" not in late and len(late) == 12
    assert alerts.previous_period(dt.date(2025, 1, 6)) == "2024-12"


def test_late_alert_sent_in_vietnamese(tmp_path):
    with _Receiver() as server:
        settings = _settings(tmp_path, [server.url("/late")])
        report = alerts.send_late_alerts(settings, ["525", "536"], "2024-12", today=dt.date(2025, 1, 6),
                                         retry_delays=NO_WAIT)
    assert report.notifications_sent == 2 and server.paths == ["/late", "/late"]
    titles = [p["title"] for p in server.posts]
    assert titles == ["[OCOP] Huyện Trà Bồng chưa gửi báo cáo OCOP kỳ 12/2024",
                      "[OCOP] Huyện Lý Sơn chưa gửi báo cáo OCOP kỳ 12/2024"]
    assert "Hạn gửi: ngày 05/01/2025" in server.posts[0]["message"]
    assert server.posts[0]["type"] == "warning"


def test_late_reminder_is_sent_once_per_district_and_period(tmp_path):
    settings = _settings(tmp_path)
    assert alerts.already_reminded(settings, "2024-11") == set()
    alerts.record_reminders(settings, ["524", "536"], "2024-11")
    alerts.record_reminders(settings, ["522"], "2024-11")
    assert alerts.already_reminded(settings, "2024-11") == {"522", "524", "536"}
    assert alerts.already_reminded(settings, "2024-12") == set()
