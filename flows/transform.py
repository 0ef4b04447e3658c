"""dbt in-process: `dbt build` (staging → intermediate → marts, with tests) on the working database."""
from __future__ import annotations

import datetime as dt
import gc
import hashlib
from dataclasses import dataclass

from flows.config import DBT_PROJECT_DIR, Settings

REFERENCE_SCHEMA = "reference"  # where dbt_project.yml puts the seeds


class DbtFailed(RuntimeError):
    pass


@dataclass
class DbtOutcome:
    success: bool
    nodes: int
    failures: list[str]


def run_dbt(settings: Settings, args: list[str], as_of: dt.date | None = None,
            target_path: str | None = None) -> DbtOutcome:
    """Invoke dbt in this process, then release dbt-duckdb's hold on the database file."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.cli.main import dbtRunner

    settings.apply_dbt_environment(as_of)
    full = [*args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", target_path or str(settings.dbt_target_dir), "--log-path", str(settings.work_dir / "dbt-logs"),
            "--quiet"]
    try:
        result = dbtRunner().invoke(full)
    finally:
        DuckDBConnectionManager.close_all_connections()
        gc.collect()
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
    return DbtOutcome(bool(result.success), nodes, failures)


SEEDS_STAMP = "dbt-seeds.fingerprint"


def _fingerprint(paths) -> str:
    """Hash of these files of the dbt project: their paths in it and their bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in paths if p.is_file()):
        digest.update(str(path.relative_to(DBT_PROJECT_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def seeds_fingerprint() -> str:
    """Hash of the seed files and the project file (their column types)."""
    return _fingerprint([*(DBT_PROJECT_DIR / "seeds").glob("*"), DBT_PROJECT_DIR / "dbt_project.yml"])


def _seeds_loaded(settings: Settings, fingerprint: str) -> bool:
    """True when the working database holds the seeds of `fingerprint` (loaded by an earlier build)."""
    import duckdb

    stamp = settings.work_dir / SEEDS_STAMP
    if not settings.work_db.exists() or not stamp.exists() or stamp.read_text() != fingerprint:
        return False
    seeds = {p.stem for p in (DBT_PROJECT_DIR / "seeds").glob("*.csv")}
    try:
        con = duckdb.connect(str(settings.work_db), read_only=True)
    except duckdb.Error:
        return False
    try:
        tables = {r[0] for r in con.execute(
            "select table_name from duckdb_tables() where schema_name = ?", [REFERENCE_SCHEMA]).fetchall()}
    finally:
        con.close()
    return seeds <= tables


def dbt_build(settings: Settings, as_of: dt.date, full_refresh: bool = False) -> DbtOutcome:
    # dbt unit tests check the SQL, not the night's data: they run in CI (tests/dbt), not every night;
    # the seeds (reference lists) and their tests only when they changed since they were loaded
    args = ["build", "--exclude-resource-type", "unit_test", *(["--full-refresh"] if full_refresh else [])]
    fingerprint = seeds_fingerprint()
    if not full_refresh and _seeds_loaded(settings, fingerprint):
        args += ["--exclude", "resource_type:seed"]  # as a selector: the seeds' own tests go with them
    (settings.work_dir / SEEDS_STAMP).unlink(missing_ok=True)  # until this build has loaded them
    outcome = run_dbt(settings, args, as_of)
    if not outcome.success:
        raise DbtFailed("dbt build failed:\n  " + "\n  ".join(outcome.failures or ["(see dbt logs)"]))
    (settings.work_dir / SEEDS_STAMP).write_text(fingerprint)
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
