"""A dbt process kept warm for one night (see flows/transform.py, `WarmDbt`).

Importing dbt takes ~1.4 s and parsing the project ~1 s before a build runs its first node. A
night starts this process when it starts, so that by the time the night reaches its dbt build, dbt
is imported and the project parsed; the build then only runs its nodes. It imports and parses at
idle priority (Linux SCHED_IDLE): while the night starts, Prefect's local server boots on the other
core and the night waits for it, not for dbt, so this process only takes CPU nobody else wants (a
night with nothing new pays nothing for it). Its dbt invocations run at normal priority.

Run as a script (`python flows/dbt_worker.py`; it imports nothing of the project). Protocol, one
JSON object per line:
- in (stdin): {"env": {...}, "args": [...]}: set `env`, run dbt with `args` (the first command
  is a `parse`, whose manifest the following invocations reuse);
- out (the original stdout): {"success": bool, "nodes": int, "failures": [...]} per command.
dbt's own console output goes to stderr. The process ends when its stdin closes, or when the
process that started it dies (it is started through flows/orphan_guard.py).
"""
from __future__ import annotations

import gc
import json
import os
import sys


def summarize(result) -> dict:
    """A dbtRunner result as {"success", "nodes", "failures"} (failures: "unique_id: status — message")."""
    failures: list[str] = []
    nodes = 0
    res = result.result
    if res is not None and hasattr(res, "results"):
        for r in res.results:
            nodes += 1
            status = str(getattr(r.status, "value", r.status))
            if status in ("error", "fail"):
                failures.append(f"{r.node.unique_id}: {status} — {(r.message or '').strip()[:500]}")
    if result.exception is not None:
        failures.append(f"dbt: {result.exception}")
    return {"success": bool(result.success), "nodes": nodes, "failures": failures}


def invoke(args: list[str], manifest=None) -> tuple[dict, object]:
    """Run dbt in this process; then release dbt-duckdb's hold on the database file. Returns the
    summary and the parsed manifest (for a `parse`)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.cli.main import dbtRunner

    try:
        result = dbtRunner(manifest=manifest).invoke(args)
    finally:
        DuckDBConnectionManager.close_all_connections()
        gc.collect()
    parsed = result.result if args[:1] == ["parse"] and result.success else None
    return summarize(result), parsed


def _priority(idle: bool) -> None:
    """Idle priority (Linux) for the preparation, normal priority for the night's dbt invocations."""
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE if idle else os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass


def main() -> int:
    # no cycle collection while dbt is imported and the project parsed: the heap grows by hundreds
    # of thousands of objects that live as long as the process (dbt's modules, the manifest), and
    # the collector would go through them again and again (~0.4 s). The parse ends with a full
    # collection (`invoke`); then they are frozen out of the collector's sight and it is on again
    # for the builds.
    gc.disable()
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # whatever dbt prints goes to stderr, not into the replies
    _priority(idle=True)
    manifest = None
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        os.environ.update(command.get("env") or {})
        args = list(command["args"])
        if args[:1] != ["parse"]:
            _priority(idle=False)
        try:
            summary, parsed = invoke(args, manifest if args[:1] != ["parse"] else None)
        except BaseException as exc:  # noqa: BLE001 - reported to the night, which decides
            summary, parsed = {"success": False, "nodes": 0, "failures": [f"dbt: {type(exc).__name__}: {exc}"]}, None
        if parsed is not None:
            manifest = parsed
        if not gc.isenabled():
            gc.freeze()
            gc.enable()
        replies.write(json.dumps(summary, ensure_ascii=False) + "\n")
    gc.freeze()  # end without collecting dbt's manifest object by object (~1 s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
