"""Load the platform's e-commerce feeds into the working DuckDB (dlt dataset `raw`).

`load_ecommerce(settings)` loads, in one call:
1. every feed file under `<inbox>/ecommerce/` not loaded before (same content hash = same file,
   skipped), archived byte for byte under `<warehouse>/raw_files/ecommerce/`;
2. then, when an API base URL is configured (Settings.feed_api_url / OCOP_FEED_API_URL, else
   `[sources.ecommerce_api] base_url` in .dlt/config.toml), the API increment since the last run.

Each is its own dlt load (extract -> normalize -> load). An API failure (401/403, 5xx or
timeouts left after the retries) is reported in `EcommerceLoadReport.api_status/api_error` and
does not raise: the files are loaded and the rest of the night goes on. File loading errors that
are not about the data (disk, bugs) do raise.

Sources are in flows/sources/ecommerce.py (tables and columns: docs/raw-contract.md).
"""
from __future__ import annotations

import ctypes
import functools
import gc
import logging
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import dlt
import pyarrow as pa
from dlt.pipeline.exceptions import PipelineStepFailed

from flows.config import Settings
from flows.pipeline import LOADER_FILE_FORMAT, connected_pipeline, finish_pending, native_connection
from flows.sources.ecommerce import (
    FILES_RESOURCE,
    FILES_TABLE,
    LISTINGS,
    LISTINGS_TABLE,
    ORDER_LINES,
    ORDER_LINES_TABLE,
    QUARANTINE_TABLE,
    SCHEMA_NAME,
    FeedApiAuthError,
    FeedApiError,
    FeedFile,
    ecommerce_api,
    ecommerce_files,
    scan_feed_files,
)

log = logging.getLogger(__name__)

API_NOT_CONFIGURED = "not_configured"
API_OK = "ok"
API_AUTH_FAILED = "auth_failed"
API_UNAVAILABLE = "unavailable"
API_FAILED = "failed"


@dataclass
class EcommerceLoadReport:
    files_loaded: list[str] = field(default_factory=list)  # names relative to <inbox>/ecommerce
    files_skipped: list[str] = field(default_factory=list)  # same content already loaded
    files_partial: list[str] = field(default_factory=list)  # unreadable midway (good part loaded)
    rows_loaded: dict[str, int] = field(default_factory=dict)  # table -> rows written this call
    quarantined: dict[str, int] = field(default_factory=dict)  # reason -> records (errors + warnings)
    warnings: dict[str, int] = field(default_factory=dict)  # reason -> records loaded but flagged
    api_status: str = API_NOT_CONFIGURED  # not_configured | ok | auth_failed | unavailable | failed
    api_error: str | None = None  # Vietnamese / English, never the token
    load_ids: list[str] = field(default_factory=list)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    @property
    def rejected_total(self) -> int:
        """Records not loaded (quarantined as errors)."""
        return self.quarantined_total - sum(self.warnings.values())

    @property
    def ok(self) -> bool:
        return self.api_status in (API_OK, API_NOT_CONFIGURED)

    def as_dict(self) -> dict:
        """JSON-able (Prefect results, run summary)."""
        return {
            "files_loaded": list(self.files_loaded), "files_skipped": list(self.files_skipped),
            "files_partial": list(self.files_partial), "rows_loaded": dict(self.rows_loaded),
            "quarantined": dict(self.quarantined), "warnings": dict(self.warnings),
            "quarantined_total": self.quarantined_total, "rejected_total": self.rejected_total,
            "api_status": self.api_status, "api_error": self.api_error, "load_ids": list(self.load_ids),
        }

    def summary(self) -> str:
        rows = ", ".join(f"{t}={n}" for t, n in sorted(self.rows_loaded.items())) or "none"
        q = ", ".join(f"{r}={n}" for r, n in sorted(self.quarantined.items())) or "none"
        api = self.api_status + (f" ({self.api_error})" if self.api_error else "")
        return (f"e-commerce: files loaded {len(self.files_loaded)}, skipped {len(self.files_skipped)}; "
                f"rows {rows}; quarantined {q}; api {api}")


