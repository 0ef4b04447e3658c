"""Write-audit-publish on small DuckDB files built here: publications kept, atomic swap of database and
exports, rollback, recovery after a killed publish, and readers polling during publishes."""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from flows import publish as publishing
from flows.cli import main as ocop
from flows.config import load_settings

AS_OF = dt.date(2024, 12, 20)
ROWS_A = 200_000
ROWS_B = 50_000


def expected_checksum(g: int) -> tuple[int, int, int, int]:
    """What marts.a and marts.b hold in generation g (see make_work_db)."""
    n = ROWS_A + g
    return n, n * g, ROWS_B, ROWS_B * (ROWS_B - 1) // 2 + ROWS_B * g


def make_work_db(settings, g: int, *, scratch: bool = False, loads: int | None = None) -> None:
    """A working database whose two marts identify generation g in their counts and sums."""
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.work_db))
    try:
        con.execute("create schema if not exists marts")
        con.execute(f"create or replace table marts.a as select i as id, {g}::bigint as v from range({ROWS_A + g}) t(i)")
        con.execute(f"create or replace table marts.b as select i as id, (i + {g})::bigint as w from range({ROWS_B}) t(i)")
        if scratch:
            con.execute("create or replace table marts.a__dbt_tmp as select 1 as x")
            con.execute("create or replace table marts.b__dbt_backup as select 1 as x")
        if loads is not None:
            con.execute("create schema if not exists raw")
            con.execute("create or replace table raw._dlt_loads as select ('16000000' || i)::varchar as load_id, "
                        "0 as status from range(?) t(i)", [loads])
    finally:
        con.close()


@pytest.fixture
def settings(tmp_path):
    return load_settings(tmp_path / "inbox", tmp_path / "warehouse")


def published_run(settings) -> str:
    return publishing.current_run_id(settings)


def exports_run(settings) -> str:
    return json.loads((settings.exports_dir / "publication.json").read_text())["run_id"]


def test_publish_writes_a_complete_publication_then_swaps_it_in(settings):
    make_work_db(settings, 1, scratch=True, loads=3)
    pub = publishing.publish(settings, "run-1", AS_OF)

    assert pub.tables == ["a", "b"]  # dbt's scratch relations (__dbt_tmp, __dbt_backup) are not published
    assert pub.rows == {"a": ROWS_A + 1, "b": ROWS_B}
    con = duckdb.connect(str(settings.published_db), read_only=True)
    assert con.execute("select run_id, as_of_date from meta.publication").fetchone() == ("run-1", AS_OF)
    assert con.execute("select count(*), sum(v) from marts.a").fetchone() == expected_checksum(1)[:2]
    con.close()
    # kept publication, identical to the published file; manifest; history
    assert (settings.publications_dir / "run-1.duckdb").read_bytes() == settings.published_db.read_bytes()
    manifest = json.loads((settings.publications_dir / "run-1.json").read_text())
    assert manifest["raw_watermark"] == "3:160000002" and manifest["tables"] == ["a", "b"]
    assert [e["event"] for e in publishing.history(settings)] == ["published"]
    # exports: a symlink to the publication's own folder, with every mart and the run id
    assert settings.exports_dir.is_symlink()
    assert os.readlink(settings.exports_dir) == "publications/run-1.exports"
    assert sorted(p.name for p in settings.exports_dir.iterdir()) == ["a.parquet", "b.parquet", "publication.json"]
    assert exports_run(settings) == "run-1"
    assert duckdb.execute(f"select count(*) from '{settings.exports_dir / 'a.parquet'}'").fetchone()[0] == ROWS_A + 1
    # nothing temporary left beside the published file
    assert not [p for p in settings.warehouse.iterdir() if p.name.endswith(".tmp")]
    assert not [p for p in settings.publications_dir.iterdir() if p.name.startswith(".")]


def test_a_real_exports_folder_from_before_is_moved_aside_once(settings):
    settings.exports_dir.mkdir(parents=True)
    (settings.exports_dir / "old.parquet").write_bytes(b"x")
    make_work_db(settings, 1)
    publishing.publish(settings, "run-1", AS_OF)
    assert settings.exports_dir.is_symlink() and exports_run(settings) == "run-1"
    legacy = list(settings.publications_dir.glob("legacy-exports-*"))
    assert len(legacy) == 1 and (legacy[0] / "old.parquet").exists()


