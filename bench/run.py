"""Benchmark of the OCOP warehouse: feed ingest and whole nights with millions of order lines.

    python bench/run.py [--lines N] [--out FILE] [--day-lines N] [--updates N] [--repeat N] [--work DIR] [--keep]

Generates the demo district workbooks and catalogue plus N order lines (default 1,000,000) as
monthly gzip JSON Lines feed files (bench/feeds.py), then measures, each phase in its own process:

1. floor        bare DuckDB `read_json` of the same order files into a table (CTAS);
2. ingest       the project's feed ingest, `flows.ecommerce.load_ecommerce`, into a fresh working DB;
3. full night   the real nightly Prefect flow (`flows.nightly.nightly`, local mode) on the whole inbox;
4. incremental  one more day of orders (`--day-lines` new lines + `--updates` re-sent older lines);
5. rerun        the same night again with nothing new.

The floor and the ingest run `--repeat` times (default 3), one after the other, and their medians
are reported: on a shared machine one run of either varies by ±10 %.

Prints a table and writes JSON (default bench/results/<timestamp>-<N>.json; git-ignored) with
rows/s, wall seconds and peak RSS of each phase, the ratios and the per-stage seconds of the nights.
Peak RSS: the largest single process of the phase (`ru_maxrss` from wait4), and the sampled peak of
the phase's whole process tree (Prefect's temporary API server included).

The nights run as-of 2024-12-20 (full) and 2024-12-21 (incremental, rerun). Not part of the test
suite (a 10M run takes tens of minutes).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent

FULL_AS_OF = "2024-12-20"
NEXT_AS_OF = "2024-12-21"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# --------------------------------------------------------------------------------------------
# Running a phase in a child process: wall seconds, ru_maxrss, sampled process-tree RSS
# --------------------------------------------------------------------------------------------
def _tree_rss_kb(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * PAGE_KB
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def run_phase(name: str, mode: str, args: dict, env: dict, logs: Path) -> dict:
    out = logs / f"{name}.json"
    out.unlink(missing_ok=True)
    args = {**args, "out": str(out)}
    log = open(logs / f"{name}.log", "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(BENCH_DIR / "_worker.py"), mode, json.dumps(args)],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(logs))
    peak_tree = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not stop.wait(0.25):
            peak_tree = max(peak_tree, _tree_rss_kb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    log.close()
    result = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {"error": "no result"}
    result.update(wall_s=wall, peak_rss_mb=usage.ru_maxrss / 1024, peak_tree_rss_mb=peak_tree / 1024,
                  cpu_s=usage.ru_utime + usage.ru_stime, exit_code=proc.returncode)
    if proc.returncode != 0:
        print(f"  ! {name} exited with {proc.returncode}: see {logs / (name + '.log')}", file=sys.stderr)
    return result


# --------------------------------------------------------------------------------------------
def machine(env: dict, logs: Path) -> dict:
    """Cores, memory, CPU, library versions (read by a worker: this process stays small, so the
    children's peak RSS, which starts from this process's at fork, is theirs)."""
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = run_phase("versions", "versions", {}, env, logs)
    versions = {k: v for k, v in versions.items() if isinstance(v, str)}
    return {"cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1), "cpu": cpu,
            "kernel": platform.release(), "versions": versions}


def git_commit(code: Path) -> str | None:
    try:
        head = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(code), "status", "--porcelain", "--", "flows", "dbt_project"],
                               capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _median_run(runs: list[dict]) -> dict:
    """The run of median seconds (the lower middle one of an even number), with the highest peak RSS
    of all the runs."""
    run = dict(sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2])
    run["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    run["peak_tree_rss_mb"] = max(r["peak_tree_rss_mb"] for r in runs)
    return run


def _runs(runs: list[dict]) -> str:
    return f"{len(runs)}: " + " / ".join(f"{r['seconds']:.2f}" for r in runs) + " s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=1_000_000, help="order lines of history (default 1,000,000)")
    p.add_argument("--out", type=Path, help="JSON result (default bench/results/<timestamp>-<lines>.json)")
    p.add_argument("--day-lines", type=int, default=10_000, help="new order lines of the incremental night")
    p.add_argument("--updates", type=int, default=500, help="older lines re-sent (returned/cancelled) that night")
    p.add_argument("--work", type=Path, help="scratch folder (default: a new temporary folder, removed)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--code", type=Path, default=BENCH_DIR.parent,
                   help="the project checkout to measure (default: this one)")
    p.add_argument("--skip", default="", help="comma-separated phases to skip: floor,ingest,nights")
    p.add_argument("--repeat", type=int, default=3,
                   help="floor and ingest runs, alternately; their medians are reported (default 3)")
    a = p.parse_args(argv)
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    code = a.code.resolve()

    work = (a.work or Path(tempfile.mkdtemp(prefix="ocop-bench-"))).resolve()
    if a.work and work.exists() and any(work.iterdir()):
        if not (work / ".ocop-bench").exists():
            p.error(f"--work {work} is not empty and not a benchmark scratch folder")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / ".ocop-bench").touch()
    logs = work / "logs"
    logs.mkdir()
    inbox = work / "inbox"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "PREFECT_HOME": str(work / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "OCOP_ALERT_URLS": ""}
    for k in ("OCOP_INBOX", "OCOP_WAREHOUSE", "OCOP_FEED_API_URL", "OCOP_FEED_API_TOKEN", "OCOP_TEST_MARKER_DIR",
              "OCOP_TEST_PAUSE_AT"):
        env.pop(k, None)

    started = dt.datetime.now()
    result: dict = {"lines": a.lines, "day_lines": a.day_lines, "updates": a.updates,
                    "started_at": started.isoformat(timespec="seconds"), "code": str(code),
                    "commit": git_commit(code), "machine": machine(env, logs), "loadavg_start": loadavg(),
                    "command": " ".join(["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])])}
    print(f"OCOP benchmark: {a.lines:,} order lines; scratch {work}")

    # ---- data ---------------------------------------------------------------------------------
    next_dir = work / "next-day"
    feed_dir = inbox / "ecommerce"
    gen = run_phase("generate", "generate", {"inbox": str(inbox), "next_dir": str(next_dir), "lines": a.lines,
                                              "day_lines": a.day_lines, "updates": a.updates}, env, logs)
    if gen.get("exit_code"):
        print("  generation failed", file=sys.stderr)
        return 1
    order_files = gen["files"]
    result["generate_s"] = round(gen["wall_s"], 1)
    result["feed_files"] = len(order_files)
    result["feed_mb"] = round(gen["feed_mb"], 1)
    print(f"  generated {a.lines:,} lines in {len(order_files)} monthly files ({result['feed_mb']} MB gz) "
          f"+ next day {gen['day_lines']:,} lines, {gen['day_updates']:,} updates ({result['generate_s']} s)")

    phases: dict[str, dict] = {}

    # ---- 1-2. floor and ingest, alternately, `--repeat` times: medians --------------------------
    floor_runs: list[dict] = []
    ingest_runs: list[dict] = []
    for i in range(a.repeat):
        if "floor" not in skip:
            r = run_phase("floor", "floor", {"files": order_files, "db": str(work / "floor.duckdb")}, env, logs)
            (work / "floor.duckdb").unlink(missing_ok=True)
            if r.get("seconds"):
                floor_runs.append(r)
        if "ingest" not in skip:
            r = run_phase("ingest", "ingest", {"inbox": str(inbox), "warehouse": str(work / "ingest-warehouse")},
                          env, logs)
            shutil.rmtree(work / "ingest-warehouse", ignore_errors=True)
            if r.get("seconds"):
                ingest_runs.append(r)
    if floor_runs:
        phases["floor"] = _median_run(floor_runs)
        result["floor_s"] = round(phases["floor"]["seconds"], 2)
        result["floor_runs_s"] = [round(r["seconds"], 3) for r in floor_runs]
        result["floor_rows_per_s"] = round(a.lines / phases["floor"]["seconds"])
        print(f"  floor  (DuckDB read_json CTAS): {result['floor_s']:.2f} s, {result['floor_rows_per_s']:,} rows/s "
              f"(median of {_runs(floor_runs)}), peak {phases['floor']['peak_rss_mb']:.0f} MB")
    if ingest_runs:
        phases["ingest"] = _median_run(ingest_runs)
        result["ingest_s"] = round(phases["ingest"]["seconds"], 2)
        result["ingest_runs_s"] = [round(r["seconds"], 3) for r in ingest_runs]
        result["ingest_rows_per_s"] = round(a.lines / phases["ingest"]["seconds"])
        result["ingest_ratio"] = _ratio(result["ingest_rows_per_s"], result.get("floor_rows_per_s"))
        if len(floor_runs) == len(ingest_runs):  # each ingest against the floor measured just before it
            result["ingest_ratio_runs"] = [round(f["seconds"] / r["seconds"], 3) for f, r in zip(floor_runs, ingest_runs)]
        print(f"  ingest (load_ecommerce):        {result['ingest_s']:.2f} s, {result['ingest_rows_per_s']:,} rows/s "
              f"(median of {_runs(ingest_runs)}), ratio {result['ingest_ratio']}"
              + (f" (each run: {', '.join(map(str, result['ingest_ratio_runs']))})" if "ingest_ratio_runs" in result else "")
              + f", peak {phases['ingest']['peak_rss_mb']:.0f} MB")

    # ---- 3-5. nights --------------------------------------------------------------------------
    if "nights" not in skip:
        warehouse = work / "warehouse"
        nights = [("full_night", FULL_AS_OF), ("incremental_night", NEXT_AS_OF), ("rerun", NEXT_AS_OF)]
        for name, as_of in nights:
            if name == "incremental_night":
                for f in sorted(next_dir.iterdir()):
                    shutil.copy2(f, feed_dir / f.name)
            r = run_phase(name, "night", {"inbox": str(inbox), "warehouse": str(warehouse), "as_of": as_of},
                          env, logs)
            phases[name] = r
            result[f"{name}_s"] = round(r["wall_s"], 2)
            result[f"{name}_outcome"] = r.get("outcome")
            stages = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r.get("stages", {}).items(), key=lambda kv: -kv[1])
                               if v >= 0.05)
            print(f"  {name:17s} {r['wall_s']:7.1f} s wall ({r.get('outcome')}), peak {r['peak_rss_mb']:.0f} MB "
                  f"(tree {r['peak_tree_rss_mb']:.0f} MB); start-up {r.get('import_s', 0) + (r.get('flow_start_s') or 0):.1f}; "
                  f"{stages}")
            if r.get("error"):
                print(f"    error: {r['error']}")
        result["full_night_rows_per_s"] = round(a.lines / result["full_night_s"]) if result.get("full_night_s") else None
        result["incremental_ratio"] = _ratio(result.get("incremental_night_s"), result.get("full_night_s"))
        result["rerun_ratio"] = _ratio(result.get("rerun_s"), result.get("full_night_s"))
        result["published_order_lines"] = run_phase("count", "count", {"warehouse": str(warehouse)}, env,
                                                    logs).get("fct_order_line")
        expected = a.lines + gen["day_lines"]
        if result["published_order_lines"] != expected:
            print(f"  ! published fct_order_line has {result['published_order_lines']} rows, expected {expected}",
                  file=sys.stderr)

    result["peak_rss_mb"] = round(max((r["peak_rss_mb"] for r in phases.values()), default=0), 1)
    result["peak_tree_rss_mb"] = round(max((r["peak_tree_rss_mb"] for r in phases.values()), default=0), 1)
    for name, r in phases.items():
        result[f"{name}_peak_rss_mb"] = round(r["peak_rss_mb"], 1)
        if "stages" in r:
            result[f"{name}_stages_s"] = {k: round(v, 2) for k, v in sorted(r["stages"].items())}
            # start-up: interpreter + imports, then flow start (Prefect's temporary server) to the first step;
            # shutdown: after the flow returned (the temporary server stops) until the process exited
            result[f"{name}_startup_s"] = round(r["import_s"] + (r.get("flow_start_s") or 0.0), 2)
            result[f"{name}_shutdown_s"] = round(r["wall_s"] - r["import_s"] - r["seconds"], 2)
            result[f"{name}_dbt_nodes_s"] = r.get("dbt_nodes")
            result[f"{name}_peak_rss_mb_after_stage"] = r.get("peak_rss_mb_after")
    result["phases"] = {k: {kk: vv for kk, vv in v.items() if kk not in ("instrumented",)} for k, v in phases.items()}
    result["finished_at"] = dt.datetime.now().isoformat(timespec="seconds")
    result["loadavg_end"] = loadavg()

    out = a.out or BENCH_DIR / "results" / f"{started:%Y%m%dT%H%M%S}-{a.lines}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str, ensure_ascii=False), encoding="utf-8")

    keys = ["lines", "floor_rows_per_s", "ingest_rows_per_s", "ingest_ratio", "full_night_s", "incremental_night_s",
            "rerun_s", "incremental_ratio", "rerun_ratio", "peak_rss_mb"]
    print("\n" + "\n".join(f"  {k:22s} {result.get(k)}" for k in keys))
    print(f"\n  written to {out}")
    if not a.keep and not a.work:
        shutil.rmtree(work, ignore_errors=True)
    elif a.keep or a.work:
        print(f"  scratch kept in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