class _StoredRows:
    """Read access to the stored raw tables during extraction (a dlt sql client on the
    destination): loaded file hashes, the catalogue's SKUs, and the newest-wins check."""

    def __init__(self, pipeline: dlt.Pipeline):
        self.pipeline = pipeline
        self._client: Any = None
        self._con: Any = None
        self._tables: set[str] = set()

    def __enter__(self) -> "_StoredRows":
        con = native_connection(self.pipeline)
        if con is not None:  # the pipeline's own connection: a cursor of it
            self._con = con.cursor()
            dataset = self.pipeline.dataset_name
        else:
            self._client = self.pipeline.sql_client(SCHEMA_NAME if SCHEMA_NAME in self.pipeline.schemas else None)
            self._client.open_connection()
            self._con = self._client.native_connection
            dataset = self._client.dataset_name
        self._dataset = dataset
        rows = self._con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [dataset]
        ).fetchall()
        self._tables = {r[0] for r in rows}
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._client is not None:
            self._client.close_connection()
        elif self._con is not None:
            self._con.close()
        self._client = self._con = None

    def _q(self, table: str) -> str:
        return f'"{self._dataset}"."{table}"'

    def has(self, table: str) -> bool:
        return table in self._tables

    def loaded_hashes(self) -> set[str]:
        if not self.has(FILES_TABLE):
            return set()
        return {r[0] for r in self._con.execute(f"select distinct content_hash from {self._q(FILES_TABLE)}").fetchall()}

    def known_skus(self) -> set[str]:
        if not self.has(LISTINGS_TABLE):
            return set()
        return {r[0] for r in self._con.execute(
            f"select distinct sku from {self._q(LISTINGS_TABLE)} where sku is not null").fetchall()}

    def is_newer(self, table: str, keys: pa.Table) -> pa.Array:
        """Mask of incoming rows whose updated_at is newer than the stored version (or new)."""
        if not self.has(table) or keys.num_rows == 0:
            return pa.repeat(pa.scalar(True), keys.num_rows)
        spec = LISTINGS if table == LISTINGS_TABLE else ORDER_LINES
        incoming = keys.append_column("_i", pa.array(range(keys.num_rows), pa.int64()))
        self._con.register("_ecommerce_incoming", incoming)
        try:
            on = " and ".join(f"s.{k} = i.{k}" for k in spec.merge_key)
            stale = self._con.execute(
                f"select i._i from _ecommerce_incoming i join {self._q(table)} s on {on} "
                "where s.updated_at >= i.updated_at"
            ).fetchall()
        finally:
            self._con.unregister("_ecommerce_incoming")
        mask = [True] * keys.num_rows
        for (i,) in stale:
            mask[i] = False
        return pa.array(mask)

    def is_empty(self, table: str) -> bool:
        """The table does not exist yet, or holds no row."""
        if not self.has(table):
            return True
        return self._con.execute(f"select count(*) from (select 1 from {self._q(table)} limit 1)").fetchone()[0] == 0

    def keep_newest(self, table: str) -> int:
        """Delete all but the newest version (updated_at, then load id) of each key; returns the
        rows deleted. What dlt's merge does within one load, for a load written with append. Of
        versions as new as each other, the line read last wins (files are read in name order):
        the rows' order in the table is DuckDB's, which appends from several threads."""
        if not self.has(table):
            return 0
        spec = LISTINGS if table == LISTINGS_TABLE else ORDER_LINES
        keys = ", ".join(spec.merge_key)
        on = " and ".join(f"d.{k} = t.{k}" for k in spec.merge_key)
        t = self._q(table)
        # usually every key is there once: as many distinct key hashes as rows proves it, and a
        # hash of one number per row counts faster than the keys themselves (10M lines: ~0.6 s, not ~1 s)
        hashes, rows = self._con.execute(f"select count(distinct hash({keys})), count(*) from {t}").fetchone()
        if hashes == rows:
            return 0
        return self._con.execute(
            f"delete from {t} where rowid in (select rowid from ("
            f"  select rowid, row_number() over (partition by {keys} order by updated_at desc nulls last, "
            f"         _dlt_load_id desc, source desc nulls last, source_line desc nulls last) as _n"
            f"  from {t} as t"
            f"  where exists (select 1 from (select {keys} from {t} group by all having count(*) > 1) as d where {on})"
            f") where _n > 1)"
        ).fetchone()[0]

    def quarantine_counts(self, load_ids: list[str]) -> list[tuple[str, str, int]]:
        if not load_ids or QUARANTINE_TABLE not in self._refresh_tables():
            return []
        marks = ", ".join("?" for _ in load_ids)
        return self._con.execute(
            f"select reason, severity, count(*) from {self._q(QUARANTINE_TABLE)} "
            f"where _dlt_load_id in ({marks}) group by all order by all", load_ids
        ).fetchall()

    def partial_files(self, load_ids: list[str]) -> list[str]:
        if not load_ids or FILES_TABLE not in self._refresh_tables():
            return []
        marks = ", ".join("?" for _ in load_ids)
        return [r[0] for r in self._con.execute(
            f"select source_file from {self._q(FILES_TABLE)} where status <> 'loaded' "
            f"and _dlt_load_id in ({marks}) order by 1", load_ids).fetchall()]

    def _refresh_tables(self) -> set[str]:
        rows = self._con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [self._dataset]
        ).fetchall()
        self._tables = {r[0] for r in rows}
        return self._tables