def test_the_last_five_publications_are_kept(settings):
    for g in range(1, 8):
        make_work_db(settings, g)
        publishing.publish(settings, f"run-{g}", AS_OF)
    kept = [p["run_id"] for p in publishing.publications(settings)]
    assert kept == ["run-3", "run-4", "run-5", "run-6", "run-7"]
    assert sorted(p.name for p in settings.publications_dir.glob("*.duckdb")) == [f"run-{g}.duckdb" for g in range(3, 8)]
    assert sorted(p.name for p in settings.publications_dir.glob("*.exports")) == [f"run-{g}.exports" for g in range(3, 8)]
    assert published_run(settings) == "run-7"


def test_rollback_restores_the_previous_publication_and_its_exports(settings, capsys):
    for g in (1, 2, 3):
        make_work_db(settings, g)
        publishing.publish(settings, f"run-{g}", AS_OF)
    wh = str(settings.warehouse)

    assert ocop(["rollback", "--warehouse", wh]) == 0
    assert "is now run run-2" in capsys.readouterr().out
    assert published_run(settings) == "run-2" and exports_run(settings) == "run-2"
    assert settings.published_db.read_bytes() == (settings.publications_dir / "run-2.duckdb").read_bytes()

    assert ocop(["rollback", "--warehouse", wh]) == 0  # twice: two publications back
    assert published_run(settings) == "run-1" and exports_run(settings) == "run-1"
    assert ocop(["rollback", "--warehouse", wh]) == 1  # nothing older kept
    assert "nothing to roll back to" in capsys.readouterr().err
    assert published_run(settings) == "run-1"

    assert ocop(["rollback", "--warehouse", wh, "--to", "run-3"]) == 0  # and forward again
    assert published_run(settings) == "run-3" and exports_run(settings) == "run-3"
    assert ocop(["rollback", "--warehouse", wh, "--to", "run-9"]) == 1
    events = [(e["event"], e["run_id"]) for e in publishing.history(settings)]
    assert events[-3:] == [("rollback", "run-2"), ("rollback", "run-1"), ("rollback", "run-3")]
    assert not [p for p in settings.warehouse.iterdir() if p.name.endswith(".tmp")]


def test_rollback_refuses_a_corrupted_publication(settings, capsys):
    for g in (1, 2):
        make_work_db(settings, g)
        publishing.publish(settings, f"run-{g}", AS_OF)
    with open(settings.publications_dir / "run-1.duckdb", "r+b") as fh:
        fh.seek(5000)
        fh.write(b"garbage")
    before = settings.published_db.read_bytes()
    assert ocop(["rollback", "--warehouse", str(settings.warehouse)]) == 1
    assert "does not match its manifest" in capsys.readouterr().err
    assert settings.published_db.read_bytes() == before


def test_rollback_refuses_while_a_night_holds_the_lock(settings, capsys):
    make_work_db(settings, 1)
    publishing.publish(settings, "run-1", AS_OF)
    make_work_db(settings, 2)
    publishing.publish(settings, "run-2", AS_OF)
    with open(settings.lock_file, "a+") as fh:  # what a running night holds
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert ocop(["rollback", "--warehouse", str(settings.warehouse)]) == 75
        fcntl.flock(fh, fcntl.LOCK_UN)
    assert "holds" in capsys.readouterr().err
    assert published_run(settings) == "run-2"


def test_recover_removes_what_a_killed_publish_left_behind(settings):
    make_work_db(settings, 1)
    publishing.publish(settings, "run-1", AS_OF)
    before = settings.published_db.read_bytes()
    # a publish killed before its swap: tmp copy beside the published file, a half-written
    # publication, an unfinished exports folder and symlink
    (settings.warehouse / ".ocop.duckdb.run-2.tmp").write_bytes(b"partial")
    (settings.publications_dir / "run-2.duckdb").write_bytes(b"never swapped in")
    (settings.publications_dir / ".run-3.duckdb.tmp").write_bytes(b"partial")
    (settings.publications_dir / ".run-3.exports.tmp").mkdir()
    os.symlink("publications/run-2.exports", settings.warehouse / ".exports.abcd.tmp")

    done = publishing.recover(settings)
    assert len(done) == 5
    assert sorted(p.name for p in settings.warehouse.iterdir()) == [
        "exports", "ocop.duckdb", "publications", "work"]
    assert not (settings.publications_dir / "run-2.duckdb").exists()
    assert not [p for p in settings.publications_dir.iterdir() if p.name.startswith(".")]
    assert settings.published_db.read_bytes() == before and exports_run(settings) == "run-1"
    assert publishing.recover(settings) == []  # idempotent


