"""dbt: `dbt build` (staging → intermediate → marts, with tests) on the working database, in the
night's warm dbt process (WarmDbt) or in this one."""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from flows.config import DBT_PROJECT_DIR, RAW_DATASET, Settings
from flows.orphan_guard import end, guarded

log = logging.getLogger(__name__)

REFERENCE_SCHEMA = "reference"  # where dbt_project.yml puts the seeds


class DbtFailed(RuntimeError):
    pass


@dataclass
class DbtOutcome:
    success: bool
    nodes: int
    failures: list[str]
    scope: str = "everything"  # of a build: what it rebuilt (dbt_build)


def _dbt_args(settings: Settings, args: list[str], target_path: str | None = None) -> list[str]:
    return [*args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", target_path or str(settings.dbt_target_dir),
            "--log-path", str(settings.work_dir / "dbt-logs"), "--quiet"]


class WarmDbt:
    """dbt in a process of its own, started when the night starts (flows/dbt_worker.py).

    It imports dbt and parses the project while the night starts, extracts, loads and validates,
    which saves the dbt step ~2.4 s. The build runs there against the working database,
    as it would in this process; each invocation closes its connections before it answers. If the
    process is gone or never answers, run_dbt() runs dbt in this process instead."""

    def __init__(self, settings: Settings, as_of: dt.date | None):
        self.settings = settings
        self.as_of = as_of
        self.process: subprocess.Popen | None = None
        self._pending = 0  # commands sent, not answered yet
        self.answered = 0  # invocations it ran (the parse not counted)

    def start(self) -> "WarmDbt":
        # this process's environment; each command carries dbt's (Settings.dbt_environment)
        self.process = subprocess.Popen(
            guarded([sys.executable, str(Path(__file__).with_name("dbt_worker.py"))]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8")
        self._send(["parse", "--no-write-json"], self.as_of)  # answered later, before the first invocation's answer
        self._pending += 1
        return self

    def _send(self, args: list[str], as_of: dt.date | None, target_path: str | None = None) -> None:
        command = {"env": self.settings.dbt_environment(as_of), "args": _dbt_args(self.settings, args, target_path)}
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def invoke(self, args: list[str], as_of: dt.date | None, target_path: str | None = None) -> DbtOutcome | None:
        """dbt `args` in the warm process; None when it cannot run them (it died)."""
        if self.process is None or self.process.poll() is not None:
            self.stop()
            return None
        try:
            self._send(args, as_of, target_path)
            self._pending += 1
            reply = None
            while self._pending:
                line = self.process.stdout.readline()
                if not line:  # it died (killed, out of memory)
                    self.stop()
                    return None
                self._pending -= 1
                reply = json.loads(line)
        except (OSError, ValueError) as exc:
            log.warning("the warm dbt process failed (%s: %s); dbt runs in this process", type(exc).__name__, exc)
            self.stop()
            return None
        self.answered += 1
        return DbtOutcome(reply["success"], reply["nodes"], reply["failures"])

    def stop(self) -> None:
        """End the process: at once if it is still parsing for a build the night did not need."""
        if self.process is None:
            return
        with contextlib.suppress(OSError):
            self.process.stdin.close()  # it ends when it has answered what it was sent
        end(self.process, terminate=bool(self._pending))
        self.process.stdout.close()
        self.process = None
        self._pending = 0


_warm: WarmDbt | None = None


def _warm_for(settings: Settings) -> WarmDbt | None:
    """The warm dbt process of the night on `settings`' working database, if one runs."""
    return _warm if _warm is not None and _warm.settings.work_db == settings.work_db else None


@contextlib.contextmanager
def warm_dbt(settings: Settings, as_of: dt.date | None) -> Iterator[WarmDbt | None]:
    """For the block, a WarmDbt that run_dbt() uses for `settings`' working database."""
    global _warm
    if _warm_for(settings) is not None:  # started earlier (`ocop run`)
        yield _warm
        return
    try:
        warm = WarmDbt(settings, as_of).start()
    except OSError as exc:
        log.warning("could not start a dbt process (%s); dbt runs in this process", exc)
        yield None
        return
    _warm = warm
    try:
        yield warm
    finally:
        _warm = None
        warm.stop()


def run_dbt(settings: Settings, args: list[str], as_of: dt.date | None = None,
            target_path: str | None = None) -> DbtOutcome:
    """Invoke dbt: in the night's warm dbt process if there is one (warm_dbt), else in this process."""
    warm = _warm_for(settings)
    if warm is not None:
        outcome = warm.invoke(args, as_of, target_path)
        if outcome is not None:
            return outcome
        log.warning("the warm dbt process is gone; dbt runs in this process")
    from flows.dbt_worker import invoke

    settings.apply_dbt_environment(as_of)
    summary, _ = invoke(_dbt_args(settings, args, target_path))
    return DbtOutcome(**summary)


BUILD_STAMP = "dbt-build.json"  # what the last build that succeeded read (_this_build)

# The raw tables a night with only new e-commerce data brings, and what such a night rebuilds: what
# they reach, and what reads the as-of date (the models tagged `as_of`; tests/dbt checks that every
# node reading the date is selected). The models of the districts' data alone, with their tests
# (~40 % of the nodes), stay as the last complete build left them.
ORDERS_TABLES = ("ecommerce_listings", "ecommerce_order_lines")
ORDERS_ONLY = [*(f"source:{RAW_DATASET}.{table}+" for table in ORDERS_TABLES), "tag:as_of+"]


def _fingerprint(paths) -> str:
    """Hash of these files of the dbt project: their paths in it and their bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in paths if p.is_file()):
        digest.update(str(path.relative_to(DBT_PROJECT_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def seeds_fingerprint() -> str:
    """Hash of the seed files and the project file (their column types)."""
    return _fingerprint([*(DBT_PROJECT_DIR / "seeds").glob("*"), DBT_PROJECT_DIR / "dbt_project.yml"])


def _raw_sources() -> list[str]:
    """The raw tables dbt reads (models/staging/_sources.yml)."""
    import yaml

    spec = yaml.safe_load((DBT_PROJECT_DIR / "models" / "staging" / "_sources.yml").read_text(encoding="utf-8"))
    return sorted(t["name"] for source in spec["sources"] if source["name"] == RAW_DATASET for t in source["tables"])


@dataclass
class _Working:
    """What the working database holds that decides what a build must do."""
    seed_tables: set[str]
    raw: dict[str, list]  # each raw table dbt reads other than ORDERS_TABLES: [rows, newest dlt load]


def _working(settings: Settings) -> _Working | None:
    import duckdb

    if not settings.work_db.exists():
        return None
    try:
        con = duckdb.connect(str(settings.work_db), read_only=True)
    except duckdb.Error:
        return None
    try:
        tables = con.execute("select schema_name, table_name from duckdb_tables() where schema_name in (?, ?)",
                             [REFERENCE_SCHEMA, RAW_DATASET]).fetchall()
        with_load_id = {r[0] for r in con.execute(
            "select table_name from duckdb_columns() where schema_name = ? and column_name = '_dlt_load_id'",
            [RAW_DATASET]).fetchall()}
        raw = {}
        for table in sorted({t for schema, t in tables if schema == RAW_DATASET} & set(_raw_sources())
                            - set(ORDERS_TABLES)):
            newest = "max(_dlt_load_id)" if table in with_load_id else "null"
            raw[table] = list(con.execute(f'select count(*), {newest} from {RAW_DATASET}."{table}"').fetchone())
    finally:
        con.close()
    return _Working({t for schema, t in tables if schema == REFERENCE_SCHEMA}, raw)


def _last_build(settings: Settings) -> dict:
    """BUILD_STAMP: what the last build that succeeded read ({} when there is none)."""
    try:
        return json.loads((settings.work_dir / BUILD_STAMP).read_text())
    except (OSError, ValueError):
        return {}


def _this_build(working: _Working | None) -> dict:
    """What a build reads besides new orders: the seeds, the project, dbt, and `working`'s raw tables."""
    from importlib.metadata import version

    return {"seeds": seeds_fingerprint(), "project": project_fingerprint(),
            "dbt": [version("dbt-core"), version("dbt-duckdb")], "raw": working.raw if working else None}


def dbt_build(settings: Settings, as_of: dt.date, full_refresh: bool = False) -> DbtOutcome:
    """`dbt build` of the night. It leaves out what has not changed since the last build that
    succeeded: the seeds (reference lists) and their tests while their files are unchanged, and on
    a night whose only new data is the e-commerce platform's, the models of the districts' data alone
    (ORDERS_ONLY). dbt unit tests check the SQL, not the night's data: they run in CI (tests/dbt)."""
    args = ["build", "--exclude-resource-type", "unit_test", *(["--full-refresh"] if full_refresh else [])]
    working = None if full_refresh else _working(settings)
    this, last = _this_build(working), _last_build(settings)
    scope = "everything"
    if working is not None and last.get("seeds") == this["seeds"] \
            and {p.stem for p in (DBT_PROJECT_DIR / "seeds").glob("*.csv")} <= working.seed_tables:
        args += ["--exclude", "resource_type:seed"]  # as a selector: the seeds' own tests go with them
        if last == this:
            args += ["--select", *ORDERS_ONLY]
            scope = "what the new e-commerce data and the as-of date reach (the districts' data is as the last build found it)"
    (settings.work_dir / BUILD_STAMP).unlink(missing_ok=True)  # until this build has succeeded
    outcome = run_dbt(settings, args, as_of)
    if not outcome.success and scope != "everything":
        # whatever failed (a district model's table gone, say), a complete build may not: the stamp
        # is gone, so this one is complete
        log.warning("dbt build of %s failed; building everything", scope)
        return dbt_build(settings, as_of)
    if not outcome.success:
        raise DbtFailed("dbt build failed:\n  " + "\n  ".join(outcome.failures or ["(see dbt logs)"]))
    (settings.work_dir / BUILD_STAMP).write_text(json.dumps(this, sort_keys=True))
    outcome.scope = scope
    return outcome


def project_fingerprint() -> str:
    """Hash of the dbt project's models, macros, seeds and configuration."""
    return _fingerprint(p for p in DBT_PROJECT_DIR.rglob("*") if p.suffix in (".sql", ".yml", ".csv")
                        and not {"target", "logs", "dbt_packages"} & set(p.relative_to(DBT_PROJECT_DIR).parts))


def dbt_docs(settings: Settings, as_of: dt.date) -> DbtOutcome:
    """dbt docs (catalog of the marts, lineage) under warehouse/reports/dbt-docs: open static_index.html.

    They describe the models, so they are written again only when the dbt project changed."""
    target = settings.reports_dir / "dbt-docs"
    stamp = target / ".project-fingerprint"
    fingerprint = project_fingerprint()
    if (target / "static_index.html").exists() and stamp.exists() and stamp.read_text() == fingerprint:
        return DbtOutcome(True, 0, [])
    outcome = run_dbt(settings, ["docs", "generate", "--static"], as_of, target_path=str(target))
    if outcome.success:
        stamp.write_text(fingerprint)
    return outcome
