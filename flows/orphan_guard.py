"""A night's child processes end with the night (Linux).

    python flows/orphan_guard.py PARENT_PID COMMAND [ARGS...]

sets the parent-death signal (SIGTERM), then replaces itself with COMMAND (exec: same process).
A night that is killed outright (SIGKILL, out of memory, a scheduler's timeout) so leaves no
Prefect server or dbt process behind, holding a port or the working database. PARENT_PID closes
the gap before the signal is set: if that process is already gone, the command does not start.

`guarded(command)` gives the command line to start; elsewhere than Linux, the command itself.
`end(process)` ends one when the night is done with it. This file imports nothing of the project:
it runs as a script.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def guarded(command: list[str]) -> list[str]:
    """`command`, started so that it ends when this process (the thread starting it) ends."""
    if not sys.platform.startswith("linux"):
        return list(command)
    return [sys.executable, str(Path(__file__).resolve()), str(os.getpid()), *command]


def end(process: subprocess.Popen, terminate: bool = True, timeout: float = 10.0) -> None:
    """Wait for `process` to end, after a SIGTERM if `terminate`; SIGKILL after `timeout` seconds."""
    if terminate and process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(argv: list[str]) -> int:
    import ctypes
    import signal

    parent, command = int(argv[0]), argv[1:]
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the night died before the signal was set
        return 0
    os.execv(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