def test_recover_finishes_a_publish_killed_between_the_two_renames(settings):
    make_work_db(settings, 1)
    publishing.publish(settings, "run-1", AS_OF)
    make_work_db(settings, 2)
    publishing.publish(settings, "run-2", AS_OF)
    # undo run-2's bookkeeping and exports switch: as if killed right after the database rename
    (settings.publications_dir / "run-2.json").unlink()
    settings.exports_dir.unlink()
    os.symlink("publications/run-1.exports", settings.exports_dir)

    done = publishing.recover(settings)
    assert "completed publication run-2" in done and "exports switched to run-2" in done
    assert exports_run(settings) == "run-2"
    assert [p["run_id"] for p in publishing.publications(settings)] == ["run-1", "run-2"]


def test_is_current_follows_raw_loads_and_survives_a_rollback(settings):
    make_work_db(settings, 1, loads=2)
    assert not publishing.is_current(settings, AS_OF)  # nothing published yet
    publishing.publish(settings, "run-1", AS_OF)
    assert publishing.is_current(settings, AS_OF)
    assert not publishing.is_current(settings, AS_OF + dt.timedelta(days=1))  # another as-of date
    make_work_db(settings, 2, loads=3)  # a night loaded something, then was killed before publishing
    assert not publishing.is_current(settings, AS_OF)
    publishing.publish(settings, "run-2", AS_OF)
    assert publishing.is_current(settings, AS_OF)
    publishing.rollback(settings)
    assert published_run(settings) == "run-1"
    assert publishing.is_current(settings, AS_OF)  # the rollback sticks until something new arrives


def test_a_connection_opened_before_a_publish_keeps_reading_its_own_night(settings):
    make_work_db(settings, 1)
    publishing.publish(settings, "run-1", AS_OF)
    con = duckdb.connect(str(settings.published_db), read_only=True)
    make_work_db(settings, 2)
    publishing.publish(settings, "run-2", AS_OF)
    assert con.execute("select run_id from meta.publication").fetchone()[0] == "run-1"
    assert con.execute("select count(*), sum(v) from marts.a").fetchone() == expected_checksum(1)[:2]
    con.close()
    assert published_run(settings) == "run-2"


READER = textwrap.dedent("""
    import json, sys, time, duckdb
    db, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
    import os
    with open(out, "w") as fh:
        while not os.path.exists(stop):
            try:
                con = duckdb.connect(db, read_only=True)
                try:
                    run_id = con.execute("select run_id from meta.publication").fetchone()[0]
                    row = con.execute("select (select count(*) from marts.a), (select sum(v) from marts.a), "
                                      "(select count(*) from marts.b), (select sum(w) from marts.b)").fetchone()
                finally:
                    con.close()
                fh.write(json.dumps({"run_id": run_id, "checksum": [int(x) for x in row]}) + "\\n")
            except Exception as exc:
                fh.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\\n")
""")


def test_readers_polling_during_publishes_never_fail_and_never_see_a_mix(settings, tmp_path):
    make_work_db(settings, 1)
    publishing.publish(settings, "gen-1", AS_OF)
    stop, out = tmp_path / "stop", tmp_path / "reads.jsonl"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(settings.published_db), str(stop), str(out)])
    seconds, swaps = [], []
    try:
        time.sleep(0.5)
        for g in range(2, 10):  # eight publishes while the reader polls
            make_work_db(settings, g)
            pub = publishing.publish(settings, f"gen-{g}", AS_OF)
            seconds.append(pub.seconds)
            swaps.append(pub.swap_seconds)
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        stop.touch()
        reader.wait(timeout=30)
    reads = [json.loads(line) for line in out.read_text().splitlines()]
    errors = [r["error"] for r in reads if "error" in r]
    mixed = [r for r in reads if "error" not in r
             and tuple(r["checksum"]) != expected_checksum(int(r["run_id"].split("-")[1]))]
    seen = {r["run_id"] for r in reads if "run_id" in r}
    print(f"\nreader: {len(reads)} polls, {len(errors)} errors, {len(mixed)} inconsistent, {len(seen)} nights seen; "
          f"publish {min(seconds):.2f}-{max(seconds):.2f} s, swap {max(swaps) * 1000:.1f} ms max")
    assert errors == []
    assert mixed == []
    assert len(reads) > 50
    assert len(seen) >= 5  # the reader really read across publishes
    assert published_run(settings) == "gen-9"


