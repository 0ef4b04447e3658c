"""E-commerce feeds of the provincial platform: catalogue listings and order lines.

Pure dlt sources (no pipeline wiring; flows/ecommerce.py runs them):

- `ecommerce_files(files, ...)`: feed files dropped under `<inbox>/ecommerce/` (JSON Lines or
  CSV, gzip or not; `listings*` = catalogue, `orders*` = order lines).
- `ecommerce_api(base_url, token, ...)`: the platform's paged HTTP API (dlt RESTClient, cursor
  paging, Bearer token), read incrementally on `updated_at`.

Both are dlt source "ecommerce" (one dlt schema) and write the raw tables of docs/raw-contract.md:

- `ecommerce_listings`    merge (delete-insert) on listing_id, `updated_at` dedup_sort desc
- `ecommerce_order_lines` merge (delete-insert) on order_id + line_no, `updated_at` dedup_sort desc
- `ecommerce_quarantine`  append: bad records (source, line_number, raw_text, reason, ...);
  severity 'error' = not loaded, 'warning' (unknown SKU) = loaded and flagged
- `ecommerce_files`       append: one row per loaded feed file, by content hash (files only)

Each source has one resource that reads listings first, then order lines (so order lines can be
checked against the catalogue of the same run), and dispatches its items to the tables above
with dlt table variants. Everything travels as Arrow tables, in batches of `batch_size` rows,
but the feed files' order lines: they are written, batch after batch, straight into one parquet
loader file that dlt imports as it is (`_LoaderFile`; the files' resource's own table).

JSON Lines are parsed a batch at a time, ahead of their validation (`_Parsers`), by the first of
three readers that can take it: DuckDB's JSON reader (fastest; only where its result is provably
pyarrow's, see `_DuckJsonReader`), pyarrow's JSON reader, then Python's `json` line by line,
which names each bad line's reason.

Newest wins: within one load dlt keeps the newest `updated_at` per key (dedup_sort); across
loads the optional `is_newer(table, keys)` callback (given by the wiring, which can see the
destination) drops rows that are not newer than what is stored, so a late or replayed older
version never overwrites a newer one.

The API cursor (last `updated_at` seen plus the identities of the records at exactly that
instant) is kept in dlt resource state, committed with the load package. dlt's
`dlt.sources.incremental` is not used here because it filters every item a resource yields,
quarantine batches included.
"""
from __future__ import annotations

import csv
import datetime as dt
import functools
import gzip
import hashlib
import io
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo

import dlt
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import requests
from dlt.common.typing import TSecretStrValue
from dlt.sources.helpers.requests.retry import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

try:  # Intel ISA-L's inflate (python-isal): the same gzip streams, about twice as fast as zlib's
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - a pinned dependency; zlib reads the same files
    _inflate = zlib

from flows.files import file_sha256

log = logging.getLogger(__name__)

SCHEMA_NAME = "ecommerce"
LISTINGS_TABLE = "ecommerce_listings"
ORDER_LINES_TABLE = "ecommerce_order_lines"
QUARANTINE_TABLE = "ecommerce_quarantine"
FILES_TABLE = "ecommerce_files"
FILES_RESOURCE = "ecommerce_feed_files"
API_RESOURCE = "ecommerce_feed_api"
API_SOURCE = "api"  # value of the `source` column for rows read from the API

DEFAULT_BATCH_SIZE = 100_000
LOCAL_TZ = "Asia/Ho_Chi_Minh"
_LOCAL_ZONE = ZoneInfo(LOCAL_TZ)
TS_TYPE = pa.timestamp("us", tz="UTC")

# quarantine reasons
MALFORMED_JSON = "malformed_json"
MALFORMED_CSV = "malformed_csv"
BAD_ENCODING = "bad_encoding"
MISSING_KEY = "missing_key"
MISSING_FIELD = "missing_field"
INVALID_VALUE = "invalid_value"
NEGATIVE_QTY = "negative_qty"
UNKNOWN_STATUS = "unknown_status"
UNKNOWN_SKU = "unknown_sku"  # warning: the line is loaded (and flagged downstream)
UNREADABLE_FILE = "unreadable_file"
SEVERITY_ERROR = "error"
SEVERITY_WARNING = "warning"

# is_newer(table_name, keys) -> boolean mask: which rows are newer than the stored version.
# `keys` holds the table's key columns and `updated_at`.
NewerCheck = Callable[[str, pa.Table], pa.Array]


# --------------------------------------------------------------------------------------------
# Record specs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeedSpec:
    kind: str  # 'listings' | 'order_lines'
    table: str
    fields: tuple[str, ...]  # contract order
    key: tuple[str, ...]  # merge key; rows missing one are quarantined (missing_key)
    ints: tuple[str, ...]
    timestamps: tuple[str, ...]
    required: tuple[str, ...]  # besides key and status: missing -> missing_field
    statuses: tuple[str, ...]
    non_negative: tuple[str, ...]  # negative -> invalid_value (qty has its own reason)
    defaults: tuple[tuple[str, int], ...] = ()

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(f for f in self.fields if f not in self.ints and f not in self.timestamps)

    @property
    def merge_key(self) -> tuple[str, ...]:
        return tuple(k for k in self.key if k != "updated_at")

    def json_schema(self) -> pa.Schema:
        """What the fast JSON path reads: text and timestamps as strings, integers as int64."""
        return pa.schema([(f, pa.int64() if f in self.ints else pa.string()) for f in self.fields])

    def arrow_schema(self) -> pa.Schema:
        """The loaded table (contract columns + lineage)."""
        out = []
        for f in self.fields:
            typ = pa.int64() if f in self.ints else TS_TYPE if f in self.timestamps else pa.string()
            out.append(pa.field(f, typ, nullable=f not in self.merge_key))
        out += [
            pa.field("source", pa.string()),
            pa.field("source_line", pa.int64()),
            pa.field("loaded_at", TS_TYPE),
        ]
        return pa.schema(out)


LISTINGS = FeedSpec(
    kind="listings",
    table=LISTINGS_TABLE,
    fields=("listing_id", "sku", "ma_san_pham", "title", "price_vnd", "status", "listed_at", "updated_at"),
    key=("listing_id", "updated_at"),
    ints=("price_vnd",),
    timestamps=("listed_at", "updated_at"),
    required=("sku", "listed_at"),
    statuses=("active", "delisted", "draft"),
    non_negative=("price_vnd",),
)

ORDER_LINES = FeedSpec(
    kind="order_lines",
    table=ORDER_LINES_TABLE,
    fields=(
        "order_id", "line_no", "ordered_at", "sku", "qty", "unit_price_vnd", "discount_vnd",
        "channel", "status", "buyer_province", "updated_at",
    ),
    key=("order_id", "line_no", "updated_at"),
    ints=("line_no", "qty", "unit_price_vnd", "discount_vnd"),
    timestamps=("ordered_at", "updated_at"),
    required=("ordered_at", "sku", "qty", "unit_price_vnd"),
    statuses=("completed", "cancelled", "returned"),
    non_negative=("unit_price_vnd", "discount_vnd"),
    defaults=(("discount_vnd", 0),),
)

SPECS = {LISTINGS.kind: LISTINGS, ORDER_LINES.kind: ORDER_LINES}

