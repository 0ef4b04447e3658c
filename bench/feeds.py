"""Benchmark feed files: N order lines over the demo catalogue, as the platform sends them.

Generated with DuckDB (deterministic: every value is a hash of the line's position, no RNG state),
written as one gzip JSON Lines file per month (`orders-YYYY-MM.jsonl.gz`), the way the demo inbox
and the platform deliver them. SKUs and prices come from the demo catalogue
(`listings-*.jsonl`), so the lines map to OCOP products; ~0.3 % carry a SKU the catalogue does not
know (loaded and flagged, like real feeds).

History: orders from 2023-01-01 to 2024-12-19 (local time, +07:00), evenly spread, with a daily
cycle; `updated_at` a few hours to days after the order, never after 2024-12-19 23:59:59.

The next day (2024-12-20): `day_lines` new lines plus `updates` lines of the last 30 days re-sent
as returned/cancelled with a newer `updated_at` (files `orders-2024-12-20.jsonl.gz` and
`orders-updates-2024-12-20.jsonl.gz`).
"""
from __future__ import annotations

import json
import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

HISTORY_FROM = "2023-01-01 00:00:00"
HISTORY_TO = "2024-12-20 00:00:00"  # exclusive
HISTORY_LIMIT = "2024-12-19 23:59:59"
NEXT_DAY = "2024-12-20"
LINES_PER_ORDER = 1.47  # 65 % one line, 25 % two, 8 % three, 2 % four
UNKNOWN_SKU_PER_MILLE = 3

COLUMNS = ("order_id", "line_no", "ordered_at", "sku", "qty", "unit_price_vnd", "discount_vnd", "channel",
           "status", "buyer_province", "updated_at")
DUCKDB_COLUMNS = {
    "order_id": "VARCHAR", "line_no": "BIGINT", "ordered_at": "TIMESTAMPTZ", "sku": "VARCHAR", "qty": "BIGINT",
    "unit_price_vnd": "BIGINT", "discount_vnd": "BIGINT", "channel": "VARCHAR", "status": "VARCHAR",
    "buyer_province": "VARCHAR", "updated_at": "TIMESTAMPTZ",
}
PROVINCES = ["Quảng Ngãi", "Hà Nội", "TP. Hồ Chí Minh", "Đà Nẵng", "Bình Định", "Kon Tum", "Quảng Nam",
             "Gia Lai", "Khánh Hòa", "Thừa Thiên Huế"]


