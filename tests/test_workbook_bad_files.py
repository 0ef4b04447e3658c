"""Bad district files: each one is a rejected submission with a clear reason, and reading it keeps
memory bounded. Every file is generated here (no binary blobs).

What the guards rest on, measured with python-calamine 0.9.1: `get_sheet_by_name` loads the whole
sheet before `total_height` can be asked (a 100,000-row sheet costs ~150 MB first), and it allocates
the used range densely, so one value typed at XFD2000 costs 1 GB and one at XFD1048576 aborts the
whole process (a Rust allocation failure, not an exception). So flows/workbook.py checks the zip
container first, streaming: declared and real sizes, CRCs, and each worksheet's used range.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import product_row, write_raw_xlsx, write_workbook, xml_row

from flows import workbook
from flows.workbook import read_submission

REPO = Path(__file__).resolve().parent.parent
NAME = "BC OCOP T12-2024 Ly Son"          # district and period still resolve from the name, for the alert
HEADER = ["STT", "Mã sản phẩm", "Tên sản phẩm", "Nhóm sản phẩm", "Hạng sao", "Điểm", "Ngày công nhận",
          "Tên chủ thể", "Loại hình chủ thể"]
MEMORY_BOUND_MB = 200                     # peak RSS growth allowed while reading one bad file
BOMB_MB = 300                             # what the compressed bomb's sheet expands to


def _good_workbook_bytes(tmp: Path) -> bytes:
    path = write_workbook(tmp / "good.xlsx", rows=[product_row(1, "QNg-536-001"), product_row(2, "QNg-536-002")])
    return path.read_bytes()


def _rows_of_products(n: int):
    yield xml_row(1, ["UBND HUYỆN LÝ SƠN"])
    yield xml_row(2, ["Kỳ báo cáo: tháng 12/2024"])
    yield xml_row(4, HEADER)
    for i in range(n):
        yield xml_row(5 + i, [i + 1, f"QNg-536-{i:06d}", "Tỏi Lý Sơn", "Thực phẩm", 3, 62.5, 45373,
                              "HTX Nông nghiệp An Vĩnh", "HTX"])


def _bomb_rows(megabytes: int):
    """A header, then the same row again and again: deflate shrinks it ~1000 times."""
    yield xml_row(1, HEADER)
    filler = '<row><c t="inlineStr"><is><t>' + "A" * 4000 + "</t></is></c></row>"
    for _ in range(megabytes * 1024 * 1024 // len(filler)):
        yield filler


def _lie_about_size(path: Path, part: str, declared: int) -> None:
    """Patch a zip so that `part` claims to expand to `declared` bytes (local and central headers)."""
    data = bytearray(path.read_bytes())
    name = part.encode()
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if bytes(data[pos + 46:pos + 46 + name_len]) == name:
            struct.pack_into("<I", data, pos + 24, declared)
            local = struct.unpack_from("<I", data, pos + 42)[0]
            struct.pack_into("<I", data, local + 22, declared)
        pos = data.find(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(data))


def _ole2(stream_names: list[str]) -> bytes:
    """A compound-file (OLE2) header and one directory sector naming the given streams: the shape of an
    encrypted .xlsx (EncryptionInfo + EncryptedPackage) or of a Word .doc, without their content."""
    header = bytearray(512)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHHH", header, 0x18, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<I", header, 0x2C, 1)           # one FAT sector
    struct.pack_into("<I", header, 0x30, 0)           # directory starts at sector 0
    struct.pack_into("<I", header, 0x38, 4096)
    struct.pack_into("<I", header, 0x3C, 0xFFFFFFFE)
    struct.pack_into("<I", header, 0x44, 0xFFFFFFFE)
    struct.pack_into("<I", header, 0x4C, 1)           # FAT in sector 1
    header[0x50:512] = b"\xff" * (512 - 0x50)
    directory = bytearray()
    for i, name in enumerate(["Root Entry"] + stream_names):
        entry = bytearray(128)
        encoded = name.encode("utf-16-le") + b"\x00\x00"
        entry[0:len(encoded)] = encoded
        struct.pack_into("<HB", entry, 64, len(encoded), 5 if i == 0 else 2)
        directory += entry
    directory += b"\x00" * (512 - len(directory) % 512)
    fat = bytearray(b"\xff" * 512)
    struct.pack_into("<II", fat, 0, 0xFFFFFFFE, 0xFFFFFFFD)
    return bytes(header + directory + fat)


def _encrypted(tmp: Path) -> bytes:
    msoffcrypto = pytest.importorskip("msoffcrypto", reason="msoffcrypto-tool (test extra) encrypts a real .xlsx")
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(_good_workbook_bytes(tmp))).encrypt("matkhau", out)
    assert msoffcrypto  # the real thing: Excel's agile encryption in an OLE2 container
    return out.getvalue()


def _make(kind: str, tmp: Path, path: Path) -> None:
    if kind == "not_a_workbook":
        path.write_text("STT;Mã sản phẩm;Tên sản phẩm\n1;QNg-536-001;Tỏi Lý Sơn\n", encoding="utf-8")
    elif kind == "pdf":
        path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")
    elif kind == "word_document":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("[Content_Types].xml", "<Types/>")
            zf.writestr("word/document.xml", "<document/>")
    elif kind == "truncated_zip":
        data = _good_workbook_bytes(tmp)
        path.write_bytes(data[: len(data) // 2])
    elif kind == "damaged_part":
        data = bytearray(_good_workbook_bytes(tmp))
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
            info = zf.getinfo("xl/worksheets/sheet1.xml")
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        for i in range(start + 20, start + min(info.compress_size, 400) - 20):
            data[i] ^= 0x5A
        path.write_bytes(bytes(data))
    elif kind == "password_protected":
        path.write_bytes(_encrypted(tmp))
    elif kind == "encrypted_ole2_stand_in":
        path.write_bytes(_ole2(["EncryptionInfo", "EncryptedPackage"]))
    elif kind == "word_97_document":
        path.write_bytes(_ole2(["WordDocument", "1Table"]))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "rows_100k":
        write_raw_xlsx(path, [("San pham OCOP", _rows_of_products(100_000))])
    elif kind == "compressed_bomb":
        write_raw_xlsx(path, [("San pham OCOP", _bomb_rows(BOMB_MB))], compresslevel=9)
    elif kind == "bomb_lying_about_size":
        write_raw_xlsx(path, [("San pham OCOP", _bomb_rows(BOMB_MB))], compresslevel=9)
        _lie_about_size(path, "xl/worksheets/sheet1.xml", 60_000)
    elif kind == "far_away_cell":   # one value typed at the very last cell of the sheet
        write_raw_xlsx(path, [("San pham OCOP", [*_rows_of_products(3), xml_row(1048576, ["x"], first_column=16384)])])
    elif kind == "wide_used_range":  # a value at XFD2000: calamine would allocate 2,000 x 16,384 cells (1 GB)
        write_raw_xlsx(path, [("San pham OCOP", [*_rows_of_products(3), xml_row(2000, ["x"], first_column=16384)])])
    else:
        raise AssertionError(kind)


# kind -> (words the Vietnamese reason must contain)
BAD_FILES = {
    "not_a_workbook": "không phải là bảng tính Excel",
    "pdf": "PDF",
    "word_document": "tài liệu Word",
    "truncated_zip": "bị hỏng",
    "damaged_part": "bị hỏng",
    "password_protected": "mật khẩu",
    "encrypted_ole2_stand_in": "mật khẩu",
    "word_97_document": "không phải là bảng tính Excel",
    "empty": "rỗng",
    "rows_100k": "hơn 20.000 dòng",
    "compressed_bomb": "giải nén quá lớn",
    "bomb_lying_about_size": "bị hỏng",
    "far_away_cell": "XFD1048576",
    "wide_used_range": "XFD2000",
}
HEAVY = ["rows_100k", "compressed_bomb", "bomb_lying_about_size", "far_away_cell", "wide_used_range"]


@pytest.fixture(scope="module")
def bad_inbox(tmp_path_factory) -> Path:
    inbox = tmp_path_factory.mktemp("bad") / "inbox"
    folder = inbox / "districts" / "2024-12"
    folder.mkdir(parents=True)
    work = tmp_path_factory.mktemp("work")
    for kind in BAD_FILES:
        try:
            _make(kind, work, folder / f"{NAME} - {kind}.xlsx")
        except pytest.skip.Exception:
            pass
    return inbox


def _file(inbox: Path, kind: str) -> Path:
    path = inbox / "districts" / "2024-12" / f"{NAME} - {kind}.xlsx"
    if not path.exists():
        pytest.skip(f"{kind}: not generated here")
    return path


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_bad_file_is_rejected_with_a_clear_reason(bad_inbox, kind):
    sub = read_submission(_file(bad_inbox, kind), bad_inbox)
    assert [e.rule for e in sub.errors] == ["unreadable_file"]
    error = sub.errors[0]
    assert BAD_FILES[kind] in error.message, error.message
    assert error.fix
    assert sub.products == [] and sub.sales_points == []
    assert (sub.district_code, sub.period) == ("536", "2024-12")  # for the alert to the right district


def test_the_bomb_is_small_on_disk_and_huge_inside(bad_inbox):
    path = _file(bad_inbox, "compressed_bomb")
    with zipfile.ZipFile(path) as zf:
        expanded = sum(i.file_size for i in zf.infolist())
    assert path.stat().st_size < 2_000_000 and expanded > BOMB_MB * 1_000_000


_MEASURE = r"""
import json, resource, sys, time
from pathlib import Path
from flows.workbook import read_submission