QUARANTINE_SCHEMA = pa.schema([
    pa.field("source", pa.string()),
    pa.field("kind", pa.string()),
    pa.field("line_number", pa.int64()),
    pa.field("raw_text", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("severity", pa.string()),
    pa.field("detail", pa.string()),
    pa.field("record_key", pa.string()),
    pa.field("content_hash", pa.string()),
    pa.field("loaded_at", TS_TYPE),
])

FILES_SCHEMA = pa.schema([
    pa.field("content_hash", pa.string(), nullable=False),
    pa.field("source_file", pa.string()),
    pa.field("kind", pa.string()),
    pa.field("format", pa.string()),
    pa.field("compression", pa.string()),
    pa.field("file_size", pa.int64()),
    pa.field("file_modified_at", TS_TYPE),
    pa.field("lines_read", pa.int64()),
    pa.field("rows_valid", pa.int64()),
    pa.field("rows_loaded", pa.int64()),
    pa.field("rows_stale", pa.int64()),
    pa.field("rows_rejected", pa.int64()),
    pa.field("rows_warned", pa.int64()),
    pa.field("status", pa.string()),  # loaded | partial (read error midway)
    pa.field("error", pa.string()),
    pa.field("loaded_at", TS_TYPE),
])


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
class FeedApiError(RuntimeError):
    """The platform API could not be read; the API source stops, the rest of the night goes on.

    Messages are Vietnamese / English and never contain the token."""

    status: int | None = None
    endpoint: str = ""


class FeedApiAuthError(FeedApiError):
    """401/403 from the platform: the token is missing, wrong or expired."""

    def __init__(self, status: int | None, endpoint: str):
        self.status, self.endpoint = status, endpoint
        if status is None:  # no token configured: the request is not even sent
            super().__init__(
                f"Chưa cấu hình token API cho nền tảng thương mại điện tử ({endpoint}): đặt "
                "sources.ecommerce_api.token trong .dlt/secrets.toml hoặc biến OCOP_FEED_API_TOKEN. "
                "Nguồn API dừng trong đêm nay, các nguồn khác vẫn chạy. / "
                f"No API token is configured for the e-commerce platform ({endpoint}): set "
                "sources.ecommerce_api.token in .dlt/secrets.toml or OCOP_FEED_API_TOKEN. "
                "The API source stops for tonight; the other sources go on."
            )
            return
        super().__init__(
            f"Nền tảng thương mại điện tử từ chối xác thực (HTTP {status}) khi đọc {endpoint}: "
            "kiểm tra token API (sources.ecommerce_api.token trong .dlt/secrets.toml hoặc biến "
            "OCOP_FEED_API_TOKEN). Nguồn API dừng trong đêm nay, các nguồn khác vẫn chạy. / "
            f"The e-commerce platform rejected the credentials (HTTP {status}) reading {endpoint}: "
            "check the API token (sources.ecommerce_api.token in .dlt/secrets.toml or "
            "OCOP_FEED_API_TOKEN). The API source stops for tonight; the other sources go on."
        )


class FeedApiUnavailableError(FeedApiError):
    """5xx / timeouts / connection errors left after the retries, or an unusable response."""

    def __init__(self, status: int | None, endpoint: str, what: str):
        self.status, self.endpoint = status, endpoint
        super().__init__(
            f"Không đọc được API của nền tảng thương mại điện tử tại {endpoint} ({what}) sau các "
            "lần thử lại. Nguồn API dừng trong đêm nay, các nguồn khác vẫn chạy. / "
            f"Could not read the e-commerce platform API at {endpoint} ({what}) after retrying. "
            "The API source stops for tonight; the other sources go on."
        )


# --------------------------------------------------------------------------------------------
# Feed files
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeedFile:
    path: Path
    name: str  # path relative to the ecommerce inbox (posix); the `source` column
    kind: str  # 'listings' | 'order_lines'
    fmt: str  # 'jsonl' | 'csv'
    compression: str | None  # 'gzip' | None
    content_hash: str  # sha256 hex of the file bytes
    size: int
    modified_at: dt.datetime


_JSON_EXT = (".jsonl", ".ndjson", ".json")
_GZIP_MAGIC = b"\x1f\x8b"


def classify_feed_file(path: Path) -> tuple[str, str, str | None] | None:
    """(kind, format, compression) from the file name and magic bytes, None when not a feed file."""
    name = path.name.lower()
    if name.startswith((".", "~")) or name.endswith((".tmp", ".part", ".crdownload")):
        return None
    stem = name[:-3] if name.endswith(".gz") else name
    if stem.startswith("listings"):
        kind = LISTINGS.kind
    elif stem.startswith("orders"):
        kind = ORDER_LINES.kind
    else:
        return None
    if stem.endswith(_JSON_EXT):
        fmt = "jsonl"
    elif stem.endswith(".csv"):
        fmt = "csv"
    else:
        return None
    with open(path, "rb") as fh:
        compression = "gzip" if fh.read(2) == _GZIP_MAGIC else None
    return kind, fmt, compression


def scan_feed_files(root: Path) -> list[FeedFile]:
    """Feed files under `root` (recursively), listings first, then by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        info = classify_feed_file(path)
        if info is None:
            continue
        kind, fmt, compression = info
        stat = path.stat()
        out.append(FeedFile(
            path=path,
            name=path.relative_to(root).as_posix(),
            kind=kind,
            fmt=fmt,
            compression=compression,
            content_hash=file_sha256(path),
            size=stat.st_size,
            modified_at=dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc),
        ))
    out.sort(key=lambda f: (f.kind != LISTINGS.kind, f.name))
    return out


# --------------------------------------------------------------------------------------------
# Parsing: a chunk of records -> columns (+ parse-stage rejects)
# --------------------------------------------------------------------------------------------
@dataclass
class _Reject:
    line_number: int | None
    raw_text: str
    reason: str
    detail: str
    record_key: str | None = None
    severity: str = SEVERITY_ERROR


@dataclass
class _Chunk:
    columns: dict[str, pa.Array]  # by field; ints may still be strings (CSV), timestamps strings
    line_numbers: pa.Array  # int64, null for API records
    raw_at: Callable[[int], str]  # raw text of row i
    rejects: list[_Reject]  # rows that never made it into `columns`
    invalid: dict[int, str]  # row -> detail: a value that could not be read
    lines_read: int = 0


_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def _py_int(value: Any) -> int | None:
    """Python value -> int; None when absent; ValueError when not an integer (or beyond int64)."""
    n = _py_int_any(value)
    if n is not None and not _INT64_MIN <= n <= _INT64_MAX:
        raise ValueError(value)
    return n


def _py_int_any(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError(value)
    if isinstance(value, str):
        s = value.strip().replace("_", "x")  # int() would accept '1_000'; the platform never sends it
        if not s:
            return None
        try:
            return int(s)
        except ValueError:
            f = float(s)  # '125000.0' (raises on junk)
            if f.is_integer():
                return int(f)
            raise
    raise ValueError(value)


def _py_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        if not value.isascii() and not _utf8(value):  # a lone surrogate ("\ud800")
            raise ValueError(value)
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    raise ValueError(value)


def _py_ts(value: Any) -> dt.datetime | None:
    """ISO 8601 text -> aware UTC datetime; naive times are Vietnam local time."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(value)
    s = value.strip()
    if not s:
        return None
    d = dt.datetime.fromisoformat(s)
    if d.tzinfo is None:
        d = d.replace(tzinfo=_LOCAL_ZONE)
    return d.astimezone(dt.timezone.utc)


def _columns_from_records(spec: FeedSpec, records: Sequence[dict]) -> tuple[dict[str, pa.Array], dict[int, str]]:
    """Records (parsed JSON objects) -> typed columns; unreadable values are nulled and reported."""
    invalid: dict[int, str] = {}
    cols: dict[str, pa.Array] = {}
    for f in spec.fields:
        conv = _py_int if f in spec.ints else _py_text
        values = []
        for i, rec in enumerate(records):
            v = rec.get(f)
            try:
                values.append(conv(v))
            except (ValueError, TypeError, OverflowError):
                values.append(None)
                text = json.dumps(v, ensure_ascii=False)
                if not text.isascii() and not _utf8(text):
                    text = json.dumps(v)  # as escapes
                invalid.setdefault(i, f"{f} = {text[:80]}")
        cols[f] = pa.array(values, pa.int64() if f in spec.ints else pa.string())
    return cols, invalid


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_READ_BLOCK = 1 << 23  # 8 MiB of text per read
_GZ_BLOCK = 1 << 20  # 1 MiB of compressed bytes per read
_JSON_BLOCK = 1 << 21  # pyarrow's JSON reader parses 2 MiB blocks in parallel


def _gunzip_blocks(raw: BinaryIO) -> Iterator[bytes]:
    """Decompressed blocks of a gzip file (multi-member too). A truncated file yields all it
    can and then raises EOFError; corrupt data raises zlib.error."""
    try:
        yield from _inflate_blocks(raw)
    except _inflate.error as e:  # ISA-L's own error class: the callers know zlib's
        if isinstance(e, zlib.error):
            raise
        raise zlib.error(str(e)) from e


def _inflate_blocks(raw: BinaryIO) -> Iterator[bytes]:
    d = _inflate.decompressobj(wbits=31)
    in_member = False
    while True:
        data = raw.read(_GZ_BLOCK)
        if not data:
            break
        while data:
            in_member = True
            out = d.decompress(data)
            if out:
                yield out
            if d.eof:
                data, d, in_member = d.unused_data, _inflate.decompressobj(wbits=31), False
                if not data.strip(b"\x00"):
                    data = b""
            else:
                data = b""
    if in_member:
        tail = d.flush()
        if tail:
            yield tail
        raise EOFError("compressed file ended before the end-of-stream marker was reached")


def _blocks(f: "FeedFile", raw: BinaryIO) -> Iterator[bytes]:
    if f.compression == "gzip":
        return _gunzip_blocks(raw)
    return iter(lambda: raw.read(_READ_BLOCK), b"")


def _all_blocks(files: Sequence["FeedFile"]) -> Iterator[tuple["FeedFile", Any]]:
    """(file, (block, positions of its newlines)) for the (decompressed) bytes of each JSON Lines
    file in turn, then (file, _FILE_DONE), or (file, exception) when a file turns out truncated or
    corrupt midway. The newlines are found here, in the reading thread, which has time to spare."""
    for f in files:
        if f.fmt != "jsonl":
            continue
        with open(f.path, "rb") as raw:
            try:
                for block in _blocks(f, raw):
                    yield f, (block, _newlines(block))
            except (OSError, EOFError, zlib.error) as e:
                yield f, e
                continue
        yield f, _FILE_DONE


def _blocks_of(f: "FeedFile", shared: Iterator[tuple["FeedFile", Any]]) -> Iterator[tuple[bytes, np.ndarray]]:
    """The blocks of `f` from the shared stream of `_all_blocks` (its read error raised here)."""
    while True:
        item_file, block = next(shared)
        if item_file is not f:  # pragma: no cover - both go through the same files in order
            raise RuntimeError(f"expected a block of {f.name}, got one of {item_file.name}")
        if block is _FILE_DONE:
            return
        if isinstance(block, BaseException):
            raise block
        yield block


_END = object()
_FILE_DONE = object()


def _prefetch(items: Iterator[Any], depth: int = 4) -> Iterator[Any]:
    """Run the iterator `items` in a thread, up to `depth` items ahead. The gzip inflate, numpy,
    DuckDB and pyarrow release the GIL, so a file decompresses (gunzip blocks) and the next chunk
    parses while this one is validated and written. An exception of the producer is raised here,
    after the items it produced before it."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                q.put((item, None))
                if stop.is_set():
                    break
            else:
                q.put((_END, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put((_END, e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="ecommerce-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = q.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue, then let it end
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.01)


def _newlines(block: bytes | memoryview, offset: int = 0) -> np.ndarray:
    """Positions of b"\n" in `block` (+ offset), vectorised."""
    return np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10) + offset


def _jsonl_chunks(blocks: Iterator[tuple[bytes, np.ndarray]], spec: FeedSpec, batch_size: int,
                  parsers: "_Parsers") -> Iterator["Future[_Chunk]"]:
    """Chunks of `batch_size` lines. The file is read in large blocks, each with the positions of
    its newlines (`_newlines`); each chunk goes to a JSON reader as one buffer (no per-line objects).
    Each chunk is handed to `parsers` and its Future is yielded (in line order), so that several
    chunks parse at once."""
    parse = parsers.submit
    schema = spec.json_schema()
    first = 1
    parts: list[bytes] = []  # unconsumed bytes: whole lines, then maybe the start of a line
    ends: list[np.ndarray] = []  # newline positions within b"".join(parts)
    size = lines = 0
    bom_checked = False

    def cut(n_lines: int | None) -> tuple[memoryview, np.ndarray]:
        """The first `n_lines` whole lines (None: everything, a last line without newline too)."""
        nonlocal parts, ends, size, lines
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        nl = ends[0] if len(ends) == 1 else np.concatenate(ends) if ends else np.empty(0, np.int64)
        if n_lines is None:
            stop = len(data)
            line_ends = nl if (not len(nl) or nl[-1] == stop - 1) else np.append(nl, stop)
            parts, ends, size, lines = [], [], 0, 0
        else:
            line_ends, stop = nl[:n_lines], int(nl[n_lines - 1]) + 1
            rest = data[stop:]
            parts, ends, size, lines = ([rest] if rest else []), [nl[n_lines:] - stop], len(rest), len(nl) - n_lines
        return memoryview(data)[:stop], line_ends

    while True:
        try:
            item = next(blocks, None)
        except (OSError, EOFError, zlib.error):
            if lines:  # a truncated file: the whole lines read load, then the error is reported
                data, line_ends = cut(lines)
                yield parse(spec, schema, data, line_ends, first)
            raise
        if item is None:
            break
        block, nl = item
        if not bom_checked:
            if block.startswith(b"\xef\xbb\xbf"):
                block, nl = block[3:], nl - 3
            bom_checked = bool(block)
        nl = nl + size
        parts.append(block)
        ends.append(nl)
        size += len(block)
        lines += len(nl)
        while lines >= batch_size:
            data, line_ends = cut(batch_size)
            yield parse(spec, schema, data, line_ends, first)
            first += batch_size
    if size:
        data, line_ends = cut(None)
        yield parse(spec, schema, data, line_ends, first)


def _line_texts(data: memoryview, line_ends: np.ndarray) -> Callable[[int], bytes]:
    starts = np.concatenate(([0], line_ends[:-1] + 1)) if len(line_ends) else line_ends

    def line(i: int) -> bytes:
        return bytes(data[int(starts[i]):int(line_ends[i])])
    return line


def _parse_json_chunk(spec: FeedSpec, schema: pa.Schema, data: memoryview, line_ends: np.ndarray,
                      first: int, reader: "_DuckJsonReader | None" = None) -> _Chunk:
    """Fast paths: DuckDB's JSON reader where it reads exactly what pyarrow's would (`reader`),
    else pyarrow's JSON reader (multi-threaded) on the whole chunk; on any error, line by line.

    `line_ends`: position of each line's end (its newline, or the end of the data) in `data`."""
    n = len(line_ends)
    line = _line_texts(data, line_ends)
    rows = None  # the lines the table's rows come from: all (None), or those left after blank lines
    tbl = reader.read(spec, data, line_ends) if reader is not None else None
    if tbl is None:
        try:
            tbl = pa_json.read_json(
                pa.BufferReader(pa.py_buffer(data)),
                read_options=pa_json.ReadOptions(use_threads=True, block_size=_JSON_BLOCK),
                parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
            )
            tbl.validate(full=True)  # the reader passes invalid UTF-8 in text through: line by line then
            if tbl.num_rows != n:  # blank lines are skipped by the reader
                rows = [i for i in range(n) if line(i).strip()]
                if len(rows) != tbl.num_rows:
                    raise ValueError("row count mismatch")
        except (pa.ArrowInvalid, ValueError):
            return _parse_json_lines_slow(spec, [line(i) for i in range(n)], first)

    if rows is None:
        line_numbers = pa.array(np.arange(first, first + n, dtype=np.int64))
        raw_at = lambda i: line(i).decode("utf-8", "replace").rstrip("\r\n")  # noqa: E731
    else:
        line_numbers = pa.array(np.asarray(rows, dtype=np.int64) + first)
        raw_at = lambda i: line(rows[i]).decode("utf-8", "replace").rstrip("\r\n")  # noqa: E731
    columns = {f: tbl.column(f).combine_chunks() for f in spec.fields}
    return _Chunk(columns, line_numbers, raw_at, [], {}, n)


def _parse_json_lines_slow(spec: FeedSpec, lines: list[bytes], first: int) -> _Chunk:
    rejects: list[_Reject] = []
    records: list[dict] = []
    numbers: list[int] = []
    raws: list[str] = []
    for i, raw in enumerate(lines):
        ln = first + i
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            rejects.append(_Reject(ln, raw.decode("utf-8", "replace").rstrip("\r\n"), BAD_ENCODING, str(e)))
            continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError as e:
            rejects.append(_Reject(ln, text, MALFORMED_JSON, str(e)))
            continue
        if not isinstance(obj, dict):
            rejects.append(_Reject(ln, text, MALFORMED_JSON, f"not a JSON object: {type(obj).__name__}"))
            continue
        records.append(obj)
        numbers.append(ln)
        raws.append(text)
    cols, invalid = _columns_from_records(spec, records)
    return _Chunk(cols, pa.array(numbers, pa.int64()), raws.__getitem__, rejects, invalid, len(lines))


# --------------------------------------------------------------------------------------------
# Fast path: DuckDB's JSON reader, taken only where it reads exactly what pyarrow's would
# --------------------------------------------------------------------------------------------
_JSON_WS = np.zeros(256, dtype=bool)
_JSON_WS[[9, 10, 13, 32]] = True
# first byte of DuckDB's text for a JSON value that was not a string (number, object, array);
# true/false and NaN/Infinity literals are checked as whole values
_NOT_STRING_START = np.zeros(256, dtype=bool)
_NOT_STRING_START[[ord(c) for c in "-+0123456789{["]] = True
_LITERAL_START = np.zeros(256, dtype=bool)
_LITERAL_START[[ord(c) for c in "tfnNiI"]] = True
_LITERALS = pa.array(["true", "false", "nan", "inf", "infinity"])
_DIGITS = np.zeros(256, dtype=bool)
_DIGITS[ord("0"):ord("9") + 1] = True


class _DuckJsonReader:
    """Parses a chunk of JSON Lines with DuckDB's JSON reader (about twice as fast as pyarrow's
    reader on one thread), or returns None when the result could differ from what pyarrow's
    reader (the next path) would give, and that path decides.

    DuckDB's reader is more lenient than pyarrow's: it converts values to the declared type
    (3.5 -> 4, true -> 1, 123 -> '123') and accepts trailing commas and NaN/Infinity. So here
    integers are read as JSON text and must be plain JSON integers, text must not come from a
    number, boolean, object or array, timestamps must look like one (a digit first, ':' after
    the hour), no line may end with a trailing comma, and the chunk may hold no array and no object
    but one per line. Anything else (a blank line, a parse error, a line too long) falls back.

    The one difference left is in fields the contract does not read: a line with `"extra": nan`
    or `"extra": inf` (literals Python's json rejects, unlike NaN and Infinity) loads here, its
    contract fields read exactly, where pyarrow's path quarantines it as malformed_json. Nested
    values (arrays, objects), where trailing commas could hide, fall back.

    A chunk whose every line has every field of the contract (as the platform sends them) is read
    where it lies: its lines are handed to DuckDB as an Arrow column over the chunk's own bytes (no
    copy) and each is read by `json_transform_strict`, the transform `read_json` applies to each
    line, which also refuses a line without one of the fields. Any other chunk goes through a
    temporary file to `read_json` (DuckDB reads files, not Python buffers); writing it and reading
    it back cost ~0.15 CPU-s per 1M lines, in the kernel's page cache.

    A connection of its own (one per parsing thread, `_Parsers`) to the process's in-memory DuckDB
    for JSON (`_json_connection`), which reads each chunk on one thread."""

    def __init__(self) -> None:
        import duckdb

        self._duckdb = duckdb
        self._con = _json_connection()  # rows come back in file order (preserve_insertion_order)
        self._dir = Path(tempfile.mkdtemp(prefix="ocop-jsonl-"))
        self._path = self._dir / "chunk.jsonl"
        self._queries: dict[str, str] = {}

    def close(self) -> None:
        self._con.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _query(self, spec: FeedSpec) -> str:
        q = self._queries.get(spec.kind)
        if q is None:
            columns = ", ".join(f"'{f}': '{'JSON' if f in spec.ints else 'VARCHAR'}'" for f in spec.fields)
            select = ", ".join(f'"{f}"::VARCHAR as "{f}"' for f in spec.fields)
            q = (f"select {select} from read_json('{self._path.as_posix()}', format = 'newline_delimited', "
                 f"records = true, columns = {{{columns}}})")
            self._queries[spec.kind] = q
        return q

    def _read_in_place(self, spec: FeedSpec, buf: bytes, size: int, line_ends: np.ndarray) -> pa.Table | None:
        """The chunk read from its own bytes when every line has every field, else None."""
        offsets = np.empty(len(line_ends) + 1, dtype=np.int64)
        offsets[0] = 0
        np.minimum(line_ends + 1, size, out=offsets[1:])  # each line with its newline (JSON whitespace)
        lines = pa.LargeStringArray.from_buffers(len(line_ends), pa.py_buffer(offsets), pa.py_buffer(buf))
        self._con.register("lines", pa.table({"line": lines}))
        try:
            return self._con.sql(_strict_query(spec)).to_arrow_table()
        except (self._duckdb.Error, UnicodeDecodeError):  # a field missing, or a line read_json decides on
            return None  # (DuckDB's message quotes the line: invalid UTF-8 fails to decode)
        finally:
            self._con.unregister("lines")

    def read(self, spec: FeedSpec, data: memoryview, line_ends: np.ndarray) -> pa.Table | None:
        """The chunk's columns as pyarrow's reader would give them (`spec.json_schema()`), or None.

        `data`: the chunk, a view from the start of a bytes object (as `_jsonl_chunks` cuts it);
        `line_ends`: the position of each line's end in it."""
        n = len(line_ends)
        if n == 0:
            return None
        buf = data.obj if isinstance(data, memoryview) and isinstance(data.obj, bytes) else bytes(data)
        size = len(data)
        b = np.frombuffer(buf, dtype=np.uint8, count=size)
        # (numpy counts ~3x faster than bytes.count, and lets go of the GIL)
        if buf.find(b"[", 0, size) >= 0 or np.count_nonzero(b == ord("{")) != n:
            return None  # arrays, nested objects (or braces in text): pyarrow's reader decides
        if not _no_trailing_comma(b, line_ends):
            return None
        tbl = self._read_in_place(spec, buf, size, line_ends)
        if tbl is None:
            try:
                self._path.write_bytes(data)
                tbl = self._con.sql(self._query(spec)).to_arrow_table()
            except (OSError, self._duckdb.Error):  # e.g. a full temporary folder: pyarrow's path reads it
                return None
            finally:
                self._path.unlink(missing_ok=True)
        if tbl.num_rows != n:
            return None  # blank lines: pyarrow's path numbers the lines that are left
        columns: dict[str, pa.Array] = {}
        for f in spec.fields:
            arr = tbl.column(f).combine_chunks()
            if f in spec.ints:
                try:
                    arr = pc.cast(arr, pa.int64())  # plain JSON integers only: not 3.5, "3", true, 1e3
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    return None
            elif not _json_strings(arr, timestamp=f in spec.timestamps):
                return None
            columns[f] = arr
        return pa.table(columns, schema=spec.json_schema())


def _duck_json_reader() -> _DuckJsonReader | None:
    try:
        return _DuckJsonReader()
    except OSError as e:  # no temporary folder: pyarrow's reader does it all
        log.warning("ecommerce: DuckDB's JSON reader not used: %s", e)
        return None


@functools.cache
def _strict_query(spec: FeedSpec) -> str:
    """`_DuckJsonReader._read_in_place`'s query: the same columns as `read_json`'s (`_query`)."""
    fields = ", ".join(f'"{f}": "{"JSON" if f in spec.ints else "VARCHAR"}"' for f in spec.fields)
    select = ", ".join(f'r."{f}"::VARCHAR as "{f}"' for f in spec.fields)
    return f"select {select} from (select json_transform_strict(line, '{{{fields}}}') as r from lines)"


_json_db: Any = None
_json_db_lock = threading.Lock()


def _json_connection() -> Any:
    """A connection of its own to the in-memory DuckDB database the JSON readers of this process
    share, made once, on first use (~25 ms, holding the GIL), not once per reader and load. One
    thread per query: the readers parse side by side on threads of their own."""
    global _json_db
    with _json_db_lock:
        if _json_db is None:
            import duckdb

            _json_db = duckdb.connect(config={"threads": 1})
        return _json_db.cursor()


class _Parsers:
    """Threads that parse chunks of JSON Lines (`_parse_json_chunk`) while the chunks before them
    are validated, each with its own single-threaded DuckDB reader (`_parse_workers()` of them).

    DuckDB's JSON reader uses its threads poorly on one chunk (two threads take ~2/3 of one
    thread's time, for ~1.3x the CPU): chunks side by side, one thread each, parse more lines per
    CPU second. `submit` returns a Future; chunks finish in any order, the caller keeps theirs."""

    def __init__(self, workers: int):
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="ecommerce-parse")
        self._local = threading.local()
        self._readers: list[_DuckJsonReader] = []
        self._lock = threading.Lock()

    def _reader(self) -> _DuckJsonReader | None:
        if not hasattr(self._local, "reader"):
            self._local.reader = _duck_json_reader()
            if self._local.reader is not None:
                with self._lock:
                    self._readers.append(self._local.reader)
        return self._local.reader

    def _parse(self, spec: FeedSpec, schema: pa.Schema, data: memoryview, line_ends: np.ndarray,
               first: int) -> "_Chunk":
        return _parse_json_chunk(spec, schema, data, line_ends, first, self._reader())

    def submit(self, spec: FeedSpec, schema: pa.Schema, data: memoryview, line_ends: np.ndarray,
               first: int) -> "Future[_Chunk]":
        return self._pool.submit(self._parse, spec, schema, data, line_ends, first)

    def close(self, drop_pending: bool) -> None:
        """Waits for the chunks submitted (or, with `drop_pending`, only for those being parsed,
        dropping the others), then closes the readers.

        Only a reader that stopped early may drop chunks: at the normal end of the files, the
        Futures of the last chunks are still on their way to the caller, who will ask for them."""
        self._pool.shutdown(wait=True, cancel_futures=drop_pending)
        for reader in self._readers:
            reader.close()


