"""A small stand-in for the provincial e-commerce platform, for tests and the demo.

Standard-library HTTP server on 127.0.0.1 with an ephemeral port, serving generated data:

    GET /api/v1/listings      GET /api/v1/order-lines
        Authorization: Bearer <token>          (401 otherwise)
        page_size=N (max 1000)                 page=P (1-based)  or  cursor=<next_cursor>
        updated_since=<ISO 8601>               inclusive: updated_at >= updated_since

    -> {"data": [...], "page": P, "page_size": N, "total": T, "total_pages": K,
        "next_cursor": "..." | null}

Records are ordered by (updated_at, key); the cursor is a keyset cursor after the last record
of the page, so records changed while a client pages are seen again at the end, never skipped.

    with PlatformServer(n_listings=50, n_order_lines=500) as platform:
        platform.url, platform.token
        platform.update_order_line("DH0000001", 1, status="returned")   # bumps updated_at
        platform.fail_next(2)            # next 2 requests answer 500
        platform.delay_next(1, 2.0)      # next request answers after 2 s (client timeouts)
        platform.force_status(401)       # every request answers 401 until force_status(None)

Also: generators for catalogue and order lines, feed-file writers (JSON Lines / CSV, gzip) and
the expected figures (`completed_revenue`) for tests and the demo inbox.
"""
from __future__ import annotations

import base64
import csv
import datetime as dt
import gzip
import io
import json
import random
import threading
import time
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

VN = dt.timezone(dt.timedelta(hours=7))
DEFAULT_TOKEN = "ocop-platform-test-token"
DEFAULT_START = dt.datetime(2024, 12, 1, 8, 0, 0, tzinfo=VN)
MAX_PAGE_SIZE = 1000

LISTING_FIELDS = ("listing_id", "sku", "ma_san_pham", "title", "price_vnd", "status", "listed_at", "updated_at")
ORDER_LINE_FIELDS = (
    "order_id", "line_no", "ordered_at", "sku", "qty", "unit_price_vnd", "discount_vnd", "channel",
    "status", "buyer_province", "updated_at",
)

_PRODUCTS = [
    "Tỏi Lý Sơn", "Mạch nha Thi Phổ", "Kẹo gương Quảng Ngãi", "Đường phèn Bình Sơn", "Quế Trà Bồng",
    "Chè xanh Minh Long", "Rượu Bàu Đá", "Cá bống sông Trà", "Nước mắm Sa Huỳnh", "Bánh tráng Đại Lộc",
    "Mật ong rừng Ba Tơ", "Hành tím Lý Sơn", "Dầu quế Trà Bồng", "Gạo lúa ma Sơn Hà", "Tinh dầu tràm",
]
_PROVINCES = ["Quảng Ngãi", "Hà Nội", "TP. Hồ Chí Minh", "Đà Nẵng", "Bình Định", "Kon Tum", "Quảng Nam"]
_CHANNELS = ["web", "app", "zalo", "livestream"]


def iso(d: dt.datetime) -> str:
    """ISO 8601 with the Vietnam offset, as the platform sends timestamps."""
    return d.astimezone(VN).isoformat()


def _parse_ts(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        d = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=VN)


def _sort_ts(d: dt.datetime) -> str:
    return d.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------------------------
# Generated data
# --------------------------------------------------------------------------------------------
def generate_listings(n: int, seed: int = 2024, start: dt.datetime = DEFAULT_START) -> list[dict]:
    rnd = random.Random(seed)
    out = []
    for i in range(1, n + 1):
        status = rnd.choices(["active", "delisted", "draft"], [90, 7, 3])[0]
        listed = start - dt.timedelta(days=rnd.randint(30, 700), minutes=rnd.randint(0, 1440))
        out.append({
            "listing_id": f"L{i:05d}",
            "sku": f"SKU-{i:05d}",
            "ma_san_pham": f"QNG-{(i - 1) % 191 + 1:03d}" if i % 11 else None,
            "title": f"{_PRODUCTS[i % len(_PRODUCTS)]} loại {1 + i % 3}",
            "price_vnd": rnd.randint(30, 900) * 1000,
            "status": status,
            "listed_at": iso(listed),
            "updated_at": iso(start - dt.timedelta(days=20) + dt.timedelta(seconds=i)),
        })
    return out