def api_settings(settings: Settings) -> tuple[str | None, str | None]:
    """(base_url, token): Settings (OCOP_FEED_API_URL / _TOKEN) first, then dlt config/secrets."""
    url = settings.feed_api_url or _dlt_value(dlt.config, "sources.ecommerce_api.base_url")
    token = settings.feed_api_token or _dlt_value(dlt.secrets, "sources.ecommerce_api.token")
    return (url or None), (token or None)


def _dlt_value(accessor: Any, key: str) -> str | None:
    try:
        value = accessor.get(key)
    except Exception:  # noqa: BLE001 - a broken or missing toml means "not configured"
        return None
    return str(value) if value else None


def _find_feed_error(exc: BaseException) -> FeedApiError | None:
    seen = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, FeedApiError):
            return e
        todo += [e.__cause__, e.__context__, getattr(e, "exception", None)]
    return None


def _archive(settings: Settings, f: FeedFile) -> None:
    target = settings.raw_files_dir / "ecommerce" / f"{f.content_hash[:16]}__{f.path.name}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(f.path, tmp)
        tmp.replace(target)


def _run(pipeline: dlt.Pipeline, source: Any, report: EcommerceLoadReport, stored: _StoredRows) -> list[str]:
    """extract (with the stored-rows connection open), then normalize + load (closed)."""
    with stored:
        extract_info = pipeline.extract(source, loader_file_format=LOADER_FILE_FORMAT)
    load_ids = list(extract_info.loads_ids)
    normalize_info = pipeline.normalize()
    pipeline.load()
    for table, n in normalize_info.row_counts.items():
        if not table.startswith("_dlt"):
            report.rows_loaded[table] = report.rows_loaded.get(table, 0) + n
    report.load_ids += load_ids
    return load_ids


def _loader_files(settings: Settings):
    """Where the source writes the order lines' loader file before dlt links it into the load
    package (beside dlt's folder: the same file system)."""
    return settings.work_dir / "loader-files"


def _dedup_marker(settings: Settings):
    return settings.work_dir / ".ecommerce-order-lines-dedup-pending"


def _first_load(settings: Settings, pipeline: dlt.Pipeline, source: Any, report: EcommerceLoadReport,
                stored: _StoredRows, in_key_order: list[bool] | None = None) -> list[str]:
    """The first load of order lines (the table is absent or empty): nothing stored can be replaced,
    so the lines are appended straight into the table instead of merged (dlt's merge writes every
    row twice, into a staging table and then, de-duplicated, into the table: the initial load of
    millions of lines takes about twice as long). Within the load the newest version of a line
    wins, as with merge: the older versions of keys sent more than once are deleted right after
    the load, unless the source wrote every line with a key greater than the one before it
    (`in_key_order` == [True], filled in during the load: no key can be there twice, and the
    table need not be searched). A marker file makes a crash between the two steps finish the job
    on the next call."""
    source.resources[FILES_RESOURCE].apply_hints(  # the resource's own table (see _declare_tables)
        table_name=ORDER_LINES_TABLE, write_disposition="append",
        columns={"updated_at": {"dedup_sort": None}})  # a merge hint: dlt would warn it is ignored
    marker = _dedup_marker(settings)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    load_ids = _run(pipeline, source, report, stored)
    removed = 0
    if in_key_order != [True]:
        with stored:
            stored._refresh_tables()
            removed = stored.keep_newest(ORDER_LINES_TABLE)
    marker.unlink()
    if removed:
        log.info("ecommerce: first load: %d older versions of order lines sent twice removed", removed)
    return load_ids


def load_ecommerce(settings: Settings, pipeline: dlt.Pipeline | None = None,
                   batch_size: int | None = None, api_options: dict | None = None) -> EcommerceLoadReport:
    """Load new feed files, then the API increment. See the module doc.

    `batch_size`: Arrow rows per batch (default 100k). `api_options`: extra arguments for the
    `ecommerce_api` source (page_size, timeout, max_attempts, backoff_factor, ...); unset ones
    come from `[sources.ecommerce_api]` in .dlt/config.toml or the source defaults."""
    _malloc_keeps_freed_blocks()
    with _heap_left_alone():
        if pipeline is None:
            with connected_pipeline(settings) as pipeline:
                return _load_ecommerce(settings, pipeline, batch_size, api_options)
        return _load_ecommerce(settings, pipeline, batch_size, api_options)


_M_TOP_PAD, _M_MMAP_THRESHOLD = -2, -3  # glibc's mallopt parameters (malloc.h)