def _parse_workers() -> int:
    """Chunks parsed at once: one per core but the one the validating (main) and reading threads
    share, at least one, at most four. On 2 cores a second parsing thread made a 1M-line load
    ~0.1 s slower, for ~0.2 CPU-s more (bench/README, seventh round)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, min(4, cores - 1))


def _no_trailing_comma(b: np.ndarray, line_ends: np.ndarray) -> bool:
    """Every line ends with '}' (whitespace aside) not preceded by ',' (whitespace aside)."""
    pos = line_ends.astype(np.int64) - 1
    for expect_brace in (True, False):
        for _ in range(8):  # step back over whitespace
            ws = (pos >= 0) & _JSON_WS[b[np.maximum(pos, 0)]]
            if not ws.any():
                break
            pos = pos - ws
        else:
            return False
        if (pos < 0).any():
            return False
        last = b[pos]
        if expect_brace:
            if (last != ord("}")).any():
                return False
            pos = pos - 1
        elif (last == ord(",")).any():
            return False
    return True


def _json_strings(arr: pa.Array, timestamp: bool) -> bool:
    """True when no value of this text column (as DuckDB read it) can have been a JSON number,
    boolean, NaN/Infinity, object or array. Timestamps: a digit first and ':' 14th."""
    spans = _value_spans(arr)
    if spans is None:
        return False
    starts, ends, data = spans
    if timestamp:
        long_enough = ends - starts >= 14
        if not long_enough.all():
            return False
        return bool(_DIGITS[data[starts]].all() and (data[starts + 13] == ord(":")).all())
    nonempty = ends > starts
    starts, ends = starts[nonempty], ends[nonempty]
    first = data[starts]
    if _NOT_STRING_START[first].any():
        return False
    if (_LITERAL_START[first] & (ends - starts <= 8)).any():  # maybe true/false/nan/inf/infinity
        short = arr.filter(pc.less_equal(pc.binary_length(arr), 8))  # nulls dropped too
        if pc.any(pc.is_in(pc.utf8_lower(short), value_set=_LITERALS)).as_py():
            return False
    return True


class _LineTap:
    """Feeds csv.reader line by line and remembers the raw text of the current record."""

    def __init__(self, fh: Iterator[str]):
        self.fh = fh
        self.buf: list[str] = []

    def __iter__(self) -> "_LineTap":
        return self

    def __next__(self) -> str:
        line = next(self.fh)
        self.buf.append(line)
        return line


def _csv_chunks(fh: BinaryIO, spec: FeedSpec, batch_size: int) -> Iterator[_Chunk]:
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
    header_line = text.readline()
    if not header_line.strip():
        return
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    header = [h.strip().lower() for h in next(csv.reader([header_line], delimiter=delimiter))]
    index = {f: header.index(f) for f in spec.fields if f in header}
    width = len(header)
    tap = _LineTap(text)
    reader = csv.reader(tap, delimiter=delimiter)
    line_no = 1  # the header
    while True:
        values: dict[str, list] = {f: [] for f in index}
        numbers: list[int] = []
        raws: list[str] = []
        rejects: list[_Reject] = []
        lines_read = 0
        for row in reader:
            start = line_no + 1
            raw = "".join(tap.buf).rstrip("\r\n")
            line_no += len(tap.buf)
            lines_read += len(tap.buf)
            tap.buf.clear()
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if "\ufffd" in raw:
                rejects.append(_Reject(start, raw, BAD_ENCODING, "not UTF-8"))
            elif len(row) != width:
                rejects.append(_Reject(start, raw, MALFORMED_CSV, f"expected {width} fields, got {len(row)}"))
            else:
                for f, j in index.items():
                    values[f].append(row[j])
                numbers.append(start)
                raws.append(raw)
            if len(numbers) + len(rejects) >= batch_size:
                break
        if not numbers and not rejects:
            return
        n = len(numbers)
        cols = {f: pa.array(values[f], pa.string()) if f in values else pa.nulls(n, pa.string()) for f in spec.fields}
        yield _Chunk(cols, pa.array(numbers, pa.int64()), raws.__getitem__, rejects, {}, lines_read)


# --------------------------------------------------------------------------------------------
# Validation: columns -> (good Arrow table, quarantine)
# --------------------------------------------------------------------------------------------
_OFFSET_RE = r"(?i)(z|[+-]\d{2}:?\d{2})$"


# bytes after which utf8_trim_whitespace might change a value that starts or ends with them: ASCII
# controls and the space, and every byte of a multi-byte character (some are Unicode spaces)
_EDGE_BYTES = np.zeros(256, dtype=bool)
_EDGE_BYTES[:33] = True
_EDGE_BYTES[127:] = True
_UPPER_BYTES = np.zeros(256, dtype=bool)  # what utf8_lower might change: A-Z and non-ASCII
_UPPER_BYTES[ord("A"):ord("Z") + 1] = True
_UPPER_BYTES[128:] = True


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """(offsets, data) of a string array as numpy views, None when not a plain string array."""
    if arr.type != pa.string():
        return None
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(1, np.uint8)
    return offsets, data


def _value_spans(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(starts, ends, data): where each non-null value of a plain string array lies in its data
    buffer (numpy views); None when not a plain string array."""
    buffers = _string_buffers(arr)
    if buffers is None:
        return None
    offsets, data = buffers
    starts, ends = offsets[:-1], offsets[1:]
    if arr.null_count:
        valid = pc.is_valid(arr).to_numpy(zero_copy_only=False)
        starts, ends = starts[valid], ends[valid]
    return starts, ends, data


