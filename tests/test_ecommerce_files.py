"""E-commerce feed files -> raw.ecommerce_* through real dlt pipelines into a real DuckDB file."""
from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
import sys
from pathlib import Path

import duckdb
import pytest

from flows.config import Settings
from flows.ecommerce import EcommerceLoadReport, load_ecommerce
from flows.platform_server import (
    completed_revenue,
    generate_listings,
    generate_order_lines,
    iso,
    write_csv,
    write_jsonl,
)

START = dt.datetime(2024, 12, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))


# ---- helpers (shared with tests/test_ecommerce_api.py) -------------------------------------
def make_settings(tmp_path: Path, **kw) -> Settings:
    return Settings(inbox=tmp_path / "inbox", warehouse=tmp_path / "warehouse", **kw)


def query(settings: Settings, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(settings.work_db))
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def loader_files(settings: Settings) -> Path:
    from flows.ecommerce import _loader_files

    return _loader_files(settings)


def figures(settings: Settings) -> tuple[int, int]:
    """(order lines, revenue of completed lines) as stored."""
    n, rev = query(settings, """
        select count(*), coalesce(sum(case when status = 'completed'
                                           then qty * unit_price_vnd - discount_vnd else 0 end), 0)
        from raw.ecommerce_order_lines""")[0]
    return n, int(rev)


def snapshot(settings: Settings) -> dict[str, tuple]:
    """Content of every e-commerce table, order-independent (lineage columns excluded)."""
    out = {}
    for table, cols in {
        "ecommerce_listings": "listing_id, sku, ma_san_pham, title, price_vnd, status, listed_at, updated_at",
        "ecommerce_order_lines": "order_id, line_no, ordered_at, sku, qty, unit_price_vnd, discount_vnd, "
                                 "channel, status, buyer_province, updated_at",
        "ecommerce_quarantine": "source, line_number, raw_text, reason",
        "ecommerce_files": "content_hash, source_file",
    }.items():
        try:
            out[table] = query(settings, f"select count(*), md5(string_agg(x, '|' order by x)) from "
                                         f"(select concat_ws(',', {cols}) as x from raw.{table})")[0]
        except duckdb.CatalogException:
            out[table] = None
    return out


def newest(records: list[dict]) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for r in records:
        k = (r["order_id"], r["line_no"])
        if k not in out or dt.datetime.fromisoformat(r["updated_at"]) >= dt.datetime.fromisoformat(out[k]["updated_at"]):
            out[k] = r
    return out


def feed(settings: Settings) -> Path:
    d = settings.ecommerce_inbox
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def catalogue() -> list[dict]:
    return generate_listings(40, seed=7, start=START)


@pytest.fixture
def lines(catalogue) -> list[dict]:
    return generate_order_lines(600, catalogue, seed=7, start=START)


# ---- tests -----------------------------------------------------------------------------------
def test_first_load_then_increment_with_new_and_changed_lines(tmp_path, catalogue, lines):
    s = make_settings(tmp_path)
    write_jsonl(feed(s) / "listings_2024-12-01.jsonl", catalogue)
    write_jsonl(feed(s) / "orders_2024-12-01.jsonl.gz", lines)

    r1 = load_ecommerce(s)
    assert isinstance(r1, EcommerceLoadReport)
    assert r1.files_loaded == ["listings_2024-12-01.jsonl", "orders_2024-12-01.jsonl.gz"]
    assert r1.rows_loaded["ecommerce_order_lines"] == 600
    assert r1.rows_loaded["ecommerce_listings"] == 40
    assert r1.quarantined == {} and r1.api_status == "not_configured"
    assert figures(s) == (600, completed_revenue(lines))

    # the next day: 50 new lines, 30 changed (cancelled / returned / qty fixed), and 5 lines
    # re-sent in an *older* version than the stored one (must not win)
    later = START + dt.timedelta(days=1)
    new = generate_order_lines(50, catalogue, seed=8, start=later, first_order=900_000)
    changed = []
    for i, old in enumerate(lines[:30]):
        rec = dict(old, updated_at=iso(later + dt.timedelta(minutes=i)))
        if i % 3 == 0:
            rec["status"] = "cancelled"
        elif i % 3 == 1:
            rec["status"] = "returned"
        else:
            rec["status"], rec["qty"] = "completed", rec["qty"] + 10
        changed.append(rec)
    stale = [dict(old, status="completed", qty=999, updated_at=iso(START - dt.timedelta(days=365)))
             for old in lines[100:105]]
    write_jsonl(feed(s) / "orders_2024-12-02.jsonl", new + changed + stale)

    r2 = load_ecommerce(s)
    assert r2.files_loaded == ["orders_2024-12-02.jsonl"]
    assert sorted(r2.files_skipped) == ["listings_2024-12-01.jsonl", "orders_2024-12-01.jsonl.gz"]
    assert r2.rows_loaded["ecommerce_order_lines"] == 80  # the 5 stale lines are not written
    truth = newest(lines + new + changed + stale)
    assert figures(s) == (650, completed_revenue(truth.values()))
    assert figures(s)[1] == completed_revenue(lines + new + changed + stale)
    assert query(s, "select count(*) from raw.ecommerce_order_lines where qty = 999") == [(0,)]
    # nothing counted twice
    assert query(s, "select count(*) - count(distinct (order_id, line_no)) from raw.ecommerce_order_lines") == [(0,)]
    reg = query(s, "select source_file, rows_valid, rows_loaded, rows_stale from raw.ecommerce_files "
                   "where source_file = 'orders_2024-12-02.jsonl'")
    assert reg == [("orders_2024-12-02.jsonl", 85, 80, 5)]
    # lineage
    assert query(s, "select source, source_line from raw.ecommerce_order_lines where order_id = ? and line_no = ?",
                 [changed[4]["order_id"], changed[4]["line_no"]]) == [("orders_2024-12-02.jsonl", 50 + 4 + 1)]


