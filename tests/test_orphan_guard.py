"""flows/orphan_guard.py: a night's child processes (Prefect's local server, the warm dbt process)
end when the night's process is killed outright."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import process_running

from flows.config import REPO_ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")

NIGHT = """
import subprocess, sys, time
from flows.orphan_guard import guarded
child = subprocess.Popen(guarded([sys.executable, "-c", "import time; time.sleep(120)"]))
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_guarded_child_ends_when_the_night_is_killed():
    night = subprocess.Popen([sys.executable, "-c", NIGHT], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT)
    child = int(night.stdout.readline())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the guard has exec'd the command: same pid, the command's line
        with open(f"/proc/{child}/cmdline", "rb") as fh:
            if b"orphan_guard" not in fh.read():
                break
        time.sleep(0.05)
    assert process_running(child)
    night.send_signal(signal.SIGKILL)
    night.wait()
    deadline = time.monotonic() + 10
    while process_running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_running(child)


def test_a_guarded_command_is_the_same_process_as_started():
    from flows.orphan_guard import guarded

    # exec, not a grandchild: Popen's pid is the command's (terminate() reaches the server itself)
    proc = subprocess.Popen(guarded([sys.executable, "-c", "import os; print(os.getpid())"]),
                            stdout=subprocess.PIPE, text=True)
    assert int(proc.communicate(timeout=60)[0]) == proc.pid


def test_the_guard_does_not_start_a_command_whose_night_is_gone():
    from flows.orphan_guard import main

    assert main([str(os.getppid() + 10_000_000), sys.executable, "-c", "raise SystemExit(9)"]) == 0