def _may_need_trim(arr: pa.Array) -> bool:
    """False when trimming whitespace cannot change any value: no value is empty, or starts or
    ends with a byte of _EDGE_BYTES (checked on the first and last byte of each value)."""
    if arr.null_count == len(arr):
        return False
    spans = _value_spans(arr)
    if spans is None:
        return True
    starts, ends, data = spans
    if (ends <= starts).any():
        return True
    return bool(_EDGE_BYTES[data[starts]].any() or _EDGE_BYTES[data[ends - 1]].any())


def _lower(arr: pa.Array) -> pa.Array:
    """utf8_lower, skipped when the text holds no A-Z and no non-ASCII byte (nothing to lower)."""
    buffers = _string_buffers(arr)
    if buffers is not None:
        offsets, data = buffers
        if len(offsets) < 2 or not _UPPER_BYTES[data[offsets[0]:offsets[-1]]].any():
            return arr
    return pc.utf8_lower(arr)


def _clean_text(arr: pa.Array) -> pa.Array:
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    if _may_need_trim(arr):
        arr = pc.utf8_trim_whitespace(arr)
    if not pc.all(pc.string_is_ascii(arr)).as_py():
        arr = _nfc(arr)
    if pc.min(pc.binary_length(arr)).as_py() != 0:  # no empty text (or all null): nothing to null
        return arr
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def _nfc(arr: pa.Array) -> pa.Array:
    """NFC of a text column. Feed columns repeat few distinct values (provinces, channels), so the
    distinct values are normalised once and put back (several times faster than every row)."""
    encoded = pc.dictionary_encode(arr)
    if len(encoded.dictionary) * 4 > len(arr):
        return pc.utf8_normalize(arr, "NFC")
    normalized = pc.utf8_normalize(encoded.dictionary, "NFC")
    if normalized.equals(encoded.dictionary):
        return arr  # already NFC (the usual case): nothing to put back
    return pc.take(normalized, encoded.indices)