def test_status_shows_runs_publication_and_rollback(settings):
    from flows.status import record_finish, record_start, runs, status_text

    t0 = dt.datetime(2024, 12, 19, 19, 0, tzinfo=dt.timezone.utc)
    for g in (1, 2):
        make_work_db(settings, g)
        record_start(settings, f"run-{g}", AS_OF, t0 + dt.timedelta(days=g))
        publishing.publish(settings, f"run-{g}", AS_OF)
        record_finish(settings, {"run_id": f"run-{g}", "as_of": AS_OF, "started_at": t0 + dt.timedelta(days=g),
                                 "finished_at": t0 + dt.timedelta(days=g, seconds=42), "outcome": "published",
                                 "new_files": 3, "accepted": 2, "rejected": 1, "ecommerce": {"api_status": "ok"}})
    # a night that started and never ended (its process is gone): interrupted
    record_start(settings, "run-3", AS_OF, t0 + dt.timedelta(days=3))
    lines = settings.runs_log.read_text().splitlines()
    last = json.loads(lines[-1])
    last["pid"] = 2**22 + 1  # above the kernel's pid_max: no such process
    settings.runs_log.write_text("\n".join(lines[:-1] + [json.dumps(last)]) + "\n")
    with open(settings.runs_log, "a") as fh:
        fh.write('{"event": "finished", "run_id": "run-9", "outc')  # a line cut short by a kill
    assert [(r["run_id"], r["outcome"]) for r in runs(settings)] == [
        ("run-3", "interrupted"), ("run-2", "published"), ("run-1", "published")]

    text = status_text(settings)
    assert "run-3" in text and "interrupted" in text
    assert "2024-12-21 02:00:00" in text and "42 s" in text  # times in Asia/Ho_Chi_Minh
    assert "run run-2, as-of 2024-12-20" in text and "by a publish" in text
    assert "-> run run-2 (same run)" in text
    assert "`ocop rollback` would restore run-1" in text
    assert "e-commerce API:   ok" in text
    publishing.rollback(settings)
    text = status_text(settings)
    assert "run run-1, as-of 2024-12-20" in text and "by a rollback from run-2" in text
    assert "(nothing older kept)" in text


def test_published_file_is_readable_by_older_duckdb_drivers(tmp_path):
    """BI tools bundle older DuckDB drivers: the published file keeps the v1.1 storage format."""
    import duckdb

    from flows import publish

    work = tmp_path / "work.duckdb"
    con = duckdb.connect(str(work))
    con.execute("create schema marts; create table marts.t as select 1 as x")
    con.close()
    dest = tmp_path / "pub.duckdb"
    publish._write_database(None, work, dest, "run-1", dt.date(2024, 12, 20), dt.datetime.now(dt.timezone.utc))
    con = duckdb.connect(str(dest), read_only=True)
    try:
        version = con.execute("select tags['storage_version'] from duckdb_databases() "
                              "where database_name = 'pub'").fetchone()[0]
    finally:
        con.close()
    assert version == "v1.0.0+"  # a default DuckDB 2.0 file says 'v2.0.0+', which 1.x drivers refuse


# ------------------------------------------------------------------ built from the previous publication