def test_same_file_twice_changes_nothing(tmp_path, catalogue, lines):
    s = make_settings(tmp_path)
    write_jsonl(feed(s) / "listings.jsonl", catalogue)
    path = write_jsonl(feed(s) / "orders_a.jsonl", lines + [dict(lines[0], order_id="BAD", qty=-1)])
    load_ecommerce(s)
    before = snapshot(s)
    assert before["ecommerce_quarantine"][0] == 1

    r = load_ecommerce(s)  # same files again
    assert r.files_loaded == [] and sorted(r.files_skipped) == ["listings.jsonl", "orders_a.jsonl"]
    assert r.rows_loaded == {} and r.quarantined == {}
    shutil.copy(path, feed(s) / "orders_copy_renamed.jsonl")  # same bytes, another name
    r = load_ecommerce(s)
    assert "orders_copy_renamed.jsonl" in r.files_skipped and r.files_loaded == []
    assert snapshot(s) == before
    # each loaded file is archived once, by content hash
    assert len(list((s.raw_files_dir / "ecommerce").iterdir())) == 2


def test_newest_wins_within_one_load_across_batches(tmp_path, catalogue):
    s = make_settings(tmp_path)
    write_jsonl(feed(s) / "listings.jsonl", catalogue)
    base = {"order_id": "DH1", "line_no": 1, "ordered_at": "2024-12-01T10:00:00+07:00", "sku": catalogue[0]["sku"],
            "qty": 1, "unit_price_vnd": 10_000, "discount_vnd": 0, "channel": "web", "buyer_province": "Quảng Ngãi"}
    versions = [
        dict(base, status="completed", qty=1, updated_at="2024-12-01T10:00:00+07:00"),
        dict(base, status="returned", qty=3, updated_at="2024-12-03T10:00:00+07:00"),  # newest
        dict(base, status="completed", qty=2, updated_at="2024-12-02T10:00:00+07:00"),
    ]
    other = [dict(base, order_id=f"DH{i}", status="completed", updated_at="2024-12-01T11:00:00+07:00")
             for i in range(2, 7)]
    write_jsonl(feed(s) / "orders_1.jsonl", [versions[0], *other[:2], versions[1], *other[2:], versions[2]])
    write_jsonl(feed(s) / "orders_2.jsonl", [versions[0]])  # a second file, same load, older version
    r = load_ecommerce(s, batch_size=2)  # several Arrow batches per file
    assert r.rows_loaded["ecommerce_order_lines"] == 9
    assert query(s, "select status, qty from raw.ecommerce_order_lines where order_id = 'DH1'") == [("returned", 3)]
    assert figures(s) == (6, 5 * 10_000)


def test_of_versions_as_new_as_each_other_the_line_read_last_wins(tmp_path, catalogue):
    """Lines sent twice with the same updated_at in one load (a first load, written with append
    and then cleared of older versions): the later line wins, in the same file or in the next one,
    whatever order DuckDB appended the rows in (many small batches: many row groups)."""
    s = make_settings(tmp_path)
    write_jsonl(feed(s) / "listings.jsonl", catalogue)
    base = {"line_no": 1, "ordered_at": "2024-12-01T10:00:00+07:00", "sku": catalogue[0]["sku"], "qty": 1,
            "unit_price_vnd": 10_000, "discount_vnd": 0, "channel": "web", "buyer_province": "Quảng Ngãi",
            "status": "completed", "updated_at": "2024-12-01T11:00:00+07:00"}
    first = [dict(base, order_id=f"DH{i}") for i in range(60)]
    again_same_file = [dict(base, order_id=f"DH{i}", qty=2) for i in range(0, 60, 2)]
    again_next_file = [dict(base, order_id=f"DH{i}", qty=3) for i in range(0, 60, 3)]
    write_jsonl(feed(s) / "orders_1.jsonl", first + again_same_file)
    write_jsonl(feed(s) / "orders_2.jsonl", again_next_file)
    load_ecommerce(s, batch_size=7)
    got = dict(query(s, "select order_id, qty from raw.ecommerce_order_lines"))
    assert got == {f"DH{i}": 3 if i % 3 == 0 else 2 if i % 2 == 0 else 1 for i in range(60)}


def test_keys_ascending():
    import pyarrow as pa

    from flows.sources.ecommerce import _keys_ascending

    def t(*keys):
        return pa.table({"order_id": [k[0] for k in keys], "line_no": [k[1] for k in keys]})

    keys = ("order_id", "line_no")
    assert _keys_ascending(t(("A", 1), ("A", 2), ("B", 1)), keys, None)
    assert _keys_ascending(t(("B", 1)), keys, ("A", 9))
    assert not _keys_ascending(t(("A", 1), ("A", 1)), keys, None)  # a key twice
    assert not _keys_ascending(t(("A", 2), ("A", 1)), keys, None)
    assert not _keys_ascending(t(("B", 1), ("A", 2)), keys, None)
    assert not _keys_ascending(t(("A", 1)), keys, ("A", 1))  # the last key of the batch before
    assert not _keys_ascending(t(("A", 1)), keys, ("B", 1))
    assert not _keys_ascending(t(("A", 1), (None, 2)), keys, None)
    assert not _keys_ascending(t((None, 1)), keys, None)


def test_a_first_load_in_key_order_does_not_search_for_lines_sent_twice(tmp_path, catalogue, lines, monkeypatch):
    """Lines that come with ever greater keys (order_id, line_no) cannot hold a key twice: the first
    load (written with append) skips its search for older versions. Out of order, it searches."""
    import flows.ecommerce as ecommerce_module

    searched = []
    keep_newest = ecommerce_module._StoredRows.keep_newest

    def spy(self, table):
        searched.append(table)
        return keep_newest(self, table)

    monkeypatch.setattr(ecommerce_module._StoredRows, "keep_newest", spy)
    ordered = sorted(lines, key=lambda r: (r["order_id"], r["line_no"]))

    s = make_settings(tmp_path / "in_order")
    write_jsonl(feed(s) / "listings.jsonl", catalogue)
    write_jsonl(feed(s) / "orders_1.jsonl", ordered[:300])
    write_jsonl(feed(s) / "orders_2.jsonl", ordered[300:])
    load_ecommerce(s, batch_size=64)
    assert searched == [] and figures(s) == (600, completed_revenue(lines))

    s = make_settings(tmp_path / "out_of_order")
    write_jsonl(feed(s) / "listings.jsonl", catalogue)
    write_jsonl(feed(s) / "orders_1.jsonl", ordered[300:])
    write_jsonl(feed(s) / "orders_2.jsonl", ordered[:300])
    load_ecommerce(s, batch_size=64)
    assert searched == ["ecommerce_order_lines"] and figures(s) == (600, completed_revenue(lines))