def _to_int(arr: pa.Array, name: str, invalid: dict[int, str]) -> pa.Array:
    if pa.types.is_integer(arr.type):
        return pc.cast(arr, pa.int64())
    arr = _clean_text(arr)
    try:
        return pc.cast(arr, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out = []
    for i, v in enumerate(arr.to_pylist()):
        try:
            out.append(_py_int(v))
        except (ValueError, TypeError, OverflowError):
            out.append(None)
            invalid.setdefault(i, f"{name} = {v!r}")
    return pa.array(out, pa.int64())


def _to_ts(arr: pa.Array, name: str, invalid: dict[int, str]) -> pa.Array:
    if pa.types.is_timestamp(arr.type):
        return pc.cast(arr, TS_TYPE)
    if pa.types.is_string(arr.type):
        try:  # the platform's form, as sent: the cast fails on anything to clean (blanks, empty, naive)
            return pc.cast(arr, TS_TYPE)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    arr = _clean_text(arr)
    try:  # the platform's form: ISO 8601 with an offset ('...+07:00' or 'Z'); naive text fails here
        return pc.cast(arr, TS_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    null = pa.scalar(None, pa.string())
    try:
        has_offset = pc.fill_null(pc.match_substring_regex(arr, _OFFSET_RE), False)
        aware = pc.cast(pc.if_else(has_offset, arr, null), TS_TYPE)
        if pc.any(pc.and_(pc.invert(has_offset), pc.is_valid(arr))).as_py():
            naive = pc.cast(pc.if_else(has_offset, null, arr), pa.timestamp("us"))
            local = pc.assume_timezone(naive, LOCAL_TZ, ambiguous="earliest", nonexistent="earliest")
            return pc.if_else(has_offset, aware, pc.cast(local, TS_TYPE))
        return aware
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out = []
    for i, v in enumerate(arr.to_pylist()):
        try:
            out.append(_py_ts(v))
        except (ValueError, TypeError):
            out.append(None)
            invalid.setdefault(i, f"{name} = {v!r}")
    return pa.array(out, TS_TYPE)


def _null_mask(arr: pa.Array) -> np.ndarray:
    return pc.is_null(arr).to_numpy(zero_copy_only=False)


def _true_mask(arr: pa.Array) -> np.ndarray:
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False)


def _record_key(spec: FeedSpec, cols: dict[str, pa.Array], i: int) -> str | None:
    parts = [cols[k][i].as_py() for k in spec.merge_key]
    if all(p is None for p in parts):
        return None
    return "/".join("" if p is None else str(p) for p in parts)


def _validate(spec: FeedSpec, chunk: _Chunk, source: str, loaded_at: dt.datetime) -> tuple[pa.Table, list[_Reject]]:
    """Type, clean and check a chunk. Returns the good rows (with a `_row` index into the chunk)
    and the rejected rows (parse-stage rejects included)."""
    n = len(chunk.line_numbers)
    invalid = dict(chunk.invalid)
    cols: dict[str, pa.Array] = {}
    for f in spec.fields:
        arr = chunk.columns.get(f)
        if arr is None:
            arr = pa.nulls(n, pa.string())
        if f in spec.ints:
            arr = _to_int(arr, f, invalid)
        elif f in spec.timestamps:
            arr = _to_ts(arr, f, invalid)
        else:
            arr = _clean_text(arr)
            if f == "status":
                arr = _lower(arr)
        cols[f] = arr

    # one reason per row, the first that applies
    code = np.zeros(n, dtype=np.int8)
    reasons = [MISSING_KEY, INVALID_VALUE, MISSING_FIELD, NEGATIVE_QTY, UNKNOWN_STATUS]

    def mark(reason: str, mask: np.ndarray) -> None:
        code[(code == 0) & mask] = reasons.index(reason) + 1

    missing_key = np.zeros(n, dtype=bool)
    for k in spec.key:
        missing_key |= _null_mask(cols[k])
    mark(MISSING_KEY, missing_key)
    bad_value = np.zeros(n, dtype=bool)
    if invalid:
        bad_value[list(invalid)] = True
    for f in spec.non_negative:
        bad_value |= _true_mask(pc.less(cols[f], 0))
    mark(INVALID_VALUE, bad_value)
    missing = np.zeros(n, dtype=bool)
    for f in spec.required:
        missing |= _null_mask(cols[f])
    mark(MISSING_FIELD, missing)
    if "qty" in cols:
        mark(NEGATIVE_QTY, _true_mask(pc.less(cols["qty"], 0)))
    known_status = _true_mask(pc.is_in(cols["status"], value_set=pa.array(spec.statuses)))
    mark(UNKNOWN_STATUS, ~known_status)

    rejects = list(chunk.rejects)
    for i in np.flatnonzero(code):
        i = int(i)
        reason = reasons[code[i] - 1]
        if reason == MISSING_KEY:
            detail = "missing " + ", ".join(k for k in spec.key if not cols[k][i].is_valid)
        elif reason == INVALID_VALUE:
            detail = invalid.get(i) or ", ".join(
                f"{f} = {cols[f][i].as_py()}" for f in spec.non_negative if (cols[f][i].as_py() or 0) < 0
            )
        elif reason == MISSING_FIELD:
            detail = "missing " + ", ".join(f for f in spec.required if not cols[f][i].is_valid)
        elif reason == NEGATIVE_QTY:
            detail = f"qty = {cols['qty'][i].as_py()}"
        else:
            detail = f"status = {cols['status'][i].as_py()!r}; expected one of {', '.join(spec.statuses)}"
        ln = chunk.line_numbers[i].as_py()
        rejects.append(_Reject(ln, chunk.raw_at(i), reason, detail, _record_key(spec, cols, i)))

    for f, value in spec.defaults:
        cols[f] = pc.fill_null(cols[f], value)
    n_rows = pa.array(np.arange(n, dtype=np.int64))
    table = pa.table(
        {
            **cols,
            "source": pa.repeat(pa.scalar(source), n),
            "source_line": chunk.line_numbers,
            "loaded_at": pa.repeat(pa.scalar(loaded_at, TS_TYPE), n),
            "_row": n_rows,
        }
    )
    if code.any():
        table = table.filter(pa.array(code == 0))
    return table, rejects


def _finish(spec: FeedSpec, table: pa.Table) -> pa.Table:
    return table.drop_columns(["_row"]).cast(spec.arrow_schema())


def _keep_newer(spec: FeedSpec, table: pa.Table, is_newer: NewerCheck | None) -> pa.Table:
    if is_newer is None or table.num_rows == 0:
        return table
    mask = is_newer(spec.table, table.select(list(spec.key)))
    if pc.all(mask).as_py():
        return table  # nothing stale (a first load, new lines): no copy
    return table.filter(mask)


def _sku_warnings(table: pa.Table, known_skus: set[str], raw_at: Callable[[int], str]) -> list[_Reject]:
    if table.num_rows == 0:
        return []
    known = pa.array(sorted(known_skus), pa.string())
    unknown = pc.invert(pc.fill_null(pc.is_in(table["sku"], value_set=known), False))
    if not pc.any(unknown).as_py():
        return []
    bad = table.select(["order_id", "line_no", "sku", "source_line", "_row"]).filter(unknown).to_pylist()
    return [
        _Reject(
            r["source_line"], raw_at(r["_row"]), UNKNOWN_SKU,
            f"sku {r['sku']!r} is not in the platform catalogue (line loaded, flagged)",
            f"{r['order_id']}/{r['line_no']}", SEVERITY_WARNING,
        )
        for r in bad
    ]


def _quarantine_table(rejects: list[_Reject], source: str, kind: str, content_hash: str | None,
                      loaded_at: dt.datetime) -> pa.Table:
    n = len(rejects)
    return pa.table(
        {
            "source": [source] * n,
            "kind": [kind] * n,
            "line_number": [r.line_number for r in rejects],
            "raw_text": [r.raw_text for r in rejects],
            "reason": [r.reason for r in rejects],
            "severity": [r.severity for r in rejects],
            "detail": [r.detail for r in rejects],
            "record_key": [r.record_key for r in rejects],
            "content_hash": [content_hash] * n,
            "loaded_at": [loaded_at] * n,
        },
        schema=QUARANTINE_SCHEMA,
    )


# --------------------------------------------------------------------------------------------
# Table hints (one resource per source dispatches to these tables as variants)
# --------------------------------------------------------------------------------------------
def _merge_columns(spec: FeedSpec) -> dict[str, dict]:
    cols: dict[str, dict] = {k: {"nullable": False} for k in spec.merge_key}
    cols["updated_at"] = {"dedup_sort": "desc"}
    return cols


def _merge_hints(spec: FeedSpec) -> dict[str, Any]:
    return dict(table_name=spec.table, write_disposition={"disposition": "merge", "strategy": "delete-insert"},
                primary_key=list(spec.merge_key), columns=_merge_columns(spec))


def _declare_tables(resource: Any, with_files: bool) -> None:
    """The tables a resource writes, each a variant of its hints that items are dispatched to
    (`_to`). The feed files' resource writes its order lines as one loader file, which dlt
    imports to the resource's own table: that table is the order lines (`_LoaderFile`)."""
    for spec in (LISTINGS,) if with_files else (LISTINGS, ORDER_LINES):
        resource.apply_hints(**_merge_hints(spec), create_table_variant=True)
    resource.apply_hints(table_name=QUARANTINE_TABLE, write_disposition="append", primary_key="",
                         create_table_variant=True)
    if with_files:
        resource.apply_hints(table_name=FILES_TABLE, write_disposition="append", primary_key="",
                             create_table_variant=True)


def _to(table_name: str, item: pa.Table) -> Any:
    return dlt.mark.with_table_name(item, table_name)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _keys_ascending(table: pa.Table, keys: Sequence[str], before: tuple | None) -> bool:
    """True when every row's key (the columns `keys`, compared in turn) is greater than the key of
    the row before it, the first row's greater than `before`: then no key is there twice. Keys
    with a null part (not loaded: missing_key) make it False."""
    n = table.num_rows
    first = tuple(table[k][0].as_py() for k in keys)
    if None in first or (before is not None and not before < first):
        return False
    if n == 1:
        return True
    greater: Any = None  # rows whose key is greater than the row's before it, on the parts compared so far
    equal: Any = None  # rows whose key equals the row's before it, on the parts compared so far
    for k in keys:
        column = table[k]
        prev, cur = column.slice(0, n - 1), column.slice(1)
        gt, eq = pc.greater(cur, prev), pc.equal(cur, prev)
        greater = gt if greater is None else pc.or_(greater, pc.and_(equal, gt))
        equal = eq if equal is None else pc.and_(equal, eq)
    return bool(pc.all(pc.fill_null(greater, False)).as_py())


class _LoaderFile:
    """The order lines of a load, written as dlt's parquet loader file, here, then imported into
    the load package as it is (`dlt.mark.with_file_import`) to the resource's own table.

    dlt's writer takes ~0.46 s to write 1M lines; this file ~0.19 s, and DuckDB loads it as fast:
    it is a local file read once, so it is not compressed, has no statistics and dictionary-codes
    only the columns that repeat (dlt's writer has no setting for the last two). It holds the
    column dlt would add, `_dlt_load_id`; the hints given with it are the columns without it, as
    dlt would see them in the Arrow tables of the rows, so the table and its schema are the same
    either way.

    Made on the first row, in the resource while it runs (the load id is the package's), in a
    folder of its own under `scratch_dir`; `remove()` deletes the folder: dlt has linked or copied
    the file into the package by then."""

    REPEATED = frozenset({"sku", "channel", "status", "buyer_province", "source", "loaded_at", "line_no", "qty",
                          "unit_price_vnd", "discount_vnd", "_dlt_load_id"})

    def __init__(self, spec: FeedSpec, scratch_dir: str | Path | None):
        import pyarrow.parquet as pq

        self.spec = spec
        self.load_id = dlt.current.load_package_state()["load_id"]
        self.schema = spec.arrow_schema().append(pa.field("_dlt_load_id", pa.string(), nullable=False))
        if scratch_dir is not None:
            Path(scratch_dir).mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="ocop-loader-", dir=scratch_dir))
        self.path = self.dir / f"{spec.table}.parquet"
        self.rows = 0
        self.keys_ascending = True  # so far, each row's key greater than the one before it
        self._last_key: tuple | None = None
        self._writer: Any = pq.ParquetWriter(
            self.path, self.schema, compression="none", write_statistics=False,
            use_dictionary=[c for c in self.schema.names if c in self.REPEATED])

    def write(self, table: pa.Table) -> None:
        """Rows as `_finish` gives them."""
        if self.keys_ascending and table.num_rows:
            keys = self.spec.merge_key
            self.keys_ascending = _keys_ascending(table, keys, self._last_key)
            self._last_key = tuple(table[k][-1].as_py() for k in keys)
        load_id = pa.repeat(pa.scalar(self.load_id), table.num_rows)
        self._writer.write_table(table.append_column(self.schema.field("_dlt_load_id"), load_id))
        self.rows += table.num_rows

    def imported(self) -> Any:
        """The item that hands the finished file to dlt."""
        self._writer.close()
        return dlt.mark.with_file_import(str(self.path), "parquet", self.rows,
                                         hints=self.spec.arrow_schema().empty_table())

    def remove(self) -> None:
        self._writer.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Source 1: feed files