def catalogue(ecommerce_dir: Path) -> list[tuple[str, int]]:
    """(sku, price_vnd) of every catalogue listing that has a SKU."""
    out: dict[str, int] = {}
    for path in sorted(Path(ecommerce_dir).glob("listings*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                if rec.get("sku"):
                    out[rec["sku"]] = int(rec.get("price_vnd") or 100_000)
    if not out:
        raise SystemExit(f"no catalogue listings under {ecommerce_dir}")
    return sorted(out.items())


def _sql_lines(n_orders: int, first_order: int, n_lines: int, t_from: str, t_to: str, n_skus: int) -> str:
    """The first `n_lines` lines of orders first_order, first_order + 1, ...; orders spread evenly over
    [t_from, t_to) in order-id order."""
    return f"""
    with orders as (
        select k,
               k - {first_order} + hm(hash(k, 'j'), 1000) / 1000.0 as pos,
               hm(hash(k, 'n'), 100) as pn,
               hm(hash(k, 's'), 100) as ps,
               hm(hash(k, 'c'), 100) as pc,
               hm(hash(k, 'p'), {len(PROVINCES)}) as prov,
               hm(hash(k, 'u'), 100000) as pu
        from range({first_order}, {first_order + n_orders}) t(k)
    ),
    lines as (
        select o.*, line_no,
               hm(hash(k, line_no, 'sku'), 1000) as usku,
               hm(hash(k, line_no, 'pick'), {n_skus}) as pick,
               hm(hash(k, line_no, 'q'), 100) as pq,
               hm(hash(k, line_no, 'd'), 100) as pd
        from orders o,
             unnest(range(1, 2 + cast(pn >= 65 as int) + cast(pn >= 90 as int) + cast(pn >= 98 as int))) u(line_no)
        order by k, line_no
        limit {n_lines}
    ),
    timed as (
        select *,
               timestamp '{t_from}'
                 + to_microseconds(cast(pos * (epoch_us(timestamp '{t_to}') - epoch_us(timestamp '{t_from}'))
                                        / (max(k) over () - {first_order} + 1) as bigint)) as ordered_at
        from lines
    ),
    priced as (
        select l.*,
               case when usku < {UNKNOWN_SKU_PER_MILLE} then 'SKU-UNKNOWN-' || lpad(cast(usku as varchar), 3, '0')
                    else s.sku end as sku,
               case when usku < {UNKNOWN_SKU_PER_MILLE} then 50000 + 1000 * (pu % 150)
                    else s.price_vnd end as unit_price_vnd,
               1 + cast(pq >= 55 as int) + cast(pq >= 80 as int) + cast(pq >= 90 as int) + cast(pq >= 96 as int) as qty,
               case when ps < 93 then 'completed' when ps < 98 then 'cancelled' else 'returned' end as status
        from timed l join skus s on s.idx = l.pick
    )
    select
        k, line_no,
        'DH' || lpad(cast(k as varchar), 10, '0') as order_id,
        ordered_at,
        sku, cast(qty as bigint) as qty, cast(unit_price_vnd as bigint) as unit_price_vnd,
        case when pd < 20 then cast(round(qty * unit_price_vnd * 0.1 / 1000) * 1000 as bigint) else cast(0 as bigint) end
            as discount_vnd,
        case when pc < 45 then 'web' when pc < 83 then 'app' else 'livestream' end as channel,
        status,
        ({PROVINCES!r})[prov + 1] as buyer_province,
        least(
            case status
                when 'completed' then ordered_at + to_hours(40 + pu % 120)
                when 'cancelled' then ordered_at + to_minutes(10 + pu % 1430)
                else ordered_at + to_days(7 + pu % 14)
            end,
            greatest(timestamp '{{limit}}', ordered_at + interval 5 minute)
        ) as updated_at
    from priced
    order by k, line_no
    """


def _setup(con: duckdb.DuckDBPyConnection, skus: list[tuple[str, int]]) -> None:
    con.execute("create or replace macro hm(h, m) as cast(h % m as bigint)")
    con.execute("create or replace table skus (idx bigint, sku varchar, price_vnd bigint)")
    con.executemany("insert into skus values (?, ?, ?)", [(i, s, p) for i, (s, p) in enumerate(skus)])


def _iso(col: str) -> str:
    return f"strftime({col}, '%Y-%m-%dT%H:%M:%S') || '+07:00'"


def _select_json(where: str = "true", order: str = "k, line_no", source: str = "bench_lines") -> str:
    return (f"select order_id, line_no, {_iso('ordered_at')} as ordered_at, sku, qty, unit_price_vnd, "
            f"discount_vnd, channel, status, buyer_province, {_iso('updated_at')} as updated_at "
            f"from {source} where {where} order by {order}")


def _gzip_file(src: Path, dest: Path, level: int = 6) -> None:
    """gzip `src` into `dest` (zlib releases the GIL: several files compress in parallel threads)."""
    tmp = dest.with_name(dest.name + ".tmp")
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)  # gzip container
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        for block in iter(lambda: fin.read(1 << 22), b""):
            fout.write(comp.compress(block))
        fout.write(comp.flush())
    tmp.replace(dest)
    src.unlink()


def _copy_gz(con: duckdb.DuckDBPyConnection, select: str, path: Path, pool: ThreadPoolExecutor | None = None):
    """Write the query as JSON Lines (DuckDB), then gzip it (here or in `pool`)."""
    plain = path.with_name(path.name.removesuffix(".gz") + ".plain.tmp")
    con.execute(f"copy ({select}) to '{plain}' (format json)")
    if pool is None:
        _gzip_file(plain, path)
        return None
    return pool.submit(_gzip_file, plain, path)


def write_history(ecommerce_dir: Path, n_lines: int, scratch_db: Path, threads: int | None = None) -> dict:
    """`n_lines` order lines 2023-01-01 .. 2024-12-19 as monthly gz JSONL files; returns a summary."""
    ecommerce_dir = Path(ecommerce_dir)
    skus = catalogue(ecommerce_dir)
    con = duckdb.connect(str(scratch_db))
    try:
        if threads:
            con.execute(f"set threads = {threads}")
        con.execute("set preserve_insertion_order = true")
        _setup(con, skus)
        n_orders = int(n_lines / LINES_PER_ORDER * 1.03) + 10
        sql = _sql_lines(n_orders, 1, n_lines, HISTORY_FROM, HISTORY_TO, len(skus)).replace("{limit}", HISTORY_LIMIT)
        con.execute(f"create or replace table bench_lines as {sql}")
        got, last_k = con.execute("select count(*), max(k) from bench_lines").fetchone()
        if got != n_lines:
            raise RuntimeError(f"generated {got} lines, wanted {n_lines}")
        months = [r[0] for r in con.execute(
            "select distinct strftime(ordered_at, '%Y-%m') from bench_lines order by 1").fetchall()]
        files, jobs = [], []
        with ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2))) as pool:
            for month in months:
                path = ecommerce_dir / f"orders-{month}.jsonl.gz"
                jobs.append(_copy_gz(con, _select_json(f"strftime(ordered_at, '%Y-%m') = '{month}'"), path, pool))
                files.append(path.name)
                while sum(not j.done() for j in jobs) > 2:  # bound the uncompressed files waiting on disk
                    time.sleep(0.05)
            for j in jobs:
                j.result()
        return {"lines": got, "orders": int(last_k), "files": files, "skus": len(skus), "last_order": int(last_k)}
    finally:
        con.close()