def generate_order_lines(n: int, listings: Sequence[dict], seed: int = 2024,
                         start: dt.datetime = DEFAULT_START, first_order: int = 1) -> list[dict]:
    """`n` order lines (1-3 lines per order) over the given catalogue; updated_at ascending."""
    rnd = random.Random(seed)
    prices = [(li["sku"], li["price_vnd"]) for li in listings] or [("SKU-00001", 100_000)]
    out: list[dict] = []
    order = first_order
    base = start - dt.timedelta(days=60)
    while len(out) < n:
        ordered = base + dt.timedelta(seconds=rnd.randint(0, 59 * 86400))
        for line_no in range(1, rnd.randint(1, 3) + 1):
            if len(out) >= n:
                break
            sku, price = prices[rnd.randrange(len(prices))]
            qty = rnd.randint(1, 5)
            out.append({
                "order_id": f"DH{order:07d}",
                "line_no": line_no,
                "ordered_at": iso(ordered),
                "sku": sku,
                "qty": qty,
                "unit_price_vnd": price,
                "discount_vnd": rnd.choice([0, 0, 0, 5000, 10000]) if qty * price > 10000 else 0,
                "channel": rnd.choice(_CHANNELS),
                "status": rnd.choices(["completed", "cancelled", "returned"], [85, 10, 5])[0],
                "buyer_province": rnd.choice(_PROVINCES),
                "updated_at": None,
            })
        order += 1
    t0 = start - dt.timedelta(days=10)
    for i, rec in enumerate(out):
        rec["updated_at"] = iso(t0 + dt.timedelta(seconds=i))
    return out


def completed_revenue(order_lines: Iterable[dict]) -> int:
    """Revenue = qty x unit price - discount over completed lines, newest version of each line."""
    newest: dict[tuple, dict] = {}
    for rec in order_lines:
        key = (rec["order_id"], rec["line_no"])
        if key not in newest or _parse_ts(rec["updated_at"]) >= _parse_ts(newest[key]["updated_at"]):
            newest[key] = rec
    return sum(r["qty"] * r["unit_price_vnd"] - (r.get("discount_vnd") or 0)
               for r in newest.values() if r["status"] == "completed")


