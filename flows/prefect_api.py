"""Prefect's local mode for `ocop run`, started first so it boots while the night's modules import.

Without a configured API (`PREFECT_API_URL`, e.g. a `prefect server start` or Prefect Cloud),
Prefect runs a flow against a temporary local API server that it starts when the flow is called
and waits for (~5 s here, plus ~2.5 s of importing its server code into the flow's process).
`ocop run` starts that local server itself, as a `prefect server start` child process on
127.0.0.1 (no UI; the services of Prefect's temporary server: the same server Prefect would start), before it
imports dlt, dbt and Great Expectations; by the time the flow is called it is up. It lives as long
as the run and is stopped after Prefect has sent the run's last logs and events; if the run's
process is killed outright, it ends too (flows/orphan_guard.py).

With an API configured, nothing is started and the flow reports there, as before.
"""
from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from flows.config import child_environment, process_environment
from flows.orphan_guard import end, guarded

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 60.0


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalApi:
    """A `prefect server start` child process for the length of one run (see module doc)."""

    def __init__(self, log_file: Path | None = None):
        self.log_file = log_file
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._log_fh = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> "LocalApi":
        """Start the server process; returns at once (the process boots in the background)."""
        self.port = _free_port()
        prefect_cli = Path(sys.executable).with_name("prefect")
        command = [str(prefect_cli)] if prefect_cli.exists() else [sys.executable, "-m", "prefect"]
        command += ["server", "start", "--host", "127.0.0.1", "--port", str(self.port), "--no-ui", "--log-level", "ERROR"]
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log_fh = open(self.log_file, "ab")
        # the server reads the same environment and profiles as this process, and the settings this
        # process changed since (e.g. a test harness)
        changed = {}
        if "prefect.settings" in sys.modules:
            from prefect.settings import get_current_settings

            changed = get_current_settings().to_environment_variables(exclude_unset=True)
        # the services Prefect's temporary server runs (task run recorder, event persister, ...), not
        # the scheduler and the other services of a long-lived server
        env = child_environment(**{**changed, "PREFECT__SERVER_EPHEMERAL": "1",
                                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
        self.process = subprocess.Popen(
            guarded(command), stdin=subprocess.DEVNULL, stdout=self._log_fh or subprocess.DEVNULL,
            stderr=self._log_fh or subprocess.DEVNULL, env=env,
            start_new_session=True)  # a Ctrl-C in the terminal stops the run, which then stops its server
        return self

    def wait_until_up(self, timeout: float = STARTUP_TIMEOUT_S) -> bool:
        """True once /api/health answers; False if the process died or the timeout passed."""
        import httpx

        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    return False
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return True
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process is not None:
            end(self.process)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None


def _configured_api_url() -> str | None:
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def start_local_api(log_file: Path | None = None, configured_url: str | None = None) -> LocalApi | None:
    """Start Prefect's local server now, unless an API is configured (then None): `configured_url`
    (Settings.prefect_api_url), or Prefect's own settings.

    In a fresh process the server is started before Prefect is even imported (~0.9 s), then
    stopped again if Prefect's settings (a profile, prefect.toml) name an API after all."""
    if configured_url or ("prefect.settings" in sys.modules and _configured_api_url()):
        return None
    try:
        api = LocalApi(log_file).start()
    except OSError as exc:  # cannot start it: Prefect starts its own temporary server when the flow is called
        log.warning("could not start the local Prefect server (%s); Prefect will start its temporary one", exc)
        return None
    if _configured_api_url():
        api.stop()
        return None
    return api


def _drain_prefect_workers() -> None:
    """Send the logs and events Prefect still holds, while the server is up to receive them."""
    with contextlib.suppress(Exception):
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
    with contextlib.suppress(Exception):
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=10)


@contextlib.contextmanager
def using(api: LocalApi | None, meanwhile: Callable[[], None] | None = None) -> Iterator[str | None]:
    """Run the block against `api` (waiting for it to be up), then stop it. With None, or a server
    that did not come up, the block runs with Prefect's own behaviour (its temporary server).

    `meanwhile` runs while the server boots (e.g. importing what the block will need anyway)."""
    if api is None:
        yield None
        return
    try:
        if meanwhile is not None:
            try:
                meanwhile()
            except Exception as exc:  # noqa: BLE001 - whatever it prepares is done again where it is needed
                log.warning("while the local Prefect server started: %s: %s", type(exc).__name__, exc)
        if not api.wait_until_up():
            log.warning("the local Prefect server did not start (see %s); Prefect will start its temporary one",
                        api.log_file or "its output")
            api.stop()
            yield None
            return
        with _api_url_for_process(api.api_url):
            try:
                yield api.api_url
            finally:
                _drain_prefect_workers()
    finally:
        api.stop()


@contextlib.contextmanager
def _api_url_for_process(url: str) -> Iterator[None]:
    """PREFECT_API_URL for every thread of this process: Prefect's log and event workers run in
    threads of their own, which see the process-wide settings (set here through the environment),
    and this thread sees `temporary_settings` (which also wins over settings entered around it)."""
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    try:
        with process_environment(PREFECT_API_URL=url):
            refresh_global_settings_context()
            with temporary_settings(updates={PREFECT_API_URL: url}):
                yield
    finally:
        refresh_global_settings_context()