def make_order_lines(settings, rows: list[tuple], *, replace: bool = False) -> None:
    """marts.fct_order_line in the working database as dbt's incremental model leaves it: rows
    (order_id, line_no, order_date, qty) are (re)written by key with a newer dbt_loaded_at."""
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.work_db))
    try:
        con.execute("create schema if not exists marts")
        con.execute("create table if not exists marts.fct_order_line (order_id varchar, line_no bigint, "
                    "order_date date, qty bigint, dbt_loaded_at timestamptz)")
        con.execute("create or replace table marts.small as select 1 as x")
        if replace:
            con.execute("delete from marts.fct_order_line")
        loaded_at = con.execute("select now()").fetchone()[0]
        con.execute("create temp table night (order_id varchar, line_no bigint, order_date date, qty bigint)")
        con.executemany("insert into night values (?, ?, ?, ?)", rows)
        con.execute("delete from marts.fct_order_line t using night n where t.order_id = n.order_id "
                    "and t.line_no = n.line_no")
        con.execute("insert into marts.fct_order_line select *, ?::timestamptz from night", [loaded_at])
    finally:
        con.close()
    time.sleep(0.01)  # the next night's rows are written later


def history_of_lines(n: int, months: int = 6) -> list[tuple]:
    return [(f"o{i}", 1, dt.date(2024, 1 + i % months, 1 + i % 28), i) for i in range(n)]


def assert_published_equals_work(settings) -> None:
    con = duckdb.connect(str(settings.published_db), read_only=True)
    try:
        con.execute(f"attach '{settings.work_db}' as work (read_only)")
        for a, b in (("marts.fct_order_line", "work.marts.fct_order_line"),
                     ("work.marts.fct_order_line", "marts.fct_order_line")):
            assert con.execute(f"select count(*) from (select * from {a} except all select * from {b})").fetchone()[0] == 0
        exported = con.execute(
            f"select order_id, line_no, order_date, qty, dbt_loaded_at from read_parquet("
            f"'{settings.exports_dir}/fct_order_line/*/*.parquet', hive_partitioning = true) "
            f"except all select * from marts.fct_order_line").fetchall()
        assert exported == []
        assert con.execute(f"select count(*) from read_parquet('{settings.exports_dir}/fct_order_line/*/*.parquet')"
                           ).fetchone()[0] == con.execute("select count(*) from marts.fct_order_line").fetchone()[0]
    finally:
        con.close()


def export_file(settings, run_id: str, month: str) -> Path:
    return settings.publications_dir / f"{run_id}.exports" / "fct_order_line" / f"order_month={month}" / "data_0.parquet"


def manifest(settings, run_id: str) -> dict:
    return json.loads((settings.publications_dir / f"{run_id}.json").read_text())


def test_a_night_is_published_from_the_previous_publication_and_its_changed_rows(settings):
    make_order_lines(settings, history_of_lines(3000))
    publishing.publish(settings, "run-1", AS_OF)
    first = manifest(settings, "run-1")
    assert first["built_from"] is None and first["increments"]["fct_order_line"]["months"] is None
    assert sorted(p.name for p in (settings.exports_dir / "fct_order_line").iterdir()) == [
        f"order_month=2024-0{m}" for m in range(1, 7)]
    assert_published_equals_work(settings)

    # the next night: new lines of a new month, a line re-sent, a line whose date moved to another month
    make_order_lines(settings, [("new1", 1, dt.date(2024, 7, 2), 5), ("new2", 1, dt.date(2024, 7, 3), 6),
                                ("o1", 1, dt.date(2024, 2, 2), 99), ("o2", 1, dt.date(2024, 5, 9), 7)])
    publishing.publish(settings, "run-2", AS_OF)
    second = manifest(settings, "run-2")
    assert second["built_from"] == "run-1" and second["generation"] == 1
    # o2 moved from March to May: both months are rewritten, with February (o1) and July (new)
    assert second["increments"]["fct_order_line"]["months"] == ["2024-02", "2024-03", "2024-05", "2024-07"]
    assert second["increments"]["fct_order_line"]["rows_applied"] == 4
    assert_published_equals_work(settings)
    # unchanged months are the previous export's files (hard links), changed ones new files
    for month in ("2024-01", "2024-04", "2024-06"):
        assert export_file(settings, "run-2", month).stat().st_ino == export_file(settings, "run-1", month).stat().st_ino
    for month in ("2024-02", "2024-03", "2024-05"):
        assert export_file(settings, "run-2", month).stat().st_ino != export_file(settings, "run-1", month).stat().st_ino
    # still in the storage format older DuckDB drivers read (test_published_file_is_readable_by_older_duckdb_drivers)
    con = duckdb.connect(str(settings.published_db), read_only=True)
    assert con.execute("select tags['storage_version'] from duckdb_databases() where database_name = 'ocop'"
                       ).fetchone()[0] == "v1.0.0+"
    con.close()
    # the previous publication is untouched and can still be rolled back to
    con = duckdb.connect(str(settings.publications_dir / "run-1.duckdb"), read_only=True)
    assert con.execute("select count(*), sum(qty) from marts.fct_order_line").fetchone() == (3000, sum(range(3000)))
    con.close()
    assert publishing.rollback(settings)["run_id"] == "run-1"