def status(field):  # kB, from the kernel's view of this process (Rust allocations included)
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

try:
    with open("/proc/self/clear_refs", "w") as fh:  # reset the high-water mark to the current RSS
        fh.write("5")
except OSError:
    pass
before = status("VmRSS")
start = time.perf_counter()
sub = read_submission(Path(sys.argv[1]), Path(sys.argv[2]))
seconds = time.perf_counter() - start
peak = status("VmHWM")
print(json.dumps({"rules": [e.rule for e in sub.errors], "messages": [e.message for e in sub.errors],
                  "rows": len(sub.products), "growth_mb": (peak - before) / 1024, "peak_mb": peak / 1024,
                  "seconds": seconds}))
"""


def measure(path: Path, inbox: Path) -> dict:
    """Read one file in a fresh process: its peak RSS growth while reading (VmHWM, which sees the Rust
    reader's memory too, unlike tracemalloc; not ru_maxrss, which Linux carries over from the parent
    across exec). A crash (the reader aborting) fails the test."""
    if not Path("/proc/self/status").exists():
        pytest.skip("peak memory is read from /proc (Linux)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(path), str(inbox)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", HEAVY)
def test_memory_stays_bounded(bad_inbox, kind):
    figures = measure(_file(bad_inbox, kind), bad_inbox)
    assert figures["rules"] == ["unreadable_file"], figures
    assert figures["growth_mb"] < MEMORY_BOUND_MB, figures
    assert figures["seconds"] < 30, figures


def test_the_largest_accepted_sheet_reads_in_bounded_memory(tmp_path):
    """Just under the row limit: read, not rejected, and still far from the bound."""
    inbox = tmp_path / "inbox"
    path = write_raw_xlsx(inbox / "districts" / f"{NAME}.xlsx",
                          [("San pham OCOP", _rows_of_products(workbook.MAX_SHEET_ROWS - 10))])
    figures = measure(path, inbox)
    assert figures["rows"] == workbook.MAX_SHEET_ROWS - 10 and figures["rules"] == [], figures
    assert figures["growth_mb"] < MEMORY_BOUND_MB, figures


def test_a_legacy_xls_renamed_xlsx_is_not_called_encrypted(tmp_path):
    """An OLE2 file that is a workbook but not encrypted goes to the reader, whatever its extension
    (here a stand-in with an empty 'Workbook' stream: the reader opens it and finds no products sheet)."""
    path = tmp_path / "inbox" / f"{NAME}.xlsx"
    path.parent.mkdir(parents=True)
    path.write_bytes(_ole2(["Workbook"]))
    sub = read_submission(path, tmp_path / "inbox")
    assert [e.rule for e in sub.errors] == ["products_sheet_missing"]
    assert "mật khẩu" not in sub.errors[0].message


def test_every_bad_file_is_a_rejected_submission_through_the_gate(bad_inbox, tmp_path):
    """Loaded raw with dlt like any submission, then rejected by the gate with the reader's reason."""
    from flows import districts, gate
    from flows.config import load_settings

    settings = load_settings(tmp_path / "inbox", tmp_path / "warehouse")
    shutil.copytree(bad_inbox / "districts", settings.districts_inbox)
    files = districts.find_new_files(settings)
    subs = districts.parse_files(settings, files, dt.datetime.now(dt.timezone.utc))
    districts.load_submissions(settings, subs)
    pending = districts.pending_checks(settings, dt.date(2024, 12, 20))
    verdicts = gate.validate_submissions(settings, pending.submissions, pending.products, pending.sales_points,
                                         pending.claimed, pending.live_codes, dt.date(2024, 12, 20))
    names = dict(zip(pending.submissions["submission_id"], pending.submissions["file_name"]))
    assert len(verdicts) == len(files) >= len(BAD_FILES) - 1  # (msoffcrypto may be missing)
    for sid, verdict in verdicts.items():
        kind = names[sid].removeprefix(f"{NAME} - ").removesuffix(".xlsx")
        assert verdict.status == "rejected", kind
        assert verdict.failed_rules == ["unreadable_file"], (kind, verdict.failed_rules)
        assert BAD_FILES[kind] in verdict.errors[0].message
