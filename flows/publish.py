"""Write-audit-publish: the validated marts become the published database in one rename.

The night builds and audits everything in the working database (`warehouse/work/`). Only after
both gates have passed does `publish()` run:

1. **write** the marts into a new, complete publication `warehouse/publications/<run_id>.duckdb`
   (plus `meta.publication`: run id, time, as-of date), and its Parquet exports into
   `warehouse/publications/<run_id>.exports/`;
2. copy that file beside the published one (`warehouse/.ocop.duckdb.<run_id>.tmp`), flush it;
3. **swap**: `os.replace` it over `warehouse/ocop.duckdb` (one atomic rename on POSIX), then switch
   the `warehouse/exports` symlink to the new exports folder (another atomic rename);
4. record the publication (`<run_id>.json` manifest, `history.jsonl`) and keep the newest
   `Settings.keep_publications` (5) publications for `ocop rollback`.

A night's publication is built from the previous one when it can: the previous publication's
file is copied, the small marts are replaced, and of the incremental marts (`INCREMENTAL_MARTS`:
`fct_order_line`) only the rows dbt (re)wrote since that publication are applied by key; the
Parquet export of such a mart is one file per month, and the months nobody changed are hard links
to the previous export's files. So a night's publish costs what the night changed, not the
history. Without a usable previous publication, when the rows to apply are a large part of the
table (a full refresh), or every `REWRITE_EVERY`th publication (to keep the file compact), the
publication is written whole. Either way it is checked to hold as many rows as the working marts.

A reader that opened the old file keeps reading the old file (its inode); one that opens after
the rename gets the new one; nobody ever sees a mix. Export folders are never modified after
they are written, so a reader that resolved `warehouse/exports` once reads one night's complete
set. The database and the exports are switched by two renames a few microseconds apart: a
consumer that needs both to belong to the same night compares `meta.publication.run_id` with
`exports/publication.json`. A night killed at any point leaves the published database as it
was, or (killed after the swap) completely replaced; `recover()` (run at the start of every
night and of every rollback) removes what a killed publish left behind and finishes a
publication whose swap happened but whose bookkeeping did not.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from flows.files import file_sha256
from flows.config import MARTS_SCHEMA, RAW_DATASET, Settings

MANIFEST_SUFFIX = ".json"
EXPORTS_SUFFIX = ".exports"
DB_SUFFIX = ".duckdb"
HISTORY_FILE = "history.jsonl"
EXPORTS_MANIFEST = "publication.json"
_DBT_SCRATCH = re.compile(r"__dbt_(tmp|backup)$")  # relations a killed dbt run can leave behind


@dataclass(frozen=True)
class IncrementalMart:
    """A mart dbt builds incrementally: its rows are never deleted, only (re)written by key, and
    each row says when dbt wrote it."""
    key: tuple[str, ...]
    written_at: str    # the timestamp dbt sets on every row it (re)writes
    month_of: str      # the date column its Parquet export is split by (one file per month)


INCREMENTAL_MARTS = {
    "fct_order_line": IncrementalMart(key=("order_id", "line_no"), written_at="dbt_loaded_at", month_of="order_date"),
}
REWRITE_EVERY = 7        # a week of publications built from the previous one, then one written whole: deleted
                         # rows and small row groups make a file built that way grow ~1 MB a night at 1M lines
DELTA_LIMIT = 0.25       # more rows than this share of the table to apply: the mart is copied whole
UNKNOWN_MONTH = "unknown"  # the export partition of rows without a date


class PublishCheckFailed(RuntimeError):
    """A publication does not hold what the working marts hold: nothing is published."""


class RollbackError(RuntimeError):
    pass


class AlreadyRunning(RuntimeError):
    """Another night (or rollback) holds the warehouse."""


# ------------------------------------------------------------------------------------------ the warehouse lock

_HELD_LOCKS: dict[str, int] = {}


@contextlib.contextmanager
def run_lock(settings: Settings, holder: str = "ocop run"):
    """One night (or rollback) at a time per warehouse: a second one exits at once.

    An flock on warehouse/.ocop-run.lock: the kernel releases it when the holder dies, even by
    SIGKILL, so a killed night never blocks the next. Re-entrant within a process (`ocop run`
    takes it before starting the flow, the flow takes it again when served as a deployment)."""
    key = str(settings.lock_file)
    if _HELD_LOCKS.get(key):
        _HELD_LOCKS[key] += 1
        try:
            yield
        finally:
            _HELD_LOCKS[key] -= 1
        return
    settings.warehouse.mkdir(parents=True, exist_ok=True)
    fh = open(settings.lock_file, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        who = fh.read().strip() or "another process"
        fh.close()
        raise AlreadyRunning(f"another ocop process holds {settings.lock_file} ({who}); "
                             "this one stops without touching anything") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{holder}, pid {os.getpid()}, since {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC\n")
    fh.flush()
    _HELD_LOCKS[key] = 1
    try:
        yield
    finally:
        del _HELD_LOCKS[key]
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


@dataclass
class Publication:
    path: Path
    tables: list[str]
    rows: dict[str, int]
    published_at: dt.datetime
    run_id: str = ""
    as_of: dt.date | None = None
    archive: Path | None = None
    exports: Path | None = None
    seconds: float = 0.0                                  # write + swap, wall clock
    swap_seconds: float = 0.0                             # the renames alone
    recovered: list[str] = field(default_factory=list)    # what recover() cleaned up first


# ------------------------------------------------------------------------------------------ helpers

def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    _fsync(tmp)
    os.replace(tmp, path)


def _append_history(settings: Settings, event: dict) -> None:
    settings.publications_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"at": _now().isoformat(), **event}, ensure_ascii=False, default=str)
    with open(settings.publications_dir / HISTORY_FILE, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _copy_beside(src: Path, target: Path, tag: str) -> Path:
    """A flushed copy of `src` in the folder of `target`, ready to be renamed over it."""
    tmp = target.with_name(f".{target.name}.{tag}.tmp")
    tmp.unlink(missing_ok=True)
    shutil.copyfile(src, tmp)
    _fsync(tmp)
    return tmp


def mart_tables(con: duckdb.DuckDBPyConnection, database: str) -> list[str]:
    """The marts to publish: every base table in the marts schema, except dbt's scratch relations."""
    return [r[0] for r in con.execute(
        "select table_name from duckdb_tables() where database_name = ? and schema_name = ? order by 1",
        [database, MARTS_SCHEMA]).fetchall() if not _DBT_SCRATCH.search(r[0])]


