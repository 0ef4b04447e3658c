"""One measured phase of the benchmark, run in its own process by bench/run.py (so each phase has
its own peak RSS and a cold start):

    python bench/_worker.py generate '{"inbox": "...", "next_dir": "...", "lines": N, "day_lines": N, "updates": N, "out": "..."}'
    python bench/_worker.py floor  '{"files": [...], "db": "...", "out": "..."}'
    python bench/_worker.py ingest '{"inbox": "...", "warehouse": "...", "out": "..."}'
    python bench/_worker.py night  '{"inbox": "...", "warehouse": "...", "as_of": "YYYY-MM-DD", "out": "..."}'

Writes a JSON result to `out`. `night` runs the real Prefect flow `flows.nightly.nightly` in this
process (Prefect's local mode: a temporary API server) and times its steps by wrapping the
functions the flow calls (dlt loads, dbt, the GX gates, publish, Parquet exports, dbt docs).
"""
from __future__ import annotations

import time

T_START = time.perf_counter()

import datetime as dt  # noqa: E402
import functools  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

# the flow's steps, by the function that does the work: (module, function, label)
STAGES = [
    ("flows.districts", "find_new_files", "districts_extract"),
    ("flows.districts", "parse_files", "districts_parse"),
    ("flows.districts", "load_submissions", "districts_load"),
    ("flows.ecommerce", "load_ecommerce", "ecommerce_load"),
    ("flows.districts", "pending_checks", "gate_submissions"),
    ("flows.gate", "validate_submissions", "gate_submissions"),
    ("flows.districts", "save_verdicts", "gate_submissions"),
    ("flows.alerts", "send_rejection_alerts", "alerts"),
    ("flows.alerts", "late_districts", "alerts"),
    ("flows.alerts", "send_late_alerts", "alerts"),
    ("flows.transform", "dbt_build", "dbt_build"),
    ("flows.gate", "validate_marts", "gate_marts"),
    ("flows.publish", "publish", "publish"),
    ("flows.publish", "export_parquet", "export_parquet"),
    ("flows.publish", "_write_database", "publish_database"),
    ("flows.publish", "_write_exports", "export_parquet"),
    ("flows.publish", "_copy_beside", "publish_copy_beside"),
    ("flows.publish", "_sha256", "publish_sha256"),
    ("flows.publish", "prune", "publish_prune"),
    ("flows.transform", "dbt_docs", "dbt_docs"),
]


FIRST_STAGE: list[float] = []
PEAK_AFTER: dict[str, float] = {}


