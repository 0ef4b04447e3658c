"""`ocop status`, and the run history it reads.

What it shows: the last runs (start, end, outcome; a night killed midway shows as interrupted),
what is published (run, as-of date, when the file was last replaced and by what: publish or
rollback; kept publications), each input's freshness (newest district file received, newest feed
file and order line loaded), and each district's latest submission and whether it is in use.

Run history: `warehouse/reports/runs.jsonl`, one line when a night starts and one when it ends
(`record_start`, `record_finish`, called by the nightly flow). Status only ever reads; it never
takes the run lock, so it cannot get in the way of a night that is starting.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path

import duckdb

from flows import publish as publishing
from flows.config import MARTS_SCHEMA, RAW_DATASET, TIMEZONE, Settings

_SUMMARY_FIELDS = ("run_id", "as_of", "started_at", "finished_at", "outcome", "new_files", "accepted", "rejected",
                   "published_tables", "message")


# ------------------------------------------------------------------------------------------ run history

def _append(settings: Settings, record: dict) -> None:
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.runs_log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def record_start(settings: Settings, run_id: str, as_of: dt.date, started_at: dt.datetime) -> None:
    _append(settings, {"event": "started", "run_id": run_id, "as_of": as_of, "started_at": started_at,
                       "pid": os.getpid(), "host": socket.gethostname()})


def record_finish(settings: Settings, summary: dict) -> None:
    """The end of a night: its outcome and counts (from RunSummary.as_dict())."""
    record = {"event": "finished", **{k: summary.get(k) for k in _SUMMARY_FIELDS}}
    eco = summary.get("ecommerce") or {}
    record["ecommerce"] = {k: eco.get(k) for k in ("files_loaded", "rows_loaded", "api_status", "api_error") if k in eco}
    if isinstance(record["ecommerce"].get("files_loaded"), list):
        record["ecommerce"]["files_loaded"] = len(record["ecommerce"]["files_loaded"])
    _append(settings, record)


def _alive(pid: int | None, host: str | None) -> bool:
    if not pid or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        return True
    try:  # killed but not yet reaped by its parent: a zombie is not a running night
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def runs(settings: Settings, limit: int = 10) -> list[dict]:
    """The last `limit` runs, newest first: start and end merged; outcome `running` or `interrupted`
    when a night has no end record (its process is alive, or was killed)."""
    by_id: dict[str, dict] = {}
    path = settings.runs_log
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        run = by_id.setdefault(rec.get("run_id") or "?", {"run_id": rec.get("run_id")})
        event = rec.pop("event", None)
        run.update({k: v for k, v in rec.items() if v is not None})
        run["finished"] = run.get("finished") or event == "finished"
    if not by_id:  # history from before runs.jsonl existed
        last = settings.reports_dir / "last_run.json"
        if last.exists():
            rec = json.loads(last.read_text(encoding="utf-8"))
            by_id[rec["run_id"]] = {**{k: rec.get(k) for k in _SUMMARY_FIELDS}, "finished": True}
    out = sorted(by_id.values(), key=lambda r: str(r.get("started_at") or ""), reverse=True)[:limit]
    for r in out:
        if not r.get("finished"):
            r["outcome"] = "running" if _alive(r.get("pid"), r.get("host")) else "interrupted"
    return out


# ------------------------------------------------------------------------------------------ reading the warehouse

def _ts(value) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _local(value, with_date: bool = True) -> str:
    t = _ts(value)
    if t is None:
        return "—"
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(TIMEZONE).strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def _connect(db: Path) -> duckdb.DuckDBPyConnection | None:
    if not db.exists():
        return None
    try:
        return duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return None  # a night holds the working database (DuckDB: one writer XOR many readers)


def _one(con, sql: str, params=()):
    try:
        return con.execute(sql, list(params)).fetchone()
    except duckdb.Error:
        return None


def _published(settings: Settings) -> dict:
    db = settings.published_db
    info: dict = {"path": str(db), "exists": db.exists()}
    if not db.exists():
        return info
    info["file_modified_at"] = dt.datetime.fromtimestamp(db.stat().st_mtime, dt.timezone.utc)
    meta = publishing.read_publication_meta(db)
    if meta:
        info.update(run_id=meta["run_id"], built_at=meta["published_at"], as_of=meta["as_of_date"])
    events = publishing.history(settings)
    if events:
        last = events[-1]
        info.update(replaced_at=last["at"], replaced_by=last["event"], replaced_from=last.get("from_run_id"))
    else:
        info.update(replaced_at=info["file_modified_at"], replaced_by="publish")
    kept = publishing.publications(settings)
    info["kept"] = [p["run_id"] for p in kept]
    ids = info["kept"]
    current = info.get("run_id")
    older = ids[: ids.index(current)] if current in ids else ids
    info["rollback_to"] = older[-1] if older else None
    target = publishing.exports_target(settings)
    info["exports"] = str(settings.exports_dir)
    if target is not None:
        manifest = target / publishing.EXPORTS_MANIFEST
        try:
            info["exports_run_id"] = json.loads(manifest.read_text(encoding="utf-8"))["run_id"]
        except (OSError, ValueError, KeyError):
            info["exports_run_id"] = None
    return info


def _districts(settings: Settings) -> list[dict]:
    con = _connect(settings.published_db)
    if con is None:
        return []
    try:
        rows = con.execute(f"""
            with latest as (
                select * from {MARTS_SCHEMA}.submission_status where district_code is not null
                qualify row_number() over (partition by district_code order by received_at desc) = 1),
            in_use as (
                select district_code, period, source_file, received_at from {MARTS_SCHEMA}.submission_status
                where in_use)
            select d.district_code, d.district_name, l.period, l.status, l.errors, l.warnings, l.in_use,
                   l.source_file, l.received_at, u.period, u.source_file
            from {MARTS_SCHEMA}.dim_district d
            left join latest l using (district_code)
            left join in_use u using (district_code)
            order by d.district_code""").fetchall()
        unresolved = _one(con, f"select count(*) from {MARTS_SCHEMA}.submission_status where district_code is null")
    except duckdb.Error:
        return []
    finally:
        con.close()
    out = [dict(zip(("district_code", "district_name", "period", "status", "errors", "warnings", "in_use",
                     "source_file", "received_at", "in_use_period", "in_use_file"), r)) for r in rows]
    if unresolved and unresolved[0]:
        out.append({"district_code": None, "district_name": "(district not resolved)", "status": "rejected",
                    "count": unresolved[0]})
    return out


def _inputs(settings: Settings) -> dict:
    """Freshness of each input, from raw in the working database (or, while a night holds it,
    from the published marts)."""
    con = _connect(settings.work_db)
    if con is not None:
        try:
            out: dict = {"source": "raw (working database)"}
            r = _one(con, f"select max(received_at), arg_max(source_file, received_at), count(*) from {RAW_DATASET}.submissions")
            if r:
                out["district_file"] = {"received_at": r[0], "file": r[1], "files": r[2]}
            r = _one(con, f"select max(loaded_at), arg_max(source_file, loaded_at), count(*) from {RAW_DATASET}.ecommerce_files")
            if r:
                out["feed_file"] = {"loaded_at": r[0], "file": r[1], "files": r[2]}
            r = _one(con, f"select max(updated_at), count(*) from {RAW_DATASET}.ecommerce_order_lines")
            if r:
                out["order_lines"] = {"updated_at": r[0], "rows": r[1]}
            r = _one(con, f"select max(updated_at), count(*) from {RAW_DATASET}.ecommerce_listings")
            if r:
                out["listings"] = {"updated_at": r[0], "rows": r[1]}
            return out
        finally:
            con.close()
    con = _connect(settings.published_db)
    out = {"source": "published marts (the working database is busy or missing)"}
    if con is None:
        return out
    try:
        r = _one(con, f"select max(received_at), arg_max(source_file, received_at), count(*) from {MARTS_SCHEMA}.submission_status")
        if r:
            out["district_file"] = {"received_at": r[0], "file": r[1], "files": r[2]}
        r = _one(con, f"select max(updated_at), count(*) from {MARTS_SCHEMA}.fct_order_line")
        if r:
            out["order_lines"] = {"updated_at": r[0], "rows": r[1]}
    finally:
        con.close()
    return out


def status_data(settings: Settings, last: int = 5) -> dict:
    recent = runs(settings, last)
    api = next((r.get("ecommerce", {}).get("api_status") for r in recent if r.get("ecommerce")), None)
    return {"warehouse": str(settings.warehouse), "runs": recent, "published": _published(settings),
            "inputs": {**_inputs(settings), "api_status": api}, "districts": _districts(settings)}


# ------------------------------------------------------------------------------------------ text

def _duration(run: dict) -> str:
    a, b = _ts(run.get("started_at")), _ts(run.get("finished_at"))
    if not a or not b or not run.get("finished"):
        return ""
    return f"{(b - a).total_seconds():.0f} s"


def status_text(settings: Settings, last: int = 5) -> str:
    data = status_data(settings, last)
    tz = "Asia/Ho_Chi_Minh"
    lines = [f"OCOP warehouse {data['warehouse']}   (times in {tz})", ""]

    lines.append(f"Last runs (newest first, up to {last}):")
    if not data["runs"]:
        lines.append("  none recorded")
    else:
        lines.append(f"  {'run':<26} {'as-of':<10}  {'started':<19}  {'finished':<19}  {'took':>5}  {'outcome':<12} "
                     f"{'files':>5}  {'acc/rej':>7}")
        for r in data["runs"]:
            finished = _local(r.get("finished_at")) if r.get("finished") else "—"
            lines.append(f"  {r.get('run_id') or '?':<26} {str(r.get('as_of') or '?'):<10}  {_local(r.get('started_at')):<19}  "
                         f"{finished:<19}  {_duration(r):>5}  {r.get('outcome') or '?':<12} "
                         f"{r.get('new_files') if r.get('new_files') is not None else '':>5}  "
                         f"{(str(r.get('accepted', '')) + '/' + str(r.get('rejected', ''))) if r.get('finished') else '':>7}")
        newest = data["runs"][0]
        if newest.get("message") and newest.get("outcome") != "published":
            lines.append(f"  last message: {newest['message'][:300]}")
        if newest.get("outcome") == "interrupted":
            lines.append("  the newest run was interrupted: the next `ocop run` resumes (the published database was not touched "
                         "unless its swap completed)")
    lines.append("")

    pub = data["published"]
    if not pub.get("exists"):
        lines.append(f"Published database: none yet ({pub['path']})")
    else:
        lines.append(f"Published database: {pub['path']}")
        lines.append(f"  run {pub.get('run_id', '?')}, as-of {pub.get('as_of', '?')}, built {_local(pub.get('built_at'))}")
        how = "by a rollback" + (f" from {pub['replaced_from']}" if pub.get("replaced_from") else "") \
            if pub.get("replaced_by") == "rollback" else "by a publish"
        lines.append(f"  last replaced {_local(pub.get('replaced_at'))} {how}")
        if "exports_run_id" in pub:
            same = "same run" if pub["exports_run_id"] == pub.get("run_id") else "DIFFERENT run: run `ocop run` to repair"
            lines.append(f"  Parquet exports: {pub['exports']} -> run {pub['exports_run_id']} ({same})")
        lines.append(f"  kept publications: {len(pub.get('kept', []))}; `ocop rollback` would restore "
                     f"{pub.get('rollback_to') or '(nothing older kept)'}")
    lines.append("")

    inp = data["inputs"]
    lines.append(f"Inputs (from {inp.get('source')}):")
    d = inp.get("district_file")
    lines.append(f"  district files:   newest received {_local(d['received_at'])}  {d['file']}  ({d['files']} files in all)"
                 if d and d.get("received_at") else "  district files:   none received")
    f = inp.get("feed_file")
    if f is not None:
        lines.append(f"  feed files:       newest loaded {_local(f['loaded_at'])}  {f['file']}  ({f['files']} files in all)"
                     if f.get("loaded_at") else "  feed files:       none loaded")
    o = inp.get("order_lines")
    lines.append(f"  order lines:      newest updated_at {_local(o['updated_at'])}  ({o['rows']} lines)"
                 if o and o.get("updated_at") else "  order lines:      none loaded")
    li = inp.get("listings")
    if li is not None:
        lines.append(f"  listings:         newest updated_at {_local(li['updated_at'])}  ({li['rows']} listings)"
                     if li.get("updated_at") else "  listings:         none loaded")
    if inp.get("api_status"):
        lines.append(f"  e-commerce API:   {inp['api_status']} (last run)")
    lines.append("")

    if data["districts"]:
        lines.append("Districts (latest submission; the one in use):")
        lines.append(f"  {'district':<24} {'period':<8} {'status':<9} {'err':>4} {'warn':>5}  {'in use':<6}  latest file / in use instead")
        for r in data["districts"]:
            if r.get("district_code") is None:
                lines.append(f"  {r['district_name']:<24} {r['count']} file(s), rejected")
                continue
            label = f"{r['district_code']} {r['district_name'] or ''}"
            if r.get("status") is None:
                lines.append(f"  {label:<24} {'—':<8} {'none':<9}")
                continue
            note = r["source_file"] or ""
            if not r["in_use"]:
                note += (f"  (in use: {r['in_use_period']} {r['in_use_file']})" if r.get("in_use_period")
                         else "  (no accepted submission in use)")
            lines.append(f"  {label:<24} {r['period'] or '?':<8} {r['status']:<9} {r['errors']:>4} {r['warnings']:>5}  "
                         f"{'yes' if r['in_use'] else 'no':<6}  {note}")
    return "\n".join(lines)
