"""Operating it nightly, with real `ocop run` subprocesses against one Prefect server (the session
harness): a night SIGKILLed during the load, during dbt and during publishing leaves the published
database as it was, and the next night gives marts identical to an uninterrupted night's; a second
`ocop run` while one is running exits at once; `ocop serve` registers the 02:00 deployment.

The clean reference night is the session's `demo_night` (same demo inbox, same as-of date). Marts
are compared table by table, row by row, on every column except those that record *when* or *in
which load* something happened (helpers.EXCLUDED): they legitimately differ between two nights.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
from helpers import assert_same_marts, group_running, snapshot_marts

from flows import publish as publishing
from flows.config import REPO_ROOT, load_settings
from flows.status import runs, status_text

pytestmark = pytest.mark.e2e

AS_OF = dt.date(2024, 12, 20)

# ------------------------------------------------------------------------------------------ helpers

def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Night:
    """One `ocop run` subprocess on a warehouse, in its own process group (so SIGKILL takes all of it)."""

    def __init__(self, env: dict, inbox: Path, warehouse: Path, log: Path, **test_env: str):
        self.warehouse, self.log_path = warehouse, log
        self.markers = warehouse.parent / f"{warehouse.name}-markers-{log.stem}"
        env = {**env, "OCOP_TEST_MARKER_DIR": str(self.markers), **test_env}
        self.log = open(log, "w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "run", "--inbox", str(inbox), "--warehouse", str(warehouse),
             "--as-of", AS_OF.isoformat()],
            env=env, cwd=REPO_ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def reached(self, stage: str) -> bool:
        return (self.markers / stage).exists()

    def wait_for(self, condition, what: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"ocop run exited ({self.proc.returncode}) before {what}:\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"timed out waiting for {what}:\n{self.output()[-4000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group we started: the run and anything it spawned
        self.proc.wait(timeout=30)
        # the run's children (its dbt process) die with it, but the kernel ends them after the run:
        # until then one may still hold the working database's lock
        deadline = time.monotonic() + 30
        while group_running(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.log.close()

    def finish(self, timeout: float = 600) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"ocop run did not finish in {timeout} s:\n{self.output()[-4000:]}")
        self.log.close()
        self.seconds = time.monotonic() - self.started
        return code


# ------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def run_env(prefect_harness, tmp_path_factory) -> dict:
    """Environment for `ocop` subprocesses: the harness's Prefect server (no temporary server per run)."""
    from prefect.settings import get_current_settings

    api_url = get_current_settings().api.url
    assert api_url, "the Prefect test harness should provide an API URL"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCOP_", "PREFECT_"))}
    env.update(PREFECT_API_URL=str(api_url), PREFECT_HOME=str(tmp_path_factory.mktemp("prefect-home")),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    return env


@pytest.fixture(scope="module")
def reference(demo_night) -> dict:
    """The clean night's published marts."""
    settings, summary = demo_night
    assert summary["outcome"] == "published"
    return snapshot_marts(settings.published_db)


@pytest.fixture(scope="module")
def yesterday(demo_night, tmp_path_factory) -> Path:
    """A source for a plausible previous publication: the demo marts without December's orders and
    without the as-of date's snapshot, so it differs from what the night will publish."""
    settings, _ = demo_night
    path = tmp_path_factory.mktemp("yesterday") / "yesterday.duckdb"
    shutil.copyfile(settings.published_db, path)
    con = duckdb.connect(str(path))
    con.execute("delete from marts.fct_order_line where order_date >= date '2024-12-01'")
    con.execute("delete from marts.kpi_province_snapshot where as_of_date = ?", [AS_OF])
    con.close()
    return path


def warehouse_with_previous_publication(tmp_path: Path, yesterday: Path):
    settings = load_settings(tmp_path / "unused-inbox", tmp_path / "warehouse")
    publishing.publish(settings, "previous-night", AS_OF - dt.timedelta(days=1), source=yesterday)
    return settings


READER = textwrap.dedent("""
    import json, os, sys, time, duckdb
    db, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
    QUERY = '''select (select run_id from meta.publication),
                      (select count(*) from marts.fct_order_line), (select sum(revenue_vnd) from marts.fct_order_line),
                      (select count(*) from marts.kpi_province_snapshot),
                      (select sum(valid_products) from marts.kpi_province_snapshot)'''
    with open(out, "w") as fh:
        while not os.path.exists(stop):
            try:
                con = duckdb.connect(db, read_only=True)
                try:
                    row = con.execute(QUERY).fetchone()
                finally:
                    con.close()
                fh.write(json.dumps([str(x) for x in row]) + "\\n")
            except Exception as exc:
                fh.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\\n")
            fh.flush()
            time.sleep(0.02)  # a BI tool polling, not a busy loop competing with the night for the CPU
""")
READER_QUERY = re.search(r"QUERY = '''(.*?)'''", READER, re.S)[1]


# ------------------------------------------------------------------------------------------ the tests

def _dbt_built(warehouse: Path, model: str):
    log = warehouse / "work" / "dbt-logs" / "dbt.log"
    pattern = re.compile(rf"OK created sql \w+ model {re.escape(model)}\b")

    def check() -> bool:
        return log.exists() and bool(pattern.search(log.read_text(errors="replace")))
    return check


@pytest.mark.parametrize("stage", ["load", "dbt", "publish"])
def test_a_night_killed_midway_leaves_the_publication_and_the_next_night_matches_a_clean_one(
        stage, run_env, demo_inbox, reference, yesterday, tmp_path):
    settings = warehouse_with_previous_publication(tmp_path, yesterday)
    wh = settings.warehouse
    before = sha256(settings.published_db)
    stop, reads_out = tmp_path / "stop-reader", tmp_path / "reads.jsonl"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(settings.published_db), str(stop), str(reads_out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _kill_then_rerun(stage, settings, before, run_env, demo_inbox, reference, tmp_path)
    finally:
        stop.touch()
        try:
            reader.wait(timeout=30)
        except subprocess.TimeoutExpired:
            reader.kill()
            reader.wait()

    # a reader polling all along: no error, and every read is one night's marts, never a mix
    kept = [p["run_id"] for p in publishing.publications(settings)]
    reads = [json.loads(line) for line in reads_out.read_text().splitlines() if line.strip()]
    errors = [r for r in reads if isinstance(r, dict)]
    expected = {}
    for run_id in kept:
        con = duckdb.connect(str(settings.publications_dir / f"{run_id}.duckdb"), read_only=True)
        expected[run_id] = [str(x) for x in con.execute(READER_QUERY).fetchone()]
        con.close()
    mixed = [r for r in reads if not isinstance(r, dict) and r != expected.get(r[0])]
    print(f"{stage}: reader {len(reads)} polls, {len(errors)} errors, {len(mixed)} inconsistent, "
          f"nights seen {sorted({r[0] for r in reads if not isinstance(r, dict)})}")
    assert errors == [] and mixed == []
    assert len(reads) > 20


def _kill_then_rerun(stage, settings, before, run_env, demo_inbox, reference, tmp_path):
    wh = settings.warehouse

    # --- the night that gets killed
    if stage == "load":
        # district submissions are loaded to raw (no verdict yet), the e-commerce load has not started
        killed = Night(run_env, demo_inbox, wh, tmp_path / "killed.log", OCOP_TEST_PAUSE_AT="load_ecommerce")
        killed.wait_for(lambda: killed.reached("load_ecommerce"), "the e-commerce load")
    elif stage == "dbt":
        # dbt has rebuilt the incremental fct_order_line but not yet the marts after it
        killed = Night(run_env, demo_inbox, wh, tmp_path / "killed.log")
        killed.wait_for(lambda: killed.reached("dbt"), "dbt")
        killed.wait_for(_dbt_built(wh, "marts.fct_order_line"), "dbt building marts.fct_order_line")
    else:
        # the new publication and its exports are written, the copy lies beside ocop.duckdb, no rename yet
        killed = Night(run_env, demo_inbox, wh, tmp_path / "killed.log", OCOP_TEST_PAUSE_AT="publish_swap")
        killed.wait_for(lambda: killed.reached("publish_swap"), "the publish swap")
    killed_after = time.monotonic() - killed.started
    killed.kill()
    assert killed.proc.returncode == -signal.SIGKILL
    later = [s for s in ("validate_marts", "publish", "report") if killed.reached(s)]
    assert later == ([] if stage != "publish" else ["validate_marts", "publish"]), later
    if stage == "dbt":
        con = duckdb.connect(str(settings.work_db), read_only=True)  # replays what DuckDB committed
        built = {r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()}
        con.close()
        assert "fct_order_line" in built and "sales_monthly" not in built, built  # really half-built
    if stage == "publish":
        assert list(wh.glob(".ocop.duckdb.*.tmp")), "the kill should have left the tmp publish file behind"

    # the published database, its exports and the history are as they were
    assert sha256(settings.published_db) == before
    assert publishing.current_run_id(settings) == "previous-night"
    assert json.loads((settings.exports_dir / "publication.json").read_text())["run_id"] == "previous-night"
    assert runs(settings)[0]["outcome"] == "interrupted"
    assert "interrupted" in status_text(settings)

    # --- the next night completes
    nxt = Night(run_env, demo_inbox, wh, tmp_path / "next.log")
    code = nxt.finish()
    out = nxt.output()
    assert code == 0, out[-4000:]
    assert "published (as-of 2024-12-20)" in out
    print(f"\n{stage}: night killed after {killed_after:.1f} s; the next night took {nxt.seconds:.1f} s")

    assert_same_marts(reference, snapshot_marts(settings.published_db))
    assert publishing.current_run_id(settings) not in ("previous-night", None)
    # nothing left behind, nothing half-kept
    assert not list(wh.glob(".*.tmp")) and not list(settings.publications_dir.glob(".*"))
    kept = [p["run_id"] for p in publishing.publications(settings)]
    assert kept[0] == "previous-night" and len(kept) == 2, kept  # the killed night's publication was discarded
    assert json.loads((settings.exports_dir / "publication.json").read_text())["run_id"] == kept[1]
    history = [r["outcome"] for r in runs(settings)]
    assert history == ["published", "interrupted"], history


def test_a_second_run_exits_at_once_while_one_is_running(run_env, demo_inbox, tmp_path):
    wh = tmp_path / "warehouse"
    first = Night(run_env, demo_inbox, wh, tmp_path / "first.log", OCOP_TEST_PAUSE_AT="load")
    first.wait_for(lambda: first.reached("load"), "the first night's load")
    started = time.monotonic()
    second = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--inbox", str(demo_inbox), "--warehouse", str(wh),
                             "--as-of", AS_OF.isoformat()], env=run_env, cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=120)
    took = time.monotonic() - started
    print(f"\nsecond run refused in {took:.1f} s: {second.stderr.strip()}")
    assert second.returncode == 75
    assert "another ocop process holds" in second.stderr and f"pid {first.proc.pid}" in second.stderr
    assert "Beginning flow run" not in second.stdout + second.stderr  # stopped before Prefect started anything
    assert took < 20
    assert first.proc.poll() is None  # the first night goes on, untouched
    first.kill()
    # the kernel released the lock with the killed process: the next command gets it at once
    rollback = subprocess.run([sys.executable, "-m", "flows.cli", "rollback", "--warehouse", str(wh)],
                              env=run_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert rollback.returncode == 1 and "nothing to roll back to" in rollback.stderr  # not 75: the lock is free
    assert not (wh / "ocop.duckdb").exists()


def test_serve_registers_the_nightly_deployment_at_two_in_the_morning_vietnam_time(run_env, tmp_path, prefect_harness):
    from prefect.client.orchestration import get_client

    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--inbox", str(tmp_path / "inbox"),
                             "--warehouse", str(tmp_path / "warehouse")],
                            env=run_env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deployment = None
        deadline = time.monotonic() + 120
        with get_client(sync_client=True) as client:
            while deployment is None and time.monotonic() < deadline and proc.poll() is None:
                try:
                    deployment = client.read_deployment_by_name("ocop-nightly/ocop-nightly")
                except Exception:  # noqa: BLE001 - not registered yet
                    time.sleep(0.5)
        assert deployment is not None, (tmp_path / "serve.log").read_text()[-3000:]
        assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules] == \
            [("0 2 * * *", "Asia/Ho_Chi_Minh", True)]
        assert deployment.parameters == {"inbox": str(tmp_path / "inbox"), "warehouse": str(tmp_path / "warehouse")}
        assert proc.poll() is None  # still serving
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()
