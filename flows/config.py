"""Configuration and environment: the one place that reads environment variables.

Everything else asks `Settings` for paths and options. Defaults follow DESIGN.md: inbox
`data/inbox`, warehouse `warehouse/`; `OCOP_INBOX`, `OCOP_WAREHOUSE`, `OCOP_ALERT_URLS` override.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
SEEDS_DIR = DBT_PROJECT_DIR / "seeds"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"

TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")
NIGHTLY_CRON = "0 2 * * *"
PUBLISHED_DB_NAME = "ocop.duckdb"
MARTS_SCHEMA = "marts"
RAW_DATASET = "raw"

# Library behaviour the whole process relies on; set once, here, before those libraries read it.
_PROCESS_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",  # dbt and GX anonymous usage stats: nothing leaves the machine
    "GX_ANALYTICS_ENABLED": "false",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "RUNTIME__LOG_LEVEL": "WARNING",  # dlt
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID": "true",
    "NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID": "false",
    "LOAD__TRUNCATE_STAGING_DATASET": "true",  # no second copy of merged batches left in raw_staging
    # dlt's extract waits this long when a resource has ended, before it looks again (twice per
    # load; its 10 ms default is for async resources, which no source here has)
    "EXTRACT__FUTURES_POLL_INTERVAL": "0.001",
    "LOAD__DELETE_COMPLETED_JOBS": "true",  # loaded packages' files: the inputs are kept in raw_files/ already
    # numpy's OpenBLAS starts a thread per core that spins at import (~0.06 CPU-s); nothing here uses BLAS
    "OPENBLAS_NUM_THREADS": "1",
    "DLT_PROJECT_DIR": str(REPO_ROOT),  # dlt reads .dlt/config.toml from here, whatever the cwd
}
for _k, _v in _PROCESS_DEFAULTS.items():
    os.environ.setdefault(_k, _v)


def today_in_vietnam() -> dt.date:
    return dt.datetime.now(TIMEZONE).date()


@dataclass(frozen=True)
class Settings:
    inbox: Path
    warehouse: Path
    alert_urls: tuple[str, ...] = ()
    late_day: int = 5  # a district without a submission for a period by this day of the next month is late
    feed_api_url: str | None = None
    feed_api_token: str | None = field(default=None, repr=False)
    # PREFECT_API_URL: the Prefect server or Cloud a night reports to; None: `ocop run` starts
    # Prefect's local server itself (flows/prefect_api.py), unless a Prefect profile names one
    prefect_api_url: str | None = None
    keep_publications: int = 5  # warehouse/publications/<run_id>.duckdb kept for `ocop rollback`
    # Test-only hooks (OCOP_TEST_MARKER_DIR, OCOP_TEST_PAUSE_AT): see stage_reached(). Unset in production.
    test_marker_dir: Path | None = None
    test_pause_at: tuple[str, ...] = ()
    test_pause_seconds: float = 900.0

    # --- derived paths (the warehouse folder layout of DESIGN.md) -------------------------------
    @property
    def published_db(self) -> Path:
        return self.warehouse / PUBLISHED_DB_NAME

    @property
    def work_dir(self) -> Path:
        return self.warehouse / "work"

    @property
    def work_db(self) -> Path:
        """The working database: only the night writes it; BI never reads it."""
        return self.work_dir / "ocop_work.duckdb"

    @property
    def dlt_dir(self) -> Path:
        return self.work_dir / "dlt"

    @property
    def dbt_target_dir(self) -> Path:
        return self.work_dir / "dbt-target"

    @property
    def raw_files_dir(self) -> Path:
        """Every file a district or the platform ever sent, byte for byte, by content hash."""
        return self.warehouse / "raw_files"

    @property
    def exports_dir(self) -> Path:
        return self.warehouse / "exports"

    @property
    def reports_dir(self) -> Path:
        return self.warehouse / "reports"

    @property
    def feedback_dir(self) -> Path:
        return self.warehouse / "feedback"

    @property
    def publications_dir(self) -> Path:
        return self.warehouse / "publications"

    @property
    def lock_file(self) -> Path:
        return self.warehouse / ".ocop-run.lock"

    @property
    def runs_log(self) -> Path:
        """Run history: one JSON line when a night starts, one when it ends (`ocop status` reads it)."""
        return self.reports_dir / "runs.jsonl"

    def stage_reached(self, stage: str) -> None:
        """Test hook at the start of each stage of the night (a no-op unless a test configured it).

        With OCOP_TEST_MARKER_DIR set, writes `<dir>/<stage>` (pid and time) so a test knows how far
        the night got; with OCOP_TEST_PAUSE_AT=<stage>[,<stage>...], also sleeps there so the test can
        kill the process at exactly that point. Stages: extract, load, load_ecommerce,
        validate_submissions, dbt, validate_marts, publish, publish_swap, report."""
        if self.test_marker_dir is None and not self.test_pause_at:
            return
        marker_dir = self.test_marker_dir or self.warehouse
        marker_dir.mkdir(parents=True, exist_ok=True)
        (marker_dir / stage).write_text(f"{os.getpid()} {time.time():.3f}\n", encoding="utf-8")
        if stage in self.test_pause_at:
            time.sleep(self.test_pause_seconds)

    @property
    def districts_inbox(self) -> Path:
        return self.inbox / "districts"

    @property
    def ecommerce_inbox(self) -> Path:
        return self.inbox / "ecommerce"

    def apply_gx_environment(self) -> None:
        """Where GX writes validation results and Data Docs (read by expectations/great_expectations.yml)."""
        os.environ["OCOP_GX_RESULTS_DIR"] = str(self.work_dir / "gx-results")
        os.environ["OCOP_GX_DOCS_DIR"] = str(self.reports_dir / "data-docs")

    def dbt_environment(self, as_of: dt.date | None = None) -> dict[str, str]:
        """What dbt's profile and paths read (dbt_project/profiles.yml uses env_var('OCOP_WORK_DB')),
        and the run's as-of date (macro as_of_date(); '' = today in Vietnam). The date goes through
        the environment, not `--vars`: a changed var makes dbt re-parse the whole project."""
        return {
            "OCOP_AS_OF_DATE": as_of.isoformat() if as_of else "",
            "OCOP_WORK_DB": str(self.work_db),
            "DBT_TARGET_PATH": str(self.dbt_target_dir),
            "DBT_LOG_PATH": str(self.work_dir / "dbt-logs"),
            "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
            "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
        }

    def apply_dbt_environment(self, as_of: dt.date | None = None) -> None:
        """dbt_environment() set in this process, for dbt run in it."""
        os.environ.update(self.dbt_environment(as_of))

    def with_paths(self, inbox: Path | str | None = None, warehouse: Path | str | None = None) -> "Settings":
        return replace(
            self,
            inbox=Path(inbox).resolve() if inbox else self.inbox,
            warehouse=Path(warehouse).resolve() if warehouse else self.warehouse,
        )


def load_settings(inbox: str | Path | None = None, warehouse: str | Path | None = None) -> Settings:
    """Settings from (in order of precedence) arguments, environment, defaults."""
    env = os.environ
    urls = tuple(u.strip() for u in env.get("OCOP_ALERT_URLS", "").replace("\n", ",").split(",") if u.strip())
    late_day = int(env.get("OCOP_LATE_DAY", "5"))
    marker_dir = env.get("OCOP_TEST_MARKER_DIR") or None
    return Settings(
        inbox=Path(inbox or env.get("OCOP_INBOX") or "data/inbox").resolve(),
        warehouse=Path(warehouse or env.get("OCOP_WAREHOUSE") or "warehouse").resolve(),
        alert_urls=urls,
        late_day=late_day,
        feed_api_url=env.get("OCOP_FEED_API_URL") or None,
        feed_api_token=env.get("OCOP_FEED_API_TOKEN") or None,
        prefect_api_url=env.get("PREFECT_API_URL") or None,
        keep_publications=max(1, int(env.get("OCOP_KEEP_PUBLICATIONS", "5"))),
        test_marker_dir=Path(marker_dir).resolve() if marker_dir else None,
        test_pause_at=tuple(s.strip() for s in env.get("OCOP_TEST_PAUSE_AT", "").split(",") if s.strip()),
        test_pause_seconds=float(env.get("OCOP_TEST_PAUSE_SECONDS", "900")),
    )


# --- the process environment, for what reads it rather than Settings (libraries, child processes)
def child_environment(**extra: str) -> dict[str, str]:
    """This process's environment with `extra` on top, for a child process."""
    return {**os.environ, **extra}


@contextlib.contextmanager
def process_environment(**values: str) -> Iterator[None]:
    """Set these environment variables for the block (every thread sees them), then put back
    what was there before."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
