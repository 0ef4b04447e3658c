"""Write-audit-publish: copy the validated marts into a new file and swap it in one rename.

BI tools read `warehouse/ocop.duckdb`. The new version is written beside it, flushed, and renamed
over it (atomic on POSIX), so a reader sees the old or the new version, never a mix. Marts are also
exported as Parquet.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from flows.config import MARTS_SCHEMA, Settings


@dataclass
class Publication:
    path: Path
    tables: list[str]
    rows: dict[str, int]
    published_at: dt.datetime


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mart_tables(con: duckdb.DuckDBPyConnection, database: str) -> list[str]:
    return [r[0] for r in con.execute(
        "select table_name from duckdb_tables() where database_name = ? and schema_name = ? order by 1",
        [database, MARTS_SCHEMA]).fetchall()]


def publish(settings: Settings, run_id: str, as_of: dt.date) -> Publication:
    settings.warehouse.mkdir(parents=True, exist_ok=True)
    target = settings.published_db
    tmp = target.with_name(f".{target.name}.{run_id}.tmp")
    tmp.unlink(missing_ok=True)
    published_at = dt.datetime.now(dt.timezone.utc)
    con = duckdb.connect(str(tmp))
    try:
        con.execute(f"attach '{settings.work_db}' as work (read_only)")
        tables = mart_tables(con, "work")
        con.execute(f"create schema {MARTS_SCHEMA}")
        rows = {}
        for t in tables:
            con.execute(f"create table {MARTS_SCHEMA}.{t} as select * from work.{MARTS_SCHEMA}.{t}")
            rows[t] = con.execute(f"select count(*) from {MARTS_SCHEMA}.{t}").fetchone()[0]
        con.execute("create schema meta")
        con.execute("create table meta.publication as select ? as run_id, ?::timestamptz as published_at, "
                    "?::date as as_of_date", [run_id, published_at, as_of])
        con.execute("detach work")
        con.execute("checkpoint")
    finally:
        con.close()
    _fsync(tmp)
    os.replace(tmp, target)
    _fsync(target.parent)
    export_parquet(settings, tables)
    return Publication(target, tables, rows, published_at)


def export_parquet(settings: Settings, tables: list[str]) -> None:
    """Every mart as Parquet, from the published file; each file replaced in one rename."""
    settings.exports_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.published_db), read_only=True)
    try:
        for t in tables:
            final = settings.exports_dir / f"{t}.parquet"
            tmp = final.with_name(f".{t}.parquet.tmp")
            con.execute(f"copy {MARTS_SCHEMA}.{t} to '{tmp}' (format parquet, compression zstd)")
            os.replace(tmp, final)
    finally:
        con.close()


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