@functools.cache
def _malloc_keeps_freed_blocks() -> bool:
    """glibc's malloc keeps the blocks of tens of MB a load makes and frees (inflated text, parsed
    chunks, Arrow columns) for the next ones, instead of handing each back to the system and
    page-faulting the next one in, zeroed, page by page.

    By default glibc maps a block that large on its own and unmaps it when freed, and trims the top
    of the heap as soon as 128 KB are free there. Here blocks up to 32 MB come from the heap, and
    its top keeps a pad of 64 MB. A 1M-line load: ~55k fewer page faults, ~0.2 CPU-s less in the
    kernel, ~0.06-0.1 s less wall time; the load's peak RSS +30-80 MB at 1M, ~+230 MB at 10M
    (bench/README, seventh round).

    For the whole process, from the first load on (glibc has no way back, and needs none). Not
    glibc (macOS, musl): nothing happens, False."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(_M_TOP_PAD, 64 << 20))
    except (OSError, AttributeError):
        return False


@contextmanager
def _heap_left_alone() -> Iterator[None]:
    """Python's cycle collector leaves the objects alive before the load alone during it.

    A load makes objects by the million (Arrow tables, chunks, dlt's items), so the collector runs
    often, and each full collection goes through every object of the process: the imported
    modules (~144k objects for a load alone, ~640k in a night's process), each time, holding
    the GIL that the parsing threads need. Frozen (`gc.freeze`), they are not looked at; the load's
    own garbage is collected as before. ~0.1 s of a 1M-line load. Unfrozen afterwards, unless the
    process had frozen objects before (a night freezes what its start-up loaded: flows/cli.py)."""
    frozen_before = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()


def _load_ecommerce(settings: Settings, pipeline: dlt.Pipeline, batch_size: int | None,
                    api_options: dict | None) -> EcommerceLoadReport:
    finish_pending(pipeline)
    # a loader file a killed load left (a package it reached holds a link of its own)
    shutil.rmtree(_loader_files(settings), ignore_errors=True)
    report = EcommerceLoadReport()
    stored = _StoredRows(pipeline)
    extra = {"batch_size": batch_size} if batch_size else {}
    load_ids: list[str] = []

    # a first load written with append whose duplicates a crash left in place (see _first_load)
    pending = _dedup_marker(settings)
    if pending.exists():
        with stored:
            stored.keep_newest(ORDER_LINES_TABLE)
        pending.unlink()

    # ---- 1. files --------------------------------------------------------------------------
    files = scan_feed_files(settings.ecommerce_inbox)
    if files:
        with stored:
            loaded = stored.loaded_hashes()
            known = stored.known_skus()
            first_load = stored.is_empty(ORDER_LINES_TABLE)
        new: list[FeedFile] = []
        for f in files:
            if f.content_hash in loaded:
                report.files_skipped.append(f.name)
            else:
                loaded.add(f.content_hash)  # the same content twice in one inbox: once
                new.append(f)
        if new:
            for f in new:
                _archive(settings, f)
            in_key_order: list[bool] = []  # the source says it once it has written the order lines
            source = ecommerce_files(new, known_skus=known, is_newer=stored.is_newer,
                                     scratch_dir=str(_loader_files(settings)), keys_checked=in_key_order.append,
                                     **extra)
            if first_load:
                load_ids += _first_load(settings, pipeline, source, report, stored, in_key_order)
            else:
                load_ids += _run(pipeline, source, report, stored)
            report.files_loaded = [f.name for f in new]

    # ---- 2. the API ------------------------------------------------------------------------
    url, token = api_settings(settings)
    if url:
        if not token:
            report.api_status = API_AUTH_FAILED
            report.api_error = str(FeedApiAuthError(None, url))
        else:
            with stored:
                known = stored.known_skus()
            source = ecommerce_api(base_url=url, token=token, known_skus=known, is_newer=stored.is_newer,
                                   **extra, **(api_options or {}))
            try:
                load_ids += _run(pipeline, source, report, stored)
                report.api_status = API_OK
            except PipelineStepFailed as e:
                if e.step != "extract":
                    raise  # the data was read: a failed load is not an API problem
                err = _find_feed_error(e)
                if err is None:
                    report.api_status = API_FAILED
                    report.api_error = f"{type(e).__name__}: {e}".replace(token, "***")
                else:
                    report.api_status = API_AUTH_FAILED if isinstance(err, FeedApiAuthError) else API_UNAVAILABLE
                    report.api_error = str(err)
                log.error("e-commerce API source stopped: %s", report.api_error)

    # ---- report ----------------------------------------------------------------------------
    if load_ids:
        with stored:
            for reason, severity, n in stored.quarantine_counts(load_ids):
                report.quarantined[reason] = report.quarantined.get(reason, 0) + n
                if severity == "warning":
                    report.warnings[reason] = report.warnings.get(reason, 0) + n
            report.files_partial = stored.partial_files(load_ids)
    log.info(report.summary())
    return report


__all__ = ["EcommerceLoadReport", "api_settings", "load_ecommerce"]