def _timed(times: dict, label: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        if not FIRST_STAGE:
            FIRST_STAGE.append(t0)
        try:
            return fn(*args, **kwargs)
        finally:
            times[label] = times.get(label, 0.0) + time.perf_counter() - t0
            # this process's peak RSS so far (MB): the stage where it jumps is the one that needs the memory
            PEAK_AFTER[label] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return wrapper


def _instrument(times: dict) -> list[str]:
    done = []
    for module, name, label in STAGES:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        fn = getattr(mod, name, None)
        if callable(fn):
            setattr(mod, name, _timed(times, label, fn))
            done.append(f"{module}.{name}")
    return done


def generate(args: dict) -> dict:
    """The demo inbox (district workbooks, catalogue) with the demo's order lines replaced by the
    benchmark's history, and the next day's feed files in `next_dir`."""
    sys.path.insert(0, str(Path(__file__).parent))
    import feeds
    from flows.demo_data import write_demo_inbox

    inbox, work = Path(args["inbox"]), Path(args["inbox"]).parent
    t0 = time.perf_counter()
    write_demo_inbox(inbox)
    feed_dir = inbox / "ecommerce"
    for f in feed_dir.glob("orders*"):
        f.unlink()  # the demo's own ~32k order lines: replaced by the generated ones
    scratch = work / "generate.duckdb"
    hist = feeds.write_history(feed_dir, args["lines"], scratch)
    day = feeds.write_next_day(Path(args["next_dir"]), feed_dir, scratch, args["day_lines"], args["updates"],
                               hist["last_order"] + 1)
    scratch.unlink(missing_ok=True)
    files = sorted(feed_dir.glob("orders-*.jsonl.gz"))
    return {"seconds": time.perf_counter() - t0, "files": [str(f) for f in files],
            "feed_mb": sum(f.stat().st_size for f in files) / 2**20, **{k: v for k, v in hist.items() if k != "files"},
            "day_lines": day["day_lines"], "day_updates": day["updates"]}


def count(args: dict) -> dict:
    import duckdb

    db = Path(args["warehouse"]) / "ocop.duckdb"
    if not db.exists():
        return {"fct_order_line": None}
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {"fct_order_line": con.execute("select count(*) from marts.fct_order_line").fetchone()[0]}
    finally:
        con.close()


def versions(args: dict) -> dict:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist in ("duckdb", "pyarrow", "dlt", "prefect", "dbt-core", "dbt-duckdb", "great_expectations", "pandas"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _dbt_nodes(settings, since: float, top: int = 12) -> list:
    """The slowest dbt nodes of the night's build (run_results.json), when dbt ran."""
    path = Path(settings.dbt_target_dir) / "run_results.json"
    try:
        if path.stat().st_mtime < since:
            return []
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    nodes = [(r.get("unique_id", "?").split(".", 2)[-1], round(r.get("execution_time") or 0.0, 2))
             for r in data.get("results", [])]
    return sorted(nodes, key=lambda n: -n[1])[:top] + [("(all nodes)", round(sum(n[1] for n in nodes), 2))]


def floor(args: dict) -> dict:
    import duckdb

    sys.path.insert(0, str(Path(__file__).parent))
    from feeds import DUCKDB_COLUMNS

    cols = "{" + ", ".join(f"'{k}': '{v}'" for k, v in DUCKDB_COLUMNS.items()) + "}"
    files = "[" + ", ".join(f"'{f}'" for f in args["files"]) + "]"
    Path(args["db"]).unlink(missing_ok=True)
    con = duckdb.connect(args["db"])
    t0 = time.perf_counter()
    con.execute(f"create table order_lines as select * from read_json({files}, format = 'newline_delimited', "
                f"columns = {cols})")
    con.execute("checkpoint")
    seconds = time.perf_counter() - t0
    rows = con.execute("select count(*) from order_lines").fetchone()[0]
    con.close()
    return {"seconds": seconds, "rows": rows}


def ingest(args: dict) -> dict:
    from flows.config import load_settings
    from flows.ecommerce import load_ecommerce

    settings = load_settings(args["inbox"], args["warehouse"])
    t0 = time.perf_counter()
    report = load_ecommerce(settings)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "report": report.as_dict() if hasattr(report, "as_dict") else str(report)}


def night(args: dict) -> dict:
    times: dict[str, float] = {}
    import flows.cli

    if hasattr(flows.cli, "starting"):
        flows.cli.starting()  # as `ocop run` starts (run_night turns the collector back on)
    from flows.config import load_settings

    settings = load_settings(args["inbox"], args["warehouse"])
    if hasattr(flows.cli, "run_night"):
        api = flows.cli.start_prefect(settings)  # as `ocop run`: before the flow's modules are imported
        run = functools.partial(flows.cli.run_night, api=api)
    else:  # an older checkout (--code): the flow called as `ocop run` called it then
        run = None
    import flows.nightly  # noqa: F401 - the modules the flow uses, to instrument them

    instrumented = _instrument(times)
    t_import = time.perf_counter() - T_START
    t0 = time.perf_counter()
    wall_t0 = time.time()
    error = None
    summary: dict = {}
    flow_s = None  # the flow's seconds, without stopping the local server afterwards (that is shutdown)
    try:
        as_of = dt.date.fromisoformat(args["as_of"])
        summary = (run(settings, as_of) if run else
                   flows.nightly.nightly(inbox=args["inbox"], warehouse=args["warehouse"], as_of=as_of))
        flow_s = time.perf_counter() - t0
    except BaseException as exc:  # noqa: BLE001 - reported in the result
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    if flow_s is None:  # the flow raised: until then
        flow_s = time.perf_counter() - t0
    stages = dict(times)
    if "publish" in stages:  # the parts of publish timed separately, and the rest
        parts = ("export_parquet", "publish_database", "publish_copy_beside", "publish_sha256", "publish_prune")
        stages["publish_other"] = max(0.0, stages["publish"] - sum(stages.get(p, 0.0) for p in parts))
    return {"seconds": flow_s, "import_s": t_import, "stages": stages, "error": error,
            "flow_start_s": (FIRST_STAGE[0] - t0) if FIRST_STAGE else None,
            "peak_rss_mb_after": {k: round(v) for k, v in PEAK_AFTER.items()},
            "dbt_nodes": _dbt_nodes(settings, wall_t0),
            "outcome": summary.get("outcome"), "ecommerce": summary.get("ecommerce"),
            "published_tables": summary.get("published_tables"), "accepted": summary.get("accepted"),
            "rejected": summary.get("rejected"), "message": summary.get("message"), "instrumented": instrumented}


def main() -> int:
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    modes = {"generate": generate, "floor": floor, "ingest": ingest, "night": night, "count": count,
             "versions": versions}
    result = modes[mode](args)
    Path(args["out"]).write_text(json.dumps(result, default=str, indent=1), encoding="utf-8")
    return 0 if not result.get("error") else 1


if __name__ == "__main__":
    code = main()
    if sys.argv[1] == "night":
        import flows.cli

        if hasattr(flows.cli, "exit_fast"):
            flows.cli.exit_fast(code)  # as the `ocop` command ends
    sys.exit(code)