def write_next_day(target_dir: Path, catalogue_dir: Path, scratch_db: Path, day_lines: int, updates: int,
                   first_order: int) -> dict:
    """The next day's feed: `day_lines` new lines ordered on 2024-12-20 and `updates` re-sent lines of
    the last 30 days of history (returned/cancelled, updated on 2024-12-20)."""
    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    skus = catalogue(catalogue_dir)
    con = duckdb.connect(str(scratch_db))
    try:
        _setup(con, skus)
        n_orders = int(day_lines / LINES_PER_ORDER * 1.03) + 10
        sql = _sql_lines(n_orders, first_order, day_lines, NEXT_DAY + " 00:00:00", NEXT_DAY + " 23:59:59",
                         len(skus)).replace("{limit}", NEXT_DAY + " 23:59:59")
        con.execute(f"create or replace table day_lines as {sql}")
        _copy_gz(con, _select_json(source="day_lines"), target_dir / f"orders-{NEXT_DAY}.jsonl.gz")
        written = {"day_lines": con.execute("select count(*) from day_lines").fetchone()[0], "updates": 0}
        if updates:
            # re-sent lines of the last 30 days: a deterministic sample, newest status returned/cancelled
            con.execute(f"""
                create or replace table day_updates as
                select * replace (
                    case when hm(hash(k, line_no, 'r'), 100) < 65 then 'returned' else 'cancelled' end as status,
                    timestamp '{NEXT_DAY} 08:00:00' + to_seconds(hm(hash(k, line_no, 't'), 50000))
                        as updated_at)
                from bench_lines
                where ordered_at >= timestamp '{NEXT_DAY}' - interval 30 day and status = 'completed'
                order by hash(k, line_no, 'sample') limit {updates}""")
            _copy_gz(con, _select_json(source="day_updates", order="updated_at, k, line_no"),
                     target_dir / f"orders-updates-{NEXT_DAY}.jsonl.gz")
            written["updates"] = con.execute("select count(*) from day_updates").fetchone()[0]
        return written
    finally:
        con.close()
