"""`ocop status`: the last run, each district's submission state, when the database was published."""
from __future__ import annotations

import datetime as dt
import json

import duckdb

from flows.config import Settings


def status_text(settings: Settings) -> str:
    lines = [f"warehouse: {settings.warehouse}"]
    last = settings.reports_dir / "last_run.json"
    if last.exists():
        run = json.loads(last.read_text(encoding="utf-8"))
        lines.append(f"last run: {run['run_id']}  {run['started_at']} → {run.get('finished_at') or '—'}  "
                     f"outcome {run['outcome']}  as-of {run['as_of']}")
        if run.get("message"):
            lines.append(f"  {run['message']}")
    else:
        lines.append("last run: none recorded")
    db = settings.published_db
    if not db.exists():
        lines.append("published database: none yet")
        return "\n".join(lines)
    modified = dt.datetime.fromtimestamp(db.stat().st_mtime, dt.timezone.utc)
    con = duckdb.connect(str(db), read_only=True)
    try:
        pub = con.execute("select run_id, published_at, as_of_date from meta.publication").fetchone()
        lines.append(f"published database: {db} (replaced {modified:%Y-%m-%d %H:%M:%S} UTC, run {pub[0]}, "
                     f"as-of {pub[2]})")
        rows = con.execute("""
            select district_code, district_name, period, status, errors, warnings, in_use, source_file
            from marts.submission_status
            qualify row_number() over (partition by district_code order by received_at desc) = 1
            order by district_code nulls last""").fetchall()
        lines.append("")
        lines.append(f"{'district':<26} {'period':<8} {'latest':<9} {'err':>4} {'warn':>5} {'in use':<6}  file")
        for code, name, period, status, errors, warnings, in_use, source in rows:
            label = f"{code or '?'} {name or '(unresolved)'}"
            lines.append(f"{label:<26} {period or '?':<8} {status:<9} {errors:>4} {warnings:>5} "
                         f"{'yes' if in_use else 'no':<6}  {source}")
    finally:
        con.close()
    return "\n".join(lines)