def raw_watermark(settings: Settings) -> str | None:
    """What raw held when the marts were built: the count and newest id of completed dlt loads.

    The night compares it with the last publication's to know whether anything loaded since (by
    this night or by a killed one) still has to reach the published database."""
    if not settings.work_db.exists():
        return None
    try:
        con = duckdb.connect(str(settings.work_db), read_only=True)
    except duckdb.Error:
        return None
    try:
        n, newest = con.execute(f"select count(*), max(load_id) from {RAW_DATASET}._dlt_loads where status = 0").fetchone()
        return f"{n}:{newest}"
    except duckdb.Error:
        return None
    finally:
        con.close()


# ------------------------------------------------------------------------------------------ paths

def _db_path(settings: Settings, run_id: str) -> Path:
    return settings.publications_dir / f"{run_id}{DB_SUFFIX}"


def _exports_path(settings: Settings, run_id: str) -> Path:
    return settings.publications_dir / f"{run_id}{EXPORTS_SUFFIX}"


def _manifest_path(settings: Settings, run_id: str) -> Path:
    return settings.publications_dir / f"{run_id}{MANIFEST_SUFFIX}"


def publications(settings: Settings) -> list[dict]:
    """Complete publications kept on disk (those with a manifest), oldest first."""
    out = []
    if not settings.publications_dir.exists():
        return out
    for m in settings.publications_dir.glob(f"*{MANIFEST_SUFFIX}"):
        if m.name.startswith("."):
            continue
        try:
            data = json.loads(m.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if _db_path(settings, data.get("run_id", "")).exists():
            out.append(data)
    return sorted(out, key=lambda d: (d.get("first_published_at") or "", d["run_id"]))


def history(settings: Settings) -> list[dict]:
    """Every swap of the published database (publish, rollback, recovery), oldest first."""
    path = settings.publications_dir / HISTORY_FILE
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a kill
    return events


def read_publication_meta(db: Path) -> dict | None:
    """meta.publication of a published file (run_id, published_at, as_of_date), or None."""
    if not db.exists():
        return None
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return None
    try:
        row = con.execute("select run_id, published_at, as_of_date from meta.publication").fetchone()
        return {"run_id": row[0], "published_at": row[1], "as_of_date": row[2]} if row else None
    except duckdb.Error:
        return None
    finally:
        con.close()


def current_run_id(settings: Settings) -> str | None:
    meta = read_publication_meta(settings.published_db)
    return meta["run_id"] if meta else None


def exports_target(settings: Settings) -> Path | None:
    """The publication folder `warehouse/exports` points at (None when it is not a symlink)."""
    link = settings.exports_dir
    if not link.is_symlink():
        return None
    return (link.parent / os.readlink(link)).resolve()


def _point_exports(settings: Settings, folder: Path) -> None:
    """Switch `warehouse/exports` to `folder` with one rename of a symlink."""
    link = settings.exports_dir
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.tmp")
    os.symlink(os.path.relpath(folder, link.parent), tmp, target_is_directory=True)
    if link.exists() and not link.is_symlink():
        # exports/ from before publications existed: a real folder cannot be renamed over; move it aside once
        os.replace(link, settings.publications_dir / f"legacy-exports-{_now():%Y%m%dT%H%M%S}")
    os.replace(tmp, link)


# ------------------------------------------------------------------------------------------ write

PUBLISHED_STORAGE_VERSION = "v1.1.0"


def _base_for_increments(settings: Settings, source: Path) -> dict | None:
    """The manifest of the publication in use, when tonight's can be built from it (see module doc)."""
    if source != settings.work_db:
        return None
    current = current_run_id(settings)
    if not current or not _db_path(settings, current).exists():
        return None
    try:
        manifest = json.loads(_manifest_path(settings, current).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    increments = manifest.get("increments") or {}
    if not increments or manifest.get("generation", 0) + 1 >= REWRITE_EVERY:
        return None
    return manifest


def _watermark(base: dict | None, table: str) -> str | None:
    """Incremental mart `table`'s watermark in the publication manifest `base`, if any."""
    return ((base or {}).get("increments") or {}).get(table, {}).get("watermark")


def incremental_since(settings: Settings, table: str, work: duckdb.DuckDBPyConnection) -> str | None:
    """The watermark after which tonight's publication will take incremental mart `table`'s rows
    from the working marts `work` (the older ones it keeps from the publication it is built from);
    None when it will copy the table whole. The marts gate checks the rows it will take."""
    base = _base_for_increments(settings, settings.work_db)
    since = _watermark(base, table)
    if since is None:
        return None
    spec = INCREMENTAL_MARTS[table]
    con = duckdb.connect(str(_db_path(settings, base["run_id"])), read_only=True)
    try:
        base_columns = _columns(con, con.execute("select current_database()").fetchone()[0], table)
    finally:
        con.close()
    if base_columns != _columns(work, work.execute("select current_database()").fetchone()[0], table):
        return None
    n = work.execute(f"select count(*) from {MARTS_SCHEMA}.{table} where {spec.written_at} > ?::timestamptz",
                     [since]).fetchone()[0]
    total = work.execute(f"select count(*) from {MARTS_SCHEMA}.{table}").fetchone()[0]
    return since if n <= DELTA_LIMIT * total else None


def _month_expr(column: str) -> str:
    return f"coalesce(strftime({column}, '%Y-%m'), '{UNKNOWN_MONTH}')"


def _columns(con: duckdb.DuckDBPyConnection, database: str, table: str) -> list[tuple[str, str]]:
    return [tuple(r) for r in con.execute(
        "select column_name, data_type from duckdb_columns() where database_name = ? and schema_name = ? "
        "and table_name = ? order by column_index", [database, MARTS_SCHEMA, table]).fetchall()]


def _apply_increment(con: duckdb.DuckDBPyConnection, table: str, spec: IncrementalMart, since: str,
                     total: int) -> dict | None:
    """Apply the rows of work.marts.<table> written after `since` to marts.<table> by key.

    Returns what changed ({"rows", "months"}), or None when that is too much (copy it whole)."""
    work = f"work.{MARTS_SCHEMA}.{table}"
    con.execute(f"create temp table publish_delta as select * from {work} where {spec.written_at} > ?::timestamptz",
                [since])
    try:
        n = con.execute("select count(*) from publish_delta").fetchone()[0]
        if n > DELTA_LIMIT * total:
            return None
        keys = ", ".join(spec.key)
        on = " and ".join(f"t.{k} = d.{k}" for k in spec.key)
        # the months whose export changes: of the new rows, and of the rows they replace
        months = {r[0] for r in con.execute(
            f"select distinct {_month_expr(spec.month_of)} from publish_delta "
            f"union select distinct {_month_expr('t.' + spec.month_of)} from {MARTS_SCHEMA}.{table} t "
            f"semi join publish_delta d on {on}").fetchall()}
        con.execute(f"delete from {MARTS_SCHEMA}.{table} t using (select {keys} from publish_delta) d where {on}")
        con.execute(f"insert into {MARTS_SCHEMA}.{table} by name select * from publish_delta")
        return {"rows": n, "months": sorted(months)}
    finally:
        con.execute("drop table publish_delta")


def _write_database(settings: Settings, source: Path, dest: Path, run_id: str, as_of: dt.date,
                    published_at: dt.datetime, base: dict | None = None) -> tuple[list[str], dict[str, int], dict]:
    """Write the publication `dest`: from the previous publication `base` (a manifest) and the
    rows changed since, or whole. Returns (tables, rows, increments) - increments say, per
    incremental mart, its watermark and what changed (`months` None: written whole)."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    if base is not None:
        shutil.copyfile(_db_path(settings, base["run_id"]), tmp)
        con = duckdb.connect(str(tmp))  # keeps the base's storage format
    else:
        # written in a storage format that DuckDB >= 1.1 reads: BI tools bundle older DuckDB drivers
        con = duckdb.connect(str(tmp), config={"storage_compatibility_version": PUBLISHED_STORAGE_VERSION})
    increments: dict[str, dict] = {}
    try:
        this = con.execute("select current_database()").fetchone()[0]
        con.execute(f"attach '{source}' as work (read_only)")
        tables = mart_tables(con, "work")
        if not tables:
            raise RuntimeError(f"no marts in {source}: nothing to publish")
        con.execute(f"create schema if not exists {MARTS_SCHEMA}")
        existing = set(mart_tables(con, this))
        rows = {}
        for t in tables:
            rows[t] = con.execute(f"select count(*) from work.{MARTS_SCHEMA}.{t}").fetchone()[0]
            spec = INCREMENTAL_MARTS.get(t)
            since = _watermark(base, t)
            changed = None
            if (spec and since and t in existing
                    and _columns(con, this, t) == _columns(con, "work", t)):
                changed = _apply_increment(con, t, spec, since, rows[t])
            if changed is None:
                con.execute(f"create or replace table {MARTS_SCHEMA}.{t} as select * from work.{MARTS_SCHEMA}.{t}")
            if spec:
                watermark = con.execute(f"select max({spec.written_at}) from {MARTS_SCHEMA}.{t}").fetchone()[0]
                increments[t] = {"watermark": watermark.isoformat() if watermark else None,
                                 "rows_applied": changed["rows"] if changed else rows[t],
                                 "months": changed["months"] if changed else None}
            published = con.execute(f"select count(*) from {MARTS_SCHEMA}.{t}").fetchone()[0]
            if published != rows[t]:
                raise PublishCheckFailed(f"publication check: {MARTS_SCHEMA}.{t} would hold {published} rows, "
                                         f"the working marts hold {rows[t]}; nothing published")
        for t in sorted(existing - set(tables)):
            con.execute(f"drop table {MARTS_SCHEMA}.{t}")
        con.execute("create schema if not exists meta")
        con.execute("create or replace table meta.publication as select ? as run_id, ?::timestamptz as published_at, "
                    "?::date as as_of_date", [run_id, published_at, as_of])
        con.execute("detach work")
        con.execute("checkpoint")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    _fsync(tmp)
    os.replace(tmp, dest)
    return tables, rows, increments


def _link_or_copy(src: Path, dest: Path) -> None:
    """Export files are never modified once written: one file can belong to several publications."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _write_exports(db: Path, dest: Path, tables: list[str], run_id: str, as_of: dt.date,
                   base_exports: Path | None = None, increments: dict | None = None) -> None:
    """Parquet exports: `<mart>.parquet`, and for an incremental mart a folder with one file per
    month (`fct_order_line/order_month=2024-12/data_0.parquet`, Hive layout); the months an
    increment did not change are linked from `base_exports`."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    increments = increments or {}
    con = duckdb.connect(str(db), read_only=True)
    try:
        for t in tables:
            spec = INCREMENTAL_MARTS.get(t)
            if spec is None:
                out = tmp / f"{t}.parquet"
                con.execute(f"copy {MARTS_SCHEMA}.{t} to '{out}' (format parquet, compression zstd)")
                _fsync(out)
                continue
            folder = tmp / t
            folder.mkdir()
            changed = (increments.get(t) or {}).get("months")
            previous = base_exports / t if base_exports is not None else None
            if changed is None or previous is None or not previous.is_dir():
                # written whole: every month (a query per month is as fast as one partitioned COPY and
                # needs a sixth of the memory: 0.56 instead of 3.2 GB at 10M lines)
                changed = [r[0] for r in con.execute(
                    f"select distinct {_month_expr(spec.month_of)} from {MARTS_SCHEMA}.{t}").fetchall()]
            else:
                for part in previous.iterdir():
                    if part.is_dir() and part.name.split("=", 1)[-1] not in changed:
                        (folder / part.name).mkdir()
                        for f in part.iterdir():
                            _link_or_copy(f, folder / part.name / f.name)
            for month in sorted(changed):
                if month == UNKNOWN_MONTH:
                    where = f"{spec.month_of} is null"
                else:
                    where = (f"{spec.month_of} >= date '{month}-01' "
                             f"and {spec.month_of} < date '{month}-01' + interval 1 month")
                if not con.execute(f"select count(*) from {MARTS_SCHEMA}.{t} where {where}").fetchone()[0]:
                    continue  # its rows moved to other months
                (folder / f"order_month={month}").mkdir()
                out = folder / f"order_month={month}" / "data_0.parquet"
                con.execute(f"copy (select * from {MARTS_SCHEMA}.{t} where {where}) to '{out}' "
                            f"(format parquet, compression zstd)")
            for f in folder.rglob("*.parquet"):
                _fsync(f)
    finally:
        con.close()
    (tmp / EXPORTS_MANIFEST).write_text(json.dumps({"run_id": run_id, "as_of_date": as_of.isoformat(),
                                                    "tables": tables}, indent=2), encoding="utf-8")
    _fsync(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


def publish(settings: Settings, run_id: str, as_of: dt.date, source: Path | None = None) -> Publication:
    """Publish the marts of `source` (default: the working database) as run `run_id`. See module doc."""
    started = time.perf_counter()
    settings.warehouse.mkdir(parents=True, exist_ok=True)
    settings.publications_dir.mkdir(parents=True, exist_ok=True)
    recovered = recover(settings)
    source = Path(source or settings.work_db)
    watermark = raw_watermark(settings) if source == settings.work_db else None
    published_at = _now()
    archive, exports = _db_path(settings, run_id), _exports_path(settings, run_id)

    # 1. write: a complete publication that nobody reads yet (from the previous one when it can)
    base = _base_for_increments(settings, source)
    tables, rows, increments = _write_database(settings, source, archive, run_id, as_of, published_at, base)
    base_exports = _exports_path(settings, base["run_id"]) if base else None
    _write_exports(archive, exports, tables, run_id, as_of, base_exports, increments)
    _fsync(settings.publications_dir)
    # 2. beside the published file
    tmp = _copy_beside(archive, settings.published_db, run_id)
    _fsync(settings.warehouse)
    settings.stage_reached("publish_swap")
    # 3. swap: one rename for the database, one for the exports
    swap_started = time.perf_counter()
    os.replace(tmp, settings.published_db)
    _point_exports(settings, exports)
    _fsync(settings.warehouse)
    swap_seconds = time.perf_counter() - swap_started
    # 4. bookkeeping
    _write_manifest(settings, run_id, as_of, published_at, tables, rows, watermark, increments,
                    base["run_id"] if base else None, base.get("generation", 0) + 1 if base else 0)
    _append_history(settings, {"event": "published", "run_id": run_id, "as_of_date": as_of.isoformat()})
    prune(settings)
    return Publication(settings.published_db, tables, rows, published_at, run_id, as_of, archive, exports,
                       time.perf_counter() - started, swap_seconds, recovered)


def _write_manifest(settings: Settings, run_id: str, as_of: dt.date | str | None, published_at, tables, rows,
                    watermark: str | None, increments: dict | None = None, built_from: str | None = None,
                    generation: int = 0) -> None:
    archive = _db_path(settings, run_id)
    _write_json_atomic(_manifest_path(settings, run_id), {
        "run_id": run_id,
        "as_of_date": str(as_of) if as_of else None,
        "published_at": str(published_at),
        "first_published_at": _now().isoformat(),
        "tables": tables,
        "rows": rows,
        "raw_watermark": watermark,
        # the incremental marts' watermarks: the next publication applies only rows written after them
        "increments": increments or {},
        "built_from": built_from,      # the publication whose file this one started from (None: written whole)
        "generation": generation,      # publications in a row built from the previous one
        "sha256": file_sha256(archive),
        "bytes": archive.stat().st_size,
    })


# ------------------------------------------------------------------------------------------ recover, prune

def recover(settings: Settings) -> list[str]:
    """Clean up after a killed publish or rollback; returns what was done (for the log).

    - temporary files of an unfinished write or swap are removed;
    - when the published database belongs to a publication whose swap happened but whose
      bookkeeping did not (killed between the renames), that publication is completed and the
      exports are pointed at it;
    - publications that were written but never swapped in are removed."""
    done: list[str] = []
    pubs = settings.publications_dir
    for leftover in [*settings.warehouse.glob(f".{settings.published_db.name}.*.tmp"),
                     *settings.warehouse.glob(f".{settings.exports_dir.name}.*.tmp"),
                     *(pubs.glob(".*.tmp") if pubs.exists() else [])]:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        done.append(f"removed {leftover.name}")
    if not pubs.exists():
        return done
    current = current_run_id(settings)
    if current is None and settings.published_db.exists():
        return done  # cannot read which run is published (e.g. opened read-write elsewhere): remove nothing else
    if current and _db_path(settings, current).exists() and not _manifest_path(settings, current).exists():
        meta = read_publication_meta(_db_path(settings, current)) or {}
        tables = []
        if _exports_path(settings, current).exists():
            tables = sorted(p.stem for p in _exports_path(settings, current).iterdir() if p.suffix == ".parquet" or p.is_dir())
        _write_manifest(settings, current, meta.get("as_of_date"), meta.get("published_at"), tables, {}, None)
        _append_history(settings, {"event": "published", "run_id": current, "as_of_date": str(meta.get("as_of_date")),
                                   "note": "completed by recovery after an interrupted publish"})
        done.append(f"completed publication {current}")
    if current and _exports_path(settings, current).exists() and exports_target(settings) != _exports_path(settings, current).resolve():
        _point_exports(settings, _exports_path(settings, current))
        done.append(f"exports switched to {current}")
    for db in pubs.glob(f"*{DB_SUFFIX}"):
        run_id = db.name[: -len(DB_SUFFIX)]
        if run_id != current and not _manifest_path(settings, run_id).exists():
            db.unlink(missing_ok=True)
            shutil.rmtree(_exports_path(settings, run_id), ignore_errors=True)
            done.append(f"removed unpublished {run_id}")
    return done


def prune(settings: Settings, keep: int | None = None) -> list[str]:
    """Keep the newest `keep` publications (and always the one in use); returns the removed run ids."""
    keep = keep or settings.keep_publications
    current = current_run_id(settings)
    if current is None and settings.published_db.exists():
        return []  # cannot tell which publication is in use: keep them all this time
    kept = publications(settings)
    removed = []
    for pub in kept[: max(0, len(kept) - keep)]:
        run_id = pub["run_id"]
        if run_id == current:
            continue
        _manifest_path(settings, run_id).unlink(missing_ok=True)  # first: without it the rest is debris
        _db_path(settings, run_id).unlink(missing_ok=True)
        shutil.rmtree(_exports_path(settings, run_id), ignore_errors=True)
        removed.append(run_id)
    return removed


# ------------------------------------------------------------------------------------------ rollback

def rollback(settings: Settings, to: str | None = None) -> dict:
    """Put the previous publication (or `to`) back in place, with the same write-beside-and-rename.

    "Previous" is the newest kept publication older than the one in use; rolling back twice goes
    two publications back. Call it under the run lock (`ocop rollback` does)."""
    recover(settings)
    kept = publications(settings)
    current = current_run_id(settings)
    ids = [p["run_id"] for p in kept]
    if to is not None:
        if to not in ids:
            raise RollbackError(f"no kept publication {to!r}; kept: {', '.join(ids) or 'none'}")
        target = to
    else:
        older = ids[: ids.index(current)] if current in ids else ids
        if not older:
            raise RollbackError(f"nothing to roll back to: the publication in use ({current or 'none'}) is the "
                                f"oldest one kept ({len(ids)} kept)")
        target = older[-1]
    manifest = next(p for p in kept if p["run_id"] == target)
    archive = _db_path(settings, target)
    if manifest.get("sha256") and file_sha256(archive) != manifest["sha256"]:
        raise RollbackError(f"{archive} does not match its manifest (sha256): not restoring it")
    meta = read_publication_meta(archive)
    if not meta or meta["run_id"] != target:
        raise RollbackError(f"{archive} is not a readable publication of run {target}")
    started = time.perf_counter()
    tmp = _copy_beside(archive, settings.published_db, f"rollback-{target}")
    os.replace(tmp, settings.published_db)
    if _exports_path(settings, target).exists():
        _point_exports(settings, _exports_path(settings, target))
    _fsync(settings.warehouse)
    _append_history(settings, {"event": "rollback", "run_id": target, "from_run_id": current,
                               "as_of_date": str(meta["as_of_date"])})
    return {"from_run_id": current, "run_id": target, "as_of_date": meta["as_of_date"],
            "published_at": meta["published_at"], "seconds": time.perf_counter() - started}


# ------------------------------------------------------------------------------------------ queries

def published_as_of(settings: Settings) -> dt.date | None:
    if not settings.published_db.exists():
        return None
    con = duckdb.connect(str(settings.published_db), read_only=True)
    try:
        return con.execute("select max(as_of_date) from meta.publication").fetchone()[0]
    except duckdb.Error:
        return None
    finally:
        con.close()


def is_current(settings: Settings, as_of: dt.date) -> bool:
    """True when the last publication was built for `as_of` from everything raw holds now.

    False when anything was loaded after it (e.g. by a night killed before it could publish), so
    the next night builds and publishes even when its own inbox brought nothing new. After
    `ocop rollback` this stays True (the rollback sticks) until something new arrives."""
    kept = publications(settings)
    if not kept or not settings.published_db.exists():
        return False
    last = kept[-1]
    if last.get("as_of_date") != as_of.isoformat():
        return False
    return last.get("raw_watermark") is not None and last.get("raw_watermark") == raw_watermark(settings)
