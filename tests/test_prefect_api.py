"""Prefect's local mode for `ocop run`: the local server started early, used by every thread of the
run, stopped afterwards; a configured API is used as is."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from flows import prefect_api

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_a_configured_api_starts_nothing(tmp_path, monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.cli import start_prefect
    from flows.config import load_settings

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # a Prefect profile's
        assert prefect_api.start_local_api() is None
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # the environment's, through Settings
    settings = load_settings(tmp_path / "inbox", tmp_path / "warehouse")
    assert settings.prefect_api_url == "http://127.0.0.1:9/api"
    assert start_prefect(settings) is None


def test_the_local_server_serves_every_thread_and_stops_afterwards(tmp_path, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    before = PREFECT_API_URL.value()
    api = prefect_api.LocalApi(tmp_path / "server.log").start()
    seen_in_thread, prepared = [], []
    with prefect_api.using(api, meanwhile=lambda: prepared.append(api.process.poll())) as url:
        assert prepared == [None]  # ran while the server was still up (or booting)
        assert url == api.api_url
        assert httpx.get(f"{url}/health").status_code == 200
        assert PREFECT_API_URL.value() == url
        # Prefect's log and event workers run in their own threads: they must report to the same server
        thread = threading.Thread(target=lambda: seen_in_thread.append(PREFECT_API_URL.value()))
        thread.start()
        thread.join()
        assert seen_in_thread == [url]
    assert api.process.poll() is not None  # stopped
    assert PREFECT_API_URL.value() == before


def test_a_server_that_does_not_come_up_leaves_prefect_its_own_behaviour(tmp_path):
    api = prefect_api.LocalApi(tmp_path / "server.log")
    api.port = 9
    api.process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])  # dies at once

    def failing_preparation():
        raise ImportError("something the night imports later anyway")

    with prefect_api.using(api, meanwhile=failing_preparation) as url:
        assert url is None


def test_ocop_run_in_local_mode_reports_to_its_own_server_then_stops_it(tmp_path):
    """A real `ocop run` without any Prefect API configured (an empty inbox: a short night)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PYTHONPATH=str(REPO_ROOT))
    (tmp_path / "inbox").mkdir()
    done = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--inbox", str(tmp_path / "inbox"),
                           "--warehouse", str(tmp_path / "warehouse"), "--as-of", "2024-12-20"],
                          env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "published" in done.stdout
    assert "Starting temporary server" not in output  # Prefect did not have to start its own
    # the flow run and its tasks were recorded by the run's local server (Prefect's database in PREFECT_HOME)
    con = sqlite3.connect(tmp_path / "prefect" / "prefect.db")
    try:
        runs = con.execute("select state_type from flow_run").fetchall()
        tasks = con.execute("select count(*) from task_run where state_type = 'COMPLETED'").fetchone()[0]
    finally:
        con.close()
    assert runs == [("COMPLETED",)]
    assert tasks >= 8
    assert (tmp_path / "warehouse" / "work" / "prefect-server.log").exists()