def write_jsonl(path: Path | str, records: Iterable[dict], compress: bool | None = None) -> Path:
    """JSON Lines, gzip when `compress` (default: when the name ends with .gz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compress = path.name.endswith(".gz") if compress is None else compress
    opener = gzip.open if compress else open
    with opener(path, "wt", encoding="utf-8", newline="\n") as fh:  # type: ignore[operator]
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


def write_csv(path: Path | str, records: Sequence[dict], fields: Sequence[str] | None = None,
              compress: bool | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compress = path.name.endswith(".gz") if compress is None else compress
    fields = list(fields or (records[0].keys() if records else ()))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for rec in records:
        writer.writerow({k: ("" if rec.get(k) is None else rec.get(k)) for k in fields})
    data = buf.getvalue().encode("utf-8")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------
class _Collection:
    """Records of one endpoint, kept sorted by (updated_at, key) lazily."""

    def __init__(self, key_fields: tuple[str, ...]):
        self.key_fields = key_fields
        self.records: dict[str, dict] = {}
        self._sorted: list[tuple[tuple, dict]] | None = None
        self._raw_seq = 0

    def key_of(self, rec: dict) -> str:
        parts = [rec.get(k) for k in self.key_fields]
        if any(p is None for p in parts):
            self._raw_seq += 1
            return f"~raw{self._raw_seq:09d}"
        return "\x1f".join(f"{p:012d}" if isinstance(p, int) else str(p) for p in parts)

    def put(self, rec: dict, key: str | None = None) -> dict:
        self.records[key or self.key_of(rec)] = rec
        self._sorted = None
        return rec

    def ordered(self) -> list[tuple[tuple, dict]]:
        if self._sorted is None:
            epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
            items = []
            for k, rec in self.records.items():
                ts = (_parse_ts(rec.get("updated_at")) if isinstance(rec, dict) else None) or epoch
                items.append(((_sort_ts(ts), k), rec))
            items.sort(key=lambda x: x[0])
            self._sorted = items
        return self._sorted


class PlatformServer:
    """The platform's HTTP API over in-memory generated data. A context manager."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, n_listings: int = 0, n_order_lines: int = 0,
                 seed: int = 2024, start: dt.datetime = DEFAULT_START, host: str = "127.0.0.1",
                 port: int = 0, max_page_size: int = MAX_PAGE_SIZE):
        self.token = token
        self.host, self.port = host, port
        self.max_page_size = max_page_size
        self.listings = _Collection(("listing_id",))
        self.order_lines = _Collection(("order_id", "line_no"))
        self._clock = start
        self._lock = threading.RLock()
        self._fail: list[int] = []  # statuses for the next requests
        self._delay: list[float] = []
        self._forced: int | None = None
        self.requests: list[dict] = []  # method, path, params, status (never headers)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if n_listings or n_order_lines:
            self.generate(n_listings, n_order_lines, seed)

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "PlatformServer":
        if self._httpd is None:
            handler = type("_Handler", (_Handler,), {"platform": self})
            self._httpd = _QuietServer((self.host, self.port), handler)
            self._httpd.daemon_threads = True
            self.port = self._httpd.server_address[1]
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="platform-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "PlatformServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---- data ----------------------------------------------------------------------------------
    def tick(self) -> str:
        """The platform clock: every change is one second after the previous one."""
        with self._lock:
            self._clock += dt.timedelta(seconds=1)
            return iso(self._clock)

    def generate(self, n_listings: int, n_order_lines: int, seed: int = 2024) -> None:
        with self._lock:
            listings = generate_listings(n_listings, seed, self._clock)
            for rec in listings:
                self.listings.put(rec)
            lines = generate_order_lines(n_order_lines, listings, seed, self._clock,
                                         first_order=len(self.order_lines.records) + 1)
            for rec in lines:
                self.order_lines.put(rec)
            newest = max([_parse_ts(r["updated_at"]) for r in listings + lines] + [self._clock])
            self._clock = newest

    def add_listing(self, **fields: Any) -> dict:
        with self._lock:
            rec = {f: fields.get(f) for f in LISTING_FIELDS} | fields
            rec.setdefault("listed_at", iso(self._clock))
            if "updated_at" not in fields:
                rec["updated_at"] = self.tick()
            return self.listings.put(rec)

    def add_order_line(self, **fields: Any) -> dict:
        with self._lock:
            rec = {"discount_vnd": 0, "channel": "web", "buyer_province": "Quảng Ngãi", "status": "completed",
                   "ordered_at": iso(self._clock)} | fields
            rec = {f: rec.get(f) for f in ORDER_LINE_FIELDS} | rec
            if "updated_at" not in fields:
                rec["updated_at"] = self.tick()
            return self.order_lines.put(rec)

    def add_raw(self, endpoint: str, record: Any) -> None:
        """Serve `record` as is (bad records for quarantine tests)."""
        coll = self.listings if endpoint == "listings" else self.order_lines
        with self._lock:
            coll._raw_seq += 1
            coll.put(record, key=f"~raw{coll._raw_seq:09d}")

    def update_listing(self, listing_id: str, **changes: Any) -> dict:
        with self._lock:
            rec = dict(self.listings.records[listing_id]) | changes
            rec["updated_at"] = changes.get("updated_at") or self.tick()
            return self.listings.put(rec, key=listing_id)

    def update_order_line(self, order_id: str, line_no: int, **changes: Any) -> dict:
        with self._lock:
            key = self.order_lines.key_of({"order_id": order_id, "line_no": line_no})
            rec = dict(self.order_lines.records[key]) | changes
            rec["updated_at"] = changes.get("updated_at") or self.tick()
            return self.order_lines.put(rec, key=key)

    def all_listings(self) -> list[dict]:
        return [r for _, r in self.listings.ordered()]

    def all_order_lines(self) -> list[dict]:
        return [r for _, r in self.order_lines.ordered()]

    # ---- faults --------------------------------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 500) -> None:
        with self._lock:
            self._fail.extend([status] * n)

    def delay_next(self, n: int = 1, seconds: float = 1.0) -> None:
        with self._lock:
            self._delay.extend([seconds] * n)

    def force_status(self, status: int | None) -> None:
        """Answer every request with `status` (e.g. 401 or 403) until called with None."""
        self._forced = status

    def clear_faults(self) -> None:
        with self._lock:
            self._fail.clear()
            self._delay.clear()
            self._forced = None

    # ---- serving -------------------------------------------------------------------------------
    def _respond(self, path: str, query: dict[str, list[str]], auth: str | None) -> tuple[int, dict]:
        with self._lock:
            delay = self._delay.pop(0) if self._delay else 0.0
            fail = self._fail.pop(0) if self._fail else None
            forced = self._forced
        if delay:
            time.sleep(delay)
        if forced is not None:
            return forced, {"error": HTTPStatus(forced).phrase}
        if fail is not None:
            return fail, {"error": "injected fault"}
        if auth != f"Bearer {self.token}":
            return 401, {"error": "unauthorized"}
        coll = {"/api/v1/listings": self.listings, "/api/v1/order-lines": self.order_lines}.get(path.rstrip("/"))
        if coll is None:
            return 404, {"error": "not found"}
        q = {k: v[-1] for k, v in query.items()}
        try:
            size = max(1, min(int(q.get("page_size", 100)), self.max_page_size))
            page = int(q.get("page", 1))
            since = None
            if q.get("updated_since"):
                since = _parse_ts(q["updated_since"])
                if since is None:
                    raise ValueError("updated_since")
            after = None
            if q.get("cursor"):
                after = tuple(json.loads(base64.urlsafe_b64decode(q["cursor"].encode())))
        except (ValueError, TypeError):
            return 400, {"error": "bad request"}
        with self._lock:
            items = coll.ordered()
            if since is not None:
                bound = _sort_ts(since)
                items = [it for it in items if it[0][0] >= bound]
            total = len(items)
            if after is not None:
                rest = [it for it in items if it[0] > after]
                window = rest[:size]
                more = len(rest) > size
                page = (total - len(rest)) // size + 1
            else:
                start = (page - 1) * size
                window = items[start:start + size]
                more = start + size < total
        next_cursor = None
        if more and window:
            next_cursor = base64.urlsafe_b64encode(json.dumps(list(window[-1][0])).encode()).decode()
        return 200, {
            "data": [rec for _, rec in window],
            "page": page,
            "page_size": size,
            "total": total,
            "total_pages": (total + size - 1) // size,
            "next_cursor": next_cursor,
        }


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are part of the tests


class _Handler(BaseHTTPRequestHandler):
    platform: PlatformServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        status, body = self.platform._respond(parts.path, query, self.headers.get("Authorization"))
        self.platform.requests.append({"method": "GET", "path": parts.path,
                                       "params": {k: v[-1] for k, v in query.items()}, "status": status})
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="ocop-platform"')
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass

    def log_message(self, format: str, *args: Any) -> None:  # quiet; never log headers
        pass


__all__ = [
    "DEFAULT_TOKEN", "PlatformServer", "completed_revenue", "generate_listings", "generate_order_lines", "iso",
    "write_csv", "write_jsonl",
]