def test_after_a_rollback_the_next_night_builds_on_the_publication_in_use(settings):
    make_order_lines(settings, history_of_lines(500))
    publishing.publish(settings, "run-1", AS_OF)
    make_order_lines(settings, [("a", 1, dt.date(2024, 8, 1), 1)])
    publishing.publish(settings, "run-2", AS_OF)
    publishing.rollback(settings)
    make_order_lines(settings, [("b", 1, dt.date(2024, 9, 1), 2), ("o3", 1, dt.date(2024, 4, 4), 3)])
    publishing.publish(settings, "run-3", AS_OF)
    assert manifest(settings, "run-3")["built_from"] == "run-1"
    assert manifest(settings, "run-3")["increments"]["fct_order_line"]["months"] == ["2024-04", "2024-08", "2024-09"]
    assert_published_equals_work(settings)


def test_a_full_refresh_and_every_nth_publication_are_written_whole(settings, monkeypatch):
    make_order_lines(settings, history_of_lines(400))
    publishing.publish(settings, "run-1", AS_OF)
    make_order_lines(settings, history_of_lines(400), replace=True)  # dbt --full-refresh: every row rewritten
    publishing.publish(settings, "run-2", AS_OF)
    assert manifest(settings, "run-2")["increments"]["fct_order_line"]["months"] is None
    assert_published_equals_work(settings)
    monkeypatch.setattr(publishing, "REWRITE_EVERY", 2)
    make_order_lines(settings, [("c", 1, dt.date(2024, 1, 1), 1)])
    publishing.publish(settings, "run-3", AS_OF)   # generation 1 -> 2 would reach REWRITE_EVERY
    assert manifest(settings, "run-3")["built_from"] is None and manifest(settings, "run-3")["generation"] == 0
    assert_published_equals_work(settings)


def test_a_publication_that_would_not_match_the_working_marts_is_not_published(settings):
    make_order_lines(settings, history_of_lines(300))
    publishing.publish(settings, "run-1", AS_OF)
    before = settings.published_db.read_bytes()
    con = duckdb.connect(str(settings.work_db))
    con.execute("delete from marts.fct_order_line where order_id = 'o7'")  # gone without being rewritten
    con.close()
    with pytest.raises(publishing.PublishCheckFailed, match="299"):
        publishing.publish(settings, "run-2", AS_OF)
    assert settings.published_db.read_bytes() == before and exports_run(settings) == "run-1"
    assert not any(settings.publications_dir.glob("*run-2*"))


def test_the_gate_is_told_which_rows_the_publication_takes_from_the_working_marts(settings):
    make_order_lines(settings, history_of_lines(400))
    work = lambda: duckdb.connect(str(settings.work_db), read_only=True)  # noqa: E731
    con = work()
    assert publishing.incremental_since(settings, "fct_order_line", con) is None  # nothing published: all rows
    con.close()
    publishing.publish(settings, "run-1", AS_OF)
    make_order_lines(settings, [("n", 1, dt.date(2024, 9, 9), 1)])
    con = work()
    since = publishing.incremental_since(settings, "fct_order_line", con)
    assert since == manifest(settings, "run-1")["increments"]["fct_order_line"]["watermark"]
    assert con.execute("select count(*) from marts.fct_order_line where dbt_loaded_at > ?::timestamptz",
                       [since]).fetchone()[0] == 1
    con.close()
    make_order_lines(settings, history_of_lines(400), replace=True)  # a full refresh: copied whole
    con = work()
    assert publishing.incremental_since(settings, "fct_order_line", con) is None
    con.close()