def test_chunks_parsed_out_of_order_load_in_line_order(tmp_path, catalogue, lines, monkeypatch):
    """Chunks of JSON Lines are parsed by several threads at once and may finish in any order;
    the load is the same as when they finish in order, and leaves no scratch file behind."""
    import time

    from flows.sources import ecommerce as src

    files = tmp_path / "files"
    write_jsonl(files / "listings.jsonl", catalogue)
    write_jsonl(files / "orders_a.jsonl", lines[:300])
    write_jsonl(files / "orders_b.jsonl.gz", lines[300:])

    def load(root: Path) -> tuple:
        s = make_settings(root)
        shutil.copytree(files, feed(s), dirs_exist_ok=True)  # the same bytes (a gzip header holds a time)
        r = load_ecommerce(s, batch_size=40)
        assert r.rows_loaded["ecommerce_order_lines"] == 600
        assert not any(loader_files(s).iterdir())  # the order lines' loader file, once imported
        rows = query(s, "select source, source_line, order_id, line_no, qty, status from raw.ecommerce_order_lines "
                        "order by source, source_line")
        return snapshot(s), rows

    in_order = load(tmp_path / "in_order")
    parse = src._Parsers._parse
    finished: list[int] = []

    def late_when_even(self, spec, schema, data, line_ends, first):
        if (first // 40) % 2 == 0:  # every other chunk takes longer than the next one
            time.sleep(0.05)
        out = parse(self, spec, schema, data, line_ends, first)
        finished.append(first)
        return out

    monkeypatch.setattr(src._Parsers, "_parse", late_when_even)
    monkeypatch.setattr(src, "_parse_workers", lambda: 3)  # as on 4 cores: several chunks parsed at once
    assert load(tmp_path / "out_of_order") == in_order
    assert finished != sorted(finished)  # they did finish out of order


def test_chunks_still_parsing_when_the_files_end_are_all_parsed(tmp_path, lines, monkeypatch):
    """When the last chunk has been read, the Futures of the chunks still waiting for a parsing
    thread are on their way to the caller: they are parsed, not dropped. (CI once failed with a
    CancelledError when a thread was a moment late to take the last chunk.) A reader stopped early
    drops the chunks not started."""
    import time
    from concurrent.futures import Future

    from flows.sources import ecommerce as src

    write_jsonl(tmp_path / "orders.jsonl", lines[:200])
    files = src.scan_feed_files(tmp_path)
    parse = src._Parsers._parse

    def slow(self, spec, schema, data, line_ends, first):
        time.sleep(0.05)
        return parse(self, spec, schema, data, line_ends, first)

    monkeypatch.setattr(src._Parsers, "_parse", slow)
    # every chunk is read before the first is parsed: one thread, 10 chunks of 20 lines
    chunks = [c for _, c in src._file_chunks(files, batch_size=20, workers=1) if isinstance(c, Future)]
    assert len(chunks) == 10
    assert not any(c.cancelled() for c in chunks)
    assert sum(c.result().lines_read for c in chunks) == 200

    reader = src._file_chunks(files, batch_size=20, workers=1)
    first = [next(reader) for _ in range(3)]
    reader.close()  # stops early: the chunks not started are dropped
    futures = [c for _, c in first]
    assert futures[0].result().lines_read == 20
    assert futures[-1].cancelled()


def test_a_failed_load_leaves_no_scratch_file(tmp_path, catalogue, lines, monkeypatch):
    """The order lines' loader file goes when the load fails while writing it, and one that a
    killed load left behind goes at the next load."""
    from flows.sources import ecommerce as src

    s = make_settings(tmp_path)
    write_jsonl(feed(s) / "listings.jsonl", catalogue)
    write_jsonl(feed(s) / "orders.jsonl", lines)
    finish = src._finish
    calls = []

    def fails_on_the_third_batch(spec, table):
        calls.append(spec.kind)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return finish(spec, table)

    monkeypatch.setattr(src, "_finish", fails_on_the_third_batch)
    with pytest.raises(Exception, match="boom"):
        load_ecommerce(s, batch_size=100)
    assert calls == ["listings", "order_lines", "order_lines"]  # the order lines' loader file was begun
    assert not any(loader_files(s).iterdir())

    stale = loader_files(s) / "ocop-loader-x" / "ecommerce_order_lines.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"PAR1")
    monkeypatch.setattr(src, "_finish", finish)
    assert load_ecommerce(s).rows_loaded["ecommerce_order_lines"] == 600
    assert not any(loader_files(s).iterdir())


def test_bad_lines_are_quarantined_and_good_lines_load(tmp_path, catalogue):
    s = make_settings(tmp_path)
    write_jsonl(feed(s) / "listings.jsonl", catalogue)
    sku = catalogue[0]["sku"]
    good = {"order_id": "G1", "line_no": 1, "ordered_at": "2024-12-01T10:00:00+07:00", "sku": sku, "qty": 2,
            "unit_price_vnd": 50_000, "discount_vnd": 1_000, "channel": "web", "status": "completed",
            "buyer_province": "Quảng Ngãi", "updated_at": "2024-12-01T10:00:00+07:00"}
    rows = [
        json.dumps(good),                                                        # 1 ok
        '{"order_id": "B1", "line_no": 1, "qty": 2,',                            # 2 malformed
        json.dumps({k: v for k, v in good.items() if k != "order_id"}),          # 3 missing key
        json.dumps(dict(good, order_id="B3", line_no=None)),                     # 4 missing key
        json.dumps(dict(good, order_id="B4", qty=-3)),                           # 5 negative qty
        json.dumps(dict(good, order_id="B5", status="shipped")),                 # 6 unknown status
        json.dumps(dict(good, order_id="W1", sku="SKU-NOT-THERE")),              # 7 unknown sku: warning, loaded
        "",                                                                      # 8 blank: ignored
        json.dumps(dict(good, order_id="B6", qty="hai")),                        # 9 invalid value
        "[1, 2, 3]",                                                             # 10 not an object
        json.dumps(dict(good, order_id="G2", qty="3", line_no=2.0, unit_price_vnd="50000")),  # 11 ok (coerced)
        json.dumps(dict(good, order_id="B7", updated_at=None)),                  # 12 missing key (updated_at)
        json.dumps(dict(good, order_id="G3", status=" Completed ")),             # 13 ok (normalised)
    ]
    (feed(s) / "orders_bad.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")

    r = load_ecommerce(s)
    assert r.quarantined == {"malformed_json": 2, "missing_key": 3, "negative_qty": 1, "unknown_status": 1,
                             "unknown_sku": 1, "invalid_value": 1}
    assert r.warnings == {"unknown_sku": 1}
    assert r.rejected_total == 8
    assert json.loads(json.dumps(r.as_dict()))["quarantined_total"] == 9
    loaded = query(s, "select order_id, line_no, qty, status from raw.ecommerce_order_lines order by 1")
    assert loaded == [("G1", 1, 2, "completed"), ("G2", 2, 3, "completed"), ("G3", 1, 2, "completed"),
                      ("W1", 1, 2, "completed")]
    q = query(s, "select line_number, reason, severity, source, raw_text, detail from raw.ecommerce_quarantine "
                 "order by line_number")
    assert [(x[0], x[1], x[2]) for x in q] == [
        (2, "malformed_json", "error"), (3, "missing_key", "error"), (4, "missing_key", "error"),
        (5, "negative_qty", "error"), (6, "unknown_status", "error"), (7, "unknown_sku", "warning"),
        (9, "invalid_value", "error"), (10, "malformed_json", "error"), (12, "missing_key", "error"),
    ]
    assert all(x[3] == "orders_bad.jsonl" for x in q)
    assert q[0][4] == rows[1] and q[3][4] == rows[4]  # the raw text, as sent
    assert "qty = -3" in q[3][5] and "shipped" in q[4][5] and "order_id" in q[1][5]
    assert query(s, "select rows_valid, rows_rejected, rows_warned from raw.ecommerce_files "
                    "where source_file = 'orders_bad.jsonl'") == [(4, 8, 1)]
    assert query(s, "select count(*) from raw.ecommerce_quarantine where loaded_at is null") == [(0,)]


def test_csv_and_gzip_variants_load_the_same(tmp_path, catalogue, lines):
    ref = make_settings(tmp_path / "jsonl")
    write_jsonl(feed(ref) / "listings.jsonl", catalogue)
    write_jsonl(feed(ref) / "orders.jsonl", lines)
    load_ecommerce(ref)

    s = make_settings(tmp_path / "csv")
    write_csv(feed(s) / "listings_2024.csv.gz", catalogue)
    write_csv(feed(s) / "orders_part1.csv", lines[:300])
    # part 2: semicolon-separated, columns in another order, header in upper case, gzip, BOM
    fields = list(reversed(lines[0].keys()))
    body = ";".join(f.upper() for f in fields) + "\r\n" + "".join(
        ";".join("" if r[f] is None else str(r[f]) for f in fields) + "\r\n" for r in lines[300:500])
    (feed(s) / "orders_part2.csv.gz").write_bytes(gzip.compress(("\ufeff" + body).encode("utf-8")))
    # part 3: gzip with two members (concatenated .gz files are valid gzip)
    (feed(s) / "orders_part3.ndjson.gz").write_bytes(b"".join(
        gzip.compress("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part).encode())
        for part in (lines[500:550], lines[550:])))
    r = load_ecommerce(s)
    assert r.quarantined == {}
    assert sorted(r.files_loaded) == ["listings_2024.csv.gz", "orders_part1.csv", "orders_part2.csv.gz",
                                      "orders_part3.ndjson.gz"]
    a, b = snapshot(ref), snapshot(s)
    assert a["ecommerce_order_lines"] == b["ecommerce_order_lines"]
    assert a["ecommerce_listings"] == b["ecommerce_listings"]
    assert figures(s) == (600, completed_revenue(lines))
    assert query(s, "select compression, format from raw.ecommerce_files where source_file = 'orders_part2.csv.gz'") \
        == [("gzip", "csv")]
    assert query(s, "select source_line from raw.ecommerce_order_lines where order_id = ? and line_no = ?",
                 [lines[301]["order_id"], lines[301]["line_no"]]) == [(3,)]


def test_bad_csv_rows(tmp_path, catalogue):
    s = make_settings(tmp_path)
    write_jsonl(feed(s) / "listings.jsonl", catalogue)
    sku = catalogue[1]["sku"]
    text = (
        "order_id,line_no,ordered_at,sku,qty,unit_price_vnd,discount_vnd,channel,status,buyer_province,updated_at\n"
        f"C1,1,2024-12-01T10:00:00+07:00,{sku},1,20000,0,web,completed,Quảng Ngãi,2024-12-01T10:00:00+07:00\n"
        f"C2,1,2024-12-01T10:00:00+07:00,{sku},1,20000\n"
        f"C3,1,2024-12-01T10:00:00+07:00,{sku},x1,20000,0,web,completed,Hà Nội,2024-12-01T10:00:00+07:00\n"
        f"C4,1,not a date,{sku},1,20000,0,web,completed,Hà Nội,2024-12-01T10:00:00+07:00\n"
        f'C5,1,2024-12-01 10:00:00,{sku},2,20000,,app,completed,"Quảng Ngãi, VN",2024-12-01 10:00:00\n'
    )
    (feed(s) / "orders.csv").write_text(text, encoding="utf-8")
    r = load_ecommerce(s)
    assert r.quarantined == {"malformed_csv": 1, "invalid_value": 2}
    assert query(s, "select line_number, reason from raw.ecommerce_quarantine order by 1") == [
        (3, "malformed_csv"), (4, "invalid_value"), (5, "invalid_value")]
    # naive timestamps are Vietnam time; an empty discount is 0
    assert query(s, "select order_id, ordered_at = '2024-12-01 03:00:00+00'::timestamptz, discount_vnd, "
                    "buyer_province from raw.ecommerce_order_lines order by 1") == [
        ("C1", True, 0, "Quảng Ngãi"), ("C5", True, 0, "Quảng Ngãi, VN")]


def test_truncated_gzip_loads_what_was_readable(tmp_path, catalogue, lines):
    s = make_settings(tmp_path)
    write_jsonl(feed(s) / "listings.jsonl", catalogue)
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in lines).encode())
    (feed(s) / "orders_cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    r = load_ecommerce(s, batch_size=50)
    assert r.files_partial == ["orders_cut.jsonl.gz"]
    assert r.quarantined == {"unreadable_file": 1}
    n, _ = figures(s)
    assert 0 < n < len(lines)
    assert query(s, "select status from raw.ecommerce_files where source_file = 'orders_cut.jsonl.gz'") == [("partial",)]


def test_corrupt_and_multi_member_gzip(tmp_path, catalogue, lines):
    """gzip goes through ISA-L's inflate (the pinned isal package): a file of several gzip members
    loads whole; corrupt data midway keeps the lines before it and quarantines the rest of the file
    as one unreadable_file record, as zlib's errors did."""
    from flows.sources import ecommerce as src

    assert src._inflate.__name__ == "isal.isal_zlib"
    s = make_settings(tmp_path)
    write_jsonl(feed(s) / "listings.jsonl", catalogue)
    text = "".join(json.dumps(r) + "\n" for r in lines).encode()
    half = text.index(b"\n", len(text) // 2) + 1
    (feed(s) / "orders_members.jsonl.gz").write_bytes(gzip.compress(text[:half]) + gzip.compress(text[half:]))
    other = [dict(r, order_id="X" + r["order_id"]) for r in lines]
    data = bytearray(gzip.compress("".join(json.dumps(r) + "\n" for r in other).encode(), mtime=0))
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(range(64))
    (feed(s) / "orders_corrupt.jsonl.gz").write_bytes(bytes(data))
    r = load_ecommerce(s, batch_size=50)
    assert r.files_partial == ["orders_corrupt.jsonl.gz"]
    assert r.quarantined == {"unreadable_file": 1}
    assert query(s, "select count(*) from raw.ecommerce_order_lines where source = 'orders_members.jsonl.gz'") == \
        [(len(lines),)]
    n = query(s, "select count(*) from raw.ecommerce_order_lines where source = 'orders_corrupt.jsonl.gz'")[0][0]
    assert n < len(lines)
    detail = query(s, "select detail from raw.ecommerce_quarantine where reason = 'unreadable_file'")[0][0]
    assert detail.startswith("file unreadable after line ") and "error" in detail


def test_raw_tables_follow_the_contract(tmp_path, catalogue, lines):
    s = make_settings(tmp_path)
    write_jsonl(feed(s) / "listings.jsonl", catalogue)
    write_jsonl(feed(s) / "orders.jsonl", lines[:10] + [dict(lines[0], order_id="X", qty=-1)])
    load_ecommerce(s)

    def types(table):
        return {name: typ for name, typ, *_ in query(s, f"describe raw.{table}")}

    ol = types("ecommerce_order_lines")
    assert ol == {
        "order_id": "VARCHAR", "line_no": "BIGINT", "ordered_at": "TIMESTAMP WITH TIME ZONE", "sku": "VARCHAR",
        "qty": "BIGINT", "unit_price_vnd": "BIGINT", "discount_vnd": "BIGINT", "channel": "VARCHAR",
        "status": "VARCHAR", "buyer_province": "VARCHAR", "updated_at": "TIMESTAMP WITH TIME ZONE",
        "source": "VARCHAR", "source_line": "BIGINT", "loaded_at": "TIMESTAMP WITH TIME ZONE",
        "_dlt_load_id": "VARCHAR",
    }
    li = types("ecommerce_listings")
    assert li == {
        "listing_id": "VARCHAR", "sku": "VARCHAR", "ma_san_pham": "VARCHAR", "title": "VARCHAR",
        "price_vnd": "BIGINT", "status": "VARCHAR", "listed_at": "TIMESTAMP WITH TIME ZONE",
        "updated_at": "TIMESTAMP WITH TIME ZONE", "source": "VARCHAR", "source_line": "BIGINT",
        "loaded_at": "TIMESTAMP WITH TIME ZONE", "_dlt_load_id": "VARCHAR",
    }
    q = types("ecommerce_quarantine")
    for col in ("source", "line_number", "raw_text", "reason", "loaded_at"):
        assert col in q
    # +07:00 offsets are kept as instants
    first = lines[0]
    got = query(s, "select epoch(ordered_at) from raw.ecommerce_order_lines where order_id = ? and line_no = ?",
                [first["order_id"], first["line_no"]])[0][0]
    assert got == dt.datetime.fromisoformat(first["ordered_at"]).timestamp()
    assert query(s, "select count(*) from raw.ecommerce_order_lines where _dlt_load_id is null") == [(0,)]


def test_no_inbox_no_load(tmp_path):
    s = make_settings(tmp_path)
    r = load_ecommerce(s)
    assert r.files_loaded == [] and r.load_ids == [] and r.api_status == "not_configured"


def test_database_is_released_after_the_load(tmp_path, catalogue, lines):
    """load_ecommerce keeps one DuckDB connection for the whole call and closes it at the end, also
    when the load fails: another configuration (read-only) can open the file right after."""
    s = make_settings(tmp_path)
    write_jsonl(feed(s) / "listings_2024-12-01.jsonl", catalogue)
    write_jsonl(feed(s) / "orders_2024-12-01.jsonl", lines)
    load_ecommerce(s)
    con = duckdb.connect(str(s.work_db), read_only=True)
    assert con.execute("select count(*) from raw.ecommerce_order_lines").fetchone() == (600,)
    con.close()

    import flows.ecommerce as ecommerce_module

    def broken(*a, **kw):
        raise RuntimeError("boom")

    write_jsonl(feed(s) / "orders_2024-12-02.jsonl", lines[:10])
    mp = pytest.MonkeyPatch()
    mp.setattr(ecommerce_module, "ecommerce_files", broken)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            load_ecommerce(s)
    finally:
        mp.undo()
    con = duckdb.connect(str(s.work_db), read_only=True)
    con.close()


def test_text_cleaning_shortcuts_match_the_plain_functions():
    """_clean_text skips trimming and _lower skips lowering when they cannot change anything; on
    edge cases (ASCII and Unicode spaces, empty, nulls, sliced arrays) the result is the same as
    the plain pyarrow functions'."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from flows.sources.ecommerce import _clean_text, _lower, _to_ts

    values = ["abc", " abc", "abc ", "\tabc", "abc\n", "a b", "", None, "\u00a0abc", "abc\u3000", "Hà Nội",
              "ABC", "Completed", "x\x1f", "\x7fx", "ế", "a\u2003", "z"]

    def plain(arr):
        arr = pc.utf8_trim_whitespace(arr)
        arr = pc.utf8_normalize(arr, "NFC") if not pc.all(pc.string_is_ascii(arr)).as_py() else arr
        return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)

    for i in range(len(values)):
        for arr in (pa.array(values[i:i + 1], pa.string()), pa.array(values[:i + 1], pa.string()),
                    pa.array(values, pa.string()).slice(i), pa.array(["ok", values[i], "ok"], pa.string())):
            assert _clean_text(arr).to_pylist() == plain(arr).to_pylist()
            assert _lower(arr).to_pylist() == pc.utf8_lower(arr).to_pylist()
    assert _clean_text(pa.array(["abc", "def"], pa.string())).to_pylist() == ["abc", "def"]
    assert _clean_text(pa.nulls(3, pa.string())).to_pylist() == [None] * 3

    # timestamps: the direct cast only takes values with nothing to clean; the others as before
    invalid: dict = {}
    ts = _to_ts(pa.array(["2024-12-01T08:00:00+07:00", " 2024-12-01T08:00:00+07:00", "2024-12-01T08:00:00", "", None]),
                "updated_at", invalid)
    assert [v.isoformat() if v else v for v in ts.to_pylist()] == ["2024-12-01T01:00:00+00:00"] * 3 + [None, None]
    assert invalid == {}


def test_nfc_of_repeated_values():
    """_nfc normalises through the distinct values; text already in NFC comes back unchanged."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from flows.sources.ecommerce import _nfc

    composed = pc.utf8_normalize(pa.array(["Hà Nội"]), "NFC")[0].as_py()
    decomposed = pc.utf8_normalize(pa.array(["Hà Nội"]), "NFD")[0].as_py()
    assert composed != decomposed
    for values in ([composed] * 20 + [None, "Huế"] * 5, [decomposed] * 20 + [None, composed] * 5, [None] * 8):
        arr = pa.array(values, pa.string())
        assert _nfc(arr).to_pylist() == pc.utf8_normalize(arr, "NFC").to_pylist()


# ---- the DuckDB JSON reader (fast path) ------------------------------------------------------
_GOOD_LINE = ('{"order_id":"DH1","line_no":1,"ordered_at":"2024-12-01T10:00:00+07:00","sku":"SKU-1","qty":2,'
              '"unit_price_vnd":50000,"discount_vnd":0,"channel":"web","status":"completed",'
              '"buyer_province":"Quảng Ngãi","updated_at":"2024-12-01T10:00:00+07:00"}').encode()


def _edge(**changes: str) -> bytes:
    """_GOOD_LINE with fields replaced by raw JSON text (None: the field left out)."""
    line = _GOOD_LINE.decode()
    for field, raw in changes.items():
        start = line.index(f'"{field}":')
        end = start + len(f'"{field}":')
        depth, i, in_str = 0, end, False
        while True:  # the end of the value
            c = line[i]
            if in_str:
                in_str = c != '"' or line[i - 1] == "\\"
            elif c == '"':
                in_str = True
            elif c in "{[":
                depth += 1
            elif c in "}]" and depth:
                depth -= 1
            elif c in ",}" and not depth:
                break
            i += 1
        line = line[:start] + (f'"{field}":{raw}' if raw is not None else "") + line[i:]
        line = line.replace(",,", ",").replace("{,", "{").replace(",}", "}")
    return line.encode()


# raw lines on which DuckDB's reader and pyarrow's may differ (they must not, where the fast path is taken)
_EDGE_LINES = {
    "float": _edge(qty="3.5"), "float_zero": _edge(qty="3.0"), "exponent": _edge(qty="1e3"),
    "int_as_text": _edge(qty='"3"'), "bool_int": _edge(qty="true"), "nan_int": _edge(qty="NaN"),
    "too_big": _edge(qty="9223372036854775808"), "int_max": _edge(qty="9223372036854775807"),
    "minus_zero": _edge(qty="-0"), "null_int": _edge(discount_vnd="null"), "missing_int": _edge(discount_vnd=None),
    "object_int": _edge(qty='{"n":1}'), "array_int": _edge(qty="[1]"),
    "number_text": _edge(sku="123"), "float_text": _edge(sku="1.50"), "bool_text": _edge(channel="true"),
    "nan_text": _edge(channel="NaN"), "inf_text": _edge(channel="Infinity"), "ninf_text": _edge(channel="-Infinity"),
    "lower_nan_text": _edge(channel="nan"), "lower_inf_text": _edge(channel="inf"),
    "object_text": _edge(sku='{"a":1}'), "array_text": _edge(sku='["a"]'), "true_as_text": _edge(channel='"true"'),
    "number_ts": _edge(ordered_at="20241201"), "date_only_ts": _edge(ordered_at='"2024-12-01"'),
    "naive_ts": _edge(ordered_at='"2024-12-01 10:00:00"'), "null_text": _edge(sku="null"), "missing_text": _edge(sku=None),
    "escapes": _edge(buyer_province=r'"Qu\u1ea3ng \"Ng\u00e3i\"\\ \/"'), "nul_char": _edge(sku=r'"SKU\u00001"'),
    "surrogates": _edge(sku=r'"\ud83d\ude00"'), "lone_surrogate": _edge(sku=r'"\ud800"'), "bad_escape": _edge(sku=r'"\x41"'),
    "empty_text": _edge(status='""'), "spaces": _edge(status='" Completed "'), "newline_in_text": _edge(sku=r'"a\nb"'),
    "control_char": _edge(sku='"a\tb"'), "extra_field": _edge(channel='"web","note":"x"'),
    "extra_nested": _edge(channel='"web","note":{"a":[1,2]}'), "extra_nested_comma": _edge(channel='"web","note":{"a":1,}'),
    "extra_array_comma": _edge(channel='"web","note":[1,2,]'), "extra_nan": _edge(channel='"web","note":NaN'),
    "duplicate_key": _edge(channel='"web","channel":"app"'), "duplicate_extra": _edge(channel='"web","n":1,"n":2'),
    "trailing_comma": _GOOD_LINE[:-1] + b",}", "trailing_comma_spaced": _GOOD_LINE[:-1] + b" , } ",
    "spaced": _GOOD_LINE.replace(b'":', b'" : ').replace(b",", b" , "), "crlf": _GOOD_LINE + b"\r",
    "leading_spaces": b"  " + _GOOD_LINE, "array_line": b"[1,2]", "number_line": b"5", "string_line": b'"x"',
    "empty_object": b"{}", "malformed": _GOOD_LINE[:-1], "two_objects": _GOOD_LINE + _GOOD_LINE,
    "comment": _GOOD_LINE + b" // c", "bad_utf8": _GOOD_LINE.replace(b"Qu", b"\xff\xfe"), "bom_inside": b"\xef\xbb\xbf" + _GOOD_LINE,
    "leading_zero": _edge(qty="007"), "hex": _edge(qty="0x10"), "plus": _edge(qty="+1"), "single_quotes": _edge(sku="'x'"),
    "blank": b"", "spaces_only": b"   ", "braces_in_text": _edge(sku='"{x}"'), "huge_float_text": _edge(sku="1e400"),
}
# DuckDB reads these although pyarrow's reader (and then Python's json) calls the line malformed:
# a NaN/Infinity literal Python's json rejects, in a field the contract does not read. Documented in
# flows/sources/ecommerce.py (_DuckJsonReader); the fields that are read are exactly the same.
_EDGE_LENIENT = {"extra_lower_nan": _edge(channel='"web","note":nan'), "extra_inf": _edge(channel='"web","note":-inf')}


def _chunk_parts(lines: list[bytes]):
    from flows.sources.ecommerce import _newlines

    data = b"\n".join(lines) + b"\n"
    return memoryview(data)[:len(data)], _newlines(data)


def test_duckdb_json_reader_reads_exactly_what_pyarrow_reads():
    """The DuckDB fast path takes a chunk only when its result is pyarrow's reader's, value for
    value; on every edge line it either steps aside (None) or gives exactly that. The whole chunk
    then parses the same with and without it (values, line numbers, rejects)."""
    import pyarrow as pa
    import pyarrow.json as pa_json

    from flows.sources.ecommerce import ORDER_LINES, _DuckJsonReader, _parse_json_chunk

    schema = ORDER_LINES.json_schema()
    reader = _DuckJsonReader()
    taken, in_place = set(), set()
    read_in_place = reader._read_in_place

    def read_in_place_noted(*args):
        table = read_in_place(*args)
        if table is not None:
            in_place.add(name)
        return table

    reader._read_in_place = read_in_place_noted
    try:
        for name, edge in {"clean": _GOOD_LINE, **_EDGE_LINES}.items():
            data, line_ends = _chunk_parts([_GOOD_LINE, edge, _edge(order_id='"DH2"')])
            got = reader.read(ORDER_LINES, data, line_ends)
            if got is not None:
                taken.add(name)
                ref = pa_json.read_json(pa.BufferReader(bytes(data)), parse_options=pa_json.ParseOptions(
                    explicit_schema=schema, unexpected_field_behavior="ignore"))
                assert got.equals(ref), name
            fast = _parse_json_chunk(ORDER_LINES, schema, data, line_ends, 10, reader)
            plain = _parse_json_chunk(ORDER_LINES, schema, data, line_ends, 10)
            assert {f: a.to_pylist() for f, a in fast.columns.items()} == \
                   {f: a.to_pylist() for f, a in plain.columns.items()}, name
            assert fast.line_numbers.to_pylist() == plain.line_numbers.to_pylist(), name
            assert [(r.line_number, r.reason, r.raw_text) for r in fast.rejects] == \
                   [(r.line_number, r.reason, r.raw_text) for r in plain.rejects], name
            assert fast.invalid == plain.invalid and fast.lines_read == plain.lines_read == 3, name
            assert [fast.raw_at(i) for i in range(len(fast.line_numbers))] == \
                   [plain.raw_at(i) for i in range(len(plain.line_numbers))], name
        # the fast path is taken where it can be (not only ever stepping aside)
        assert {"clean", "int_max", "minus_zero", "null_int", "missing_int", "null_text", "missing_text", "escapes",
                "surrogates", "nul_char", "empty_text", "spaces", "newline_in_text", "extra_field", "duplicate_extra",
                "spaced", "crlf", "leading_spaces", "naive_ts"} <= taken
        assert not taken & {"float", "exponent", "int_as_text", "bool_int", "number_text", "bool_text", "nan_text",
                            "lower_inf_text", "object_text", "number_ts", "trailing_comma", "trailing_comma_spaced",
                            "extra_nested_comma", "extra_array_comma", "blank", "malformed", "bad_utf8",
                            "true_as_text"}  # the text "true" could have been the literal: stepped aside
        # read in place: lines with every field (an extra one twice too: read_json takes it as well); a
        # field missing or twice: through the temporary file
        assert {"clean", "escapes", "surrogates", "nul_char", "spaced", "crlf", "leading_spaces", "extra_field",
                "null_int", "null_text"} <= in_place
        assert "duplicate_extra" in in_place
        assert not in_place & {"missing_int", "missing_text", "duplicate_key", "bad_utf8"}
        assert {"missing_int", "missing_text"} <= taken
        reader._read_in_place = read_in_place

        for name, edge in _EDGE_LENIENT.items():
            data, line_ends = _chunk_parts([_GOOD_LINE, edge])
            got = reader.read(ORDER_LINES, data, line_ends)
            assert got is not None and got.slice(1).to_pylist() == got.slice(0, 1).to_pylist(), name

        # lines with every field are read in place, without the temporary file; a chunk with a field
        # missing goes through the file, and when the temporary folder cannot take it, pyarrow's
        # reader takes the chunk
        reader._path = reader._dir / "missing" / "chunk.jsonl"
        reader._queries.clear()
        data, line_ends = _chunk_parts([_GOOD_LINE, _edge(order_id='"DH2"')])
        assert reader.read(ORDER_LINES, data, line_ends).column("order_id").to_pylist() == ["DH1", "DH2"]
        data, line_ends = _chunk_parts([_GOOD_LINE, _EDGE_LINES["missing_int"]])
        assert reader.read(ORDER_LINES, data, line_ends) is None
    finally:
        reader.close()
    assert not reader._dir.exists()


def test_loads_are_the_same_without_the_duckdb_reader(tmp_path, catalogue, lines, monkeypatch):
    """A whole load (clean and edge lines, gzip and plain, several batches) gives the same tables
    whether the DuckDB fast path takes the chunks or pyarrow's reader does."""
    from flows.sources import ecommerce as src

    edge_lines = [v for k, v in _EDGE_LINES.items()]
    reads: list[bool] = []
    real_read = src._DuckJsonReader.read

    def spy(self, *a, **kw):
        out = real_read(self, *a, **kw)
        reads.append(out is not None)
        return out

    files = tmp_path / "files"
    write_jsonl(files / "listings.jsonl", catalogue)
    write_jsonl(files / "orders_a.jsonl.gz", lines)
    (files / "orders_b.jsonl").write_bytes(b"\n".join(edge_lines) + b"\n")

    def run(root: Path, use_duckdb: bool) -> dict:
        s = make_settings(root)
        shutil.copytree(files, feed(s), dirs_exist_ok=True)  # the same bytes (a gzip header holds a time)
        monkeypatch.setattr(src._DuckJsonReader, "read", spy if use_duckdb else (lambda self, *a, **kw: None))
        load_ecommerce(s, batch_size=50)
        return snapshot(s)

    with_duckdb = run(tmp_path / "duckdb", True)
    assert reads and any(reads) and not all(reads)  # it took clean batches and stepped aside on others
    assert run(tmp_path / "pyarrow", False) == with_duckdb
    assert with_duckdb["ecommerce_order_lines"][0] > len(lines)
    # values no reader can store are quarantined with a reason (they used to stop the load)
    names = list(_EDGE_LINES)
    reasons = dict(query(make_settings(tmp_path / "duckdb"), "select line_number, reason from raw.ecommerce_quarantine "
                                                             "where source = 'orders_b.jsonl'"))
    assert reasons[names.index("too_big") + 1] == "invalid_value"
    assert reasons[names.index("lone_surrogate") + 1] == "invalid_value"
    assert reasons[names.index("bad_utf8") + 1] == "bad_encoding"
    assert reasons[names.index("trailing_comma") + 1] == "malformed_json"


def test_jsonl_with_bom_crlf_and_blank_lines_loads_the_same(tmp_path, catalogue, lines):
    """A byte order mark, Windows line ends and blank lines change nothing but the line numbers
    of what follows a blank line (gzip and plain, several batches)."""
    def load(root: Path, name: str, data: bytes) -> tuple:
        s = make_settings(root)
        write_jsonl(feed(s) / "listings.jsonl", catalogue)
        (feed(s) / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        r = load_ecommerce(s, batch_size=64)
        assert r.quarantined == {} and r.files_partial == []
        return figures(s), query(s, "select order_id, line_no, source_line from raw.ecommerce_order_lines "
                                    "order by source_line")

    plain = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines).encode()
    ref_figures, ref_rows = load(tmp_path / "ref", "orders.jsonl", plain)
    assert ref_figures == (len(lines), completed_revenue(lines))
    windows = b"\xef\xbb\xbf" + plain.replace(b"\n", b"\r\n")
    for name in ("orders.jsonl", "orders.jsonl.gz"):
        assert load(tmp_path / f"bom-{name}", name, windows) == (ref_figures, ref_rows)
    blank = plain.replace(b"\n", b"\n\n", 1)  # a blank second line: the lines after it move down one
    got_figures, got_rows = load(tmp_path / "blank", "orders.jsonl", blank)
    assert got_figures == ref_figures
    assert got_rows == [(o, n, ln + (ln > 1)) for o, n, ln in ref_rows]


_FREED_BLOCKS = """
import resource, sys
if sys.argv[1] == "tuned":
    from flows.ecommerce import _malloc_keeps_freed_blocks
    assert _malloc_keeps_freed_blocks()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(20):  # blocks of 8-14 MB, made (zeroed), then freed, as a load's chunks are
    block = bytearray((8 + i % 7) << 20)
    del block
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc")
def test_freed_blocks_are_reused_without_page_faults():
    """After the first load, glibc's malloc keeps the large blocks a load frees for the next ones,
    instead of giving them back and page-faulting the next ones in (each process measured afresh)."""
    import subprocess

    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _FREED_BLOCKS, mode], capture_output=True, text=True, check=True)
        return int(out.stdout)

    default, tuned = faults("default"), faults("tuned")
    assert tuned < default / 3, (default, tuned)  # measured: ~23k page faults by default, ~3.6k kept