# --------------------------------------------------------------------------------------------
def _file_chunks(files: Sequence[FeedFile], batch_size: int, workers: int) -> Iterator[tuple[FeedFile, Any]]:
    """(file, chunk) for every chunk of every file, in order, then (file, _FILE_DONE); a read error
    midway (truncated / corrupt file) is handed over as (file, exception) and the next file goes on.
    A chunk of JSON Lines comes as the Future of its parse by `workers` parsing threads (`_Parsers`).

    Run in a thread by `_file_items`, so the next chunks (of the same file or the next one) are
    parsed while the current one is validated and written; the JSON Lines files are read and
    decompressed in one more thread, ahead of the parsing, across file boundaries too."""
    shared = _prefetch(_all_blocks(files))
    parsers = _Parsers(workers) if any(f.fmt == "jsonl" for f in files) else None
    all_read = False
    try:
        for f in files:
            spec = SPECS[f.kind]
            if f.fmt == "jsonl":
                chunks = _jsonl_chunks(_blocks_of(f, shared), spec, batch_size, parsers)
                try:
                    for chunk in chunks:
                        yield f, chunk
                except (OSError, EOFError, zlib.error) as e:
                    yield f, e
                finally:
                    chunks.close()
            else:
                with open(f.path, "rb") as raw:
                    text = gzip.GzipFile(fileobj=raw, mode="rb") if f.compression else raw
                    chunks = _csv_chunks(text, spec, batch_size)  # type: ignore[arg-type]
                    try:
                        for chunk in chunks:
                            yield f, chunk
                    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
                        yield f, e
                    finally:
                        chunks.close()
            yield f, _FILE_DONE
        all_read = True
    finally:
        shared.close()
        if parsers is not None:
            parsers.close(drop_pending=not all_read)


def _file_items(files: Sequence[FeedFile], known_skus: set[str], is_newer: NewerCheck | None,
                batch_size: int, loaded_at: dt.datetime, scratch_dir: str | Path | None,
                keys_checked: Callable[[bool], None] | None) -> Iterator[Any]:
    skus = set(known_skus)
    order_lines: _LoaderFile | None = None
    files = sorted(files, key=lambda f: (f.kind != LISTINGS.kind, f.name))
    # chunks read and parsed ahead, one more than there are parsing threads, across file boundaries
    # (the inflate, numpy, DuckDB and pyarrow release the GIL); listings are still validated before
    # the order lines that need their SKUs
    workers = _parse_workers()
    items = _prefetch(_file_chunks(files, batch_size, workers), depth=workers + 1)
    try:
        for f in files:
            spec = SPECS[f.kind]
            stats = dict(lines_read=0, rows_valid=0, rows_loaded=0, rows_stale=0, rows_rejected=0, rows_warned=0)
            status, error = "loaded", None
            log.info("ecommerce: reading %s (%s, %s)", f.name, f.kind, f.fmt)
            while True:
                item_file, chunk = next(items)
                if item_file is not f:  # pragma: no cover - _file_chunks goes through `files` in order
                    raise RuntimeError(f"expected a chunk of {f.name}, got one of {item_file.name}")
                if chunk is _FILE_DONE:
                    break
                if isinstance(chunk, Future):
                    chunk = chunk.result()
                if isinstance(chunk, BaseException):
                    # truncated / corrupt file: keep what was read, quarantine the rest as one record
                    e = chunk
                    status, error = "partial", f"{type(e).__name__}: {e}"
                    after = stats["lines_read"]
                    yield _to(QUARANTINE_TABLE, _quarantine_table(
                        [_Reject(after + 1, "", UNREADABLE_FILE, f"file unreadable after line {after}: {error}")],
                        f.name, f.kind, f.content_hash, loaded_at))
                    stats["rows_rejected"] += 1
                    continue  # (f, _FILE_DONE) follows
                stats["lines_read"] += chunk.lines_read
                good, rejects = _validate(spec, chunk, f.name, loaded_at)
                stats["rows_valid"] += good.num_rows
                if spec is LISTINGS:
                    skus.update(s for s in good["sku"].to_pylist() if s)
                newer = _keep_newer(spec, good, is_newer)
                stats["rows_stale"] += good.num_rows - newer.num_rows
                warnings = _sku_warnings(newer, skus, chunk.raw_at) if spec is ORDER_LINES else []
                stats["rows_rejected"] += len(rejects)
                stats["rows_warned"] += len(warnings)
                if newer.num_rows:
                    stats["rows_loaded"] += newer.num_rows
                    if spec is ORDER_LINES:
                        order_lines = order_lines or _LoaderFile(ORDER_LINES, scratch_dir)
                        order_lines.write(_finish(spec, newer))
                    else:
                        yield _to(spec.table, _finish(spec, newer))
                if rejects or warnings:
                    yield _to(QUARANTINE_TABLE, _quarantine_table(
                        rejects + warnings, f.name, f.kind, f.content_hash, loaded_at))
            yield _to(FILES_TABLE, pa.Table.from_pylist([{
                "content_hash": f.content_hash, "source_file": f.name, "kind": f.kind, "format": f.fmt,
                "compression": f.compression, "file_size": f.size, "file_modified_at": f.modified_at,
                **stats, "status": status, "error": error, "loaded_at": loaded_at,
            }], schema=FILES_SCHEMA))
        if order_lines is not None:
            if keys_checked is not None:
                keys_checked(order_lines.keys_ascending)
            yield order_lines.imported()
    finally:
        items.close()  # stops the reading thread when the load stops early
        if order_lines is not None:
            order_lines.remove()


@dlt.source(name=SCHEMA_NAME, section="ecommerce_files")
def ecommerce_files(
    files: Sequence[FeedFile],
    known_skus: Iterable[str] = (),
    is_newer: NewerCheck | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    loaded_at: dt.datetime | None = None,
    scratch_dir: str | None = None,
    keys_checked: Callable[[bool], None] | None = None,
) -> Any:
    """Feed files -> listings, order lines, quarantine and the file registry.

    `files`: from `scan_feed_files`, already filtered to those not yet loaded (by content hash).
    `known_skus`: the stored catalogue's SKUs (the listings of `files` are added as they are read).
    `is_newer`: newest-wins guard against the stored rows (see module doc).
    `scratch_dir`: where the order lines' loader file is written before dlt takes it (best on the
    file system of the pipeline's folder: dlt links it instead of copying); default: the system's
    temporary folder.
    `keys_checked(ascending)`: called when the order lines are written, before dlt takes them:
    whether each came with a key (order_id, line_no) greater than the one before it, so that none
    is there twice (platforms export in order; then the wiring need not
    look for lines sent twice)."""
    res = dlt.resource(_file_items, name=FILES_RESOURCE)(
        list(files), set(known_skus or ()), is_newer, batch_size, loaded_at or _now(), scratch_dir, keys_checked)
    _declare_tables(res, with_files=True)
    res.apply_hints(**_merge_hints(ORDER_LINES))  # after the variants: they start as a copy of these
    return res


# --------------------------------------------------------------------------------------------
# Source 2: the platform API
# --------------------------------------------------------------------------------------------
def make_api_client(base_url: str, token: str, timeout: float = 30.0, max_attempts: int = 5,
                    backoff_factor: float = 1.0, max_retry_delay: float = 60.0) -> RESTClient:
    """RESTClient with Bearer auth and cursor paging; 429/5xx/timeouts/connection errors are
    retried with exponential backoff by dlt's requests Client (401/403 are not retried)."""
    session = Client(
        request_timeout=timeout,
        request_max_attempts=max_attempts,
        request_backoff_factor=backoff_factor,
        request_max_retry_delay=max_retry_delay,
        raise_for_status=False,
    ).session
    return RESTClient(
        base_url=base_url.rstrip("/"),
        auth=BearerTokenAuth(token=token),
        paginator=JSONResponseCursorPaginator(cursor_path="next_cursor", cursor_param="cursor"),
        data_selector="data",
        session=session,
    )


def _iso(d: dt.datetime) -> str:
    return d.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _identity(spec: FeedSpec, rec: dict) -> str:
    """Same record, same version: key + updated_at as sent."""
    parts = [rec.get(k) for k in spec.merge_key]
    if any(p is None for p in parts):
        return "#" + hashlib.sha1(json.dumps(rec, sort_keys=True, default=str).encode()).hexdigest()
    return "/".join(str(p) for p in parts) + "@" + str(rec.get("updated_at"))


def _api_pages(client: RESTClient, path: str, params: dict) -> Iterator[list]:
    endpoint = path
    try:
        for page in client.paginate(path, params=params):
            yield list(page)
    except requests.HTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if status in (401, 403):
            raise FeedApiAuthError(status, endpoint) from None
        raise FeedApiUnavailableError(status, endpoint, f"HTTP {status}") from None
    except requests.Timeout:
        raise FeedApiUnavailableError(None, endpoint, "timeout") from None
    except requests.ConnectionError as e:
        raise FeedApiUnavailableError(None, endpoint, f"connection error: {type(e).__name__}") from None
    except ValueError as e:  # not JSON
        raise FeedApiUnavailableError(None, endpoint, f"unusable response: {e}") from None


def _api_items(client: RESTClient, paths: dict[str, str], page_size: int, known_skus: set[str],
               is_newer: NewerCheck | None, batch_size: int, loaded_at: dt.datetime) -> Iterator[Any]:
    state = dlt.current.resource_state()
    skus = set(known_skus)
    new_state: dict[str, dict] = {}
    for spec in (LISTINGS, ORDER_LINES):
        cursor = state.get(spec.kind, {})
        since = _py_ts(cursor["last_value"]) if cursor.get("last_value") else None
        boundary = set(cursor.get("boundary", ()))
        params: dict[str, Any] = {"page_size": page_size}
        if since is not None:
            params["updated_since"] = _iso(since)
        last, last_ids = since, set(boundary)
        pending: list[pa.Table] = []
        pending_rows = 0
        raws: list[str] = []

        def flush() -> Iterator[Any]:
            nonlocal pending, pending_rows, raws
            if not pending:
                return
            good = pa.concat_tables(pending)
            batch_raws = raws
            pending, pending_rows, raws = [], 0, []
            newer = _keep_newer(spec, good, is_newer)
            warnings = _sku_warnings(newer, skus, batch_raws.__getitem__) if spec is ORDER_LINES else []
            if newer.num_rows:
                yield _to(spec.table, _finish(spec, newer))
            if warnings:
                yield _to(QUARANTINE_TABLE, _quarantine_table(warnings, API_SOURCE, spec.kind, None, loaded_at))

        for records in _api_pages(client, paths[spec.kind], params):
            fresh = []
            for rec in records:
                if not isinstance(rec, dict):
                    fresh.append(rec)
                    continue
                try:
                    ts = _py_ts(rec.get("updated_at"))
                except (ValueError, TypeError):
                    ts = None
                if ts is not None and since is not None:
                    if ts < since or (ts == since and _identity(spec, rec) in boundary):
                        continue  # already loaded (inclusive cursor)
                if ts is not None:
                    if last is None or ts > last:
                        last, last_ids = ts, {_identity(spec, rec)}
                    elif ts == last:
                        last_ids.add(_identity(spec, rec))
                fresh.append(rec)
            if not fresh:
                continue
            objs = [r for r in fresh if isinstance(r, dict)]
            bad = [_Reject(None, json.dumps(r, ensure_ascii=False), MALFORMED_JSON, "not a JSON object")
                   for r in fresh if not isinstance(r, dict)]
            cols, invalid = _columns_from_records(spec, objs)
            page_raws = [json.dumps(r, ensure_ascii=False) for r in objs]
            chunk = _Chunk(cols, pa.nulls(len(objs), pa.int64()), page_raws.__getitem__, bad, invalid, len(fresh))
            good, rejects = _validate(spec, chunk, API_SOURCE, loaded_at)
            if spec is LISTINGS:
                skus.update(s for s in good["sku"].to_pylist() if s)
            if rejects:
                yield _to(QUARANTINE_TABLE, _quarantine_table(rejects, API_SOURCE, spec.kind, None, loaded_at))
            if good.num_rows:
                # re-index `_row` into the pending raw list
                good = good.set_column(good.schema.get_field_index("_row"), "_row",
                                       pc.add(good["_row"], len(raws)))
                raws.extend(page_raws)
                pending.append(good)
                pending_rows += good.num_rows
            if pending_rows >= batch_size:
                yield from flush()
        yield from flush()
        new_state[spec.kind] = {
            "last_value": _iso(last) if last is not None else None,
            "boundary": sorted(last_ids) if last is not None else [],
        }
    # only reached when both endpoints were read completely; committed with the load package
    state.update(new_state)


@dlt.source(name=SCHEMA_NAME, section="ecommerce_api")
def ecommerce_api(
    base_url: str = dlt.config.value,
    token: TSecretStrValue = dlt.secrets.value,
    page_size: int = 1000,
    timeout: float = 30.0,
    max_attempts: int = 5,
    backoff_factor: float = 1.0,
    max_retry_delay: float = 60.0,
    listings_path: str = "/api/v1/listings",
    order_lines_path: str = "/api/v1/order-lines",
    batch_size: int = DEFAULT_BATCH_SIZE,
    known_skus: Iterable[str] = (),
    is_newer: NewerCheck | None = None,
    loaded_at: dt.datetime | None = None,
) -> Any:
    """The platform API -> listings, order lines and quarantine, incrementally on updated_at.

    Config: `[sources.ecommerce_api]` base_url, page_size, timeout, max_attempts, backoff_factor
    in .dlt/config.toml; token in .dlt/secrets.toml (or SOURCES__ECOMMERCE_API__TOKEN).
    Raises FeedApiAuthError (401/403) or FeedApiUnavailableError during extraction."""
    client = make_api_client(base_url, token, timeout, max_attempts, backoff_factor, max_retry_delay)
    res = dlt.resource(_api_items, name=API_RESOURCE)(
        client,
        {LISTINGS.kind: listings_path, ORDER_LINES.kind: order_lines_path},
        page_size,
        set(known_skus or ()),
        is_newer,
        batch_size,
        loaded_at or _now(),
    )
    _declare_tables(res, with_files=False)
    return res


__all__ = [
    "API_RESOURCE", "API_SOURCE", "DEFAULT_BATCH_SIZE", "FILES_RESOURCE", "FILES_TABLE", "FeedApiAuthError",
    "FeedApiError", "FeedApiUnavailableError", "FeedFile", "FeedSpec", "LISTINGS", "LISTINGS_TABLE",
    "NewerCheck", "ORDER_LINES", "ORDER_LINES_TABLE", "QUARANTINE_TABLE", "SCHEMA_NAME", "classify_feed_file",
    "ecommerce_api", "ecommerce_files", "file_sha256", "make_api_client", "scan_feed_files",
]
