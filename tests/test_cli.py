"""flows/cli.py: how a night's process treats Python's cycle collector (the rest of the command is
run for real by the end-to-end, operations and second-night tests)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from flows.config import REPO_ROOT


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_night_starts_without_the_cycle_collector_and_runs_with_it():
    """`ocop run` turns the collector off while the process starts and back on, with what the
    start-up loaded frozen, before the flow runs; a night that fails to start turns it back on too."""
    out = _run("""
        import datetime as dt, gc
        from flows import cli
        from flows.config import load_settings

        cli.starting()
        off = gc.isenabled()
        cli.started()
        print(off, gc.isenabled(), gc.get_freeze_count() > 0)

        gc.unfreeze()
        cli.started()  # the collector was on: nothing to do
        print(gc.get_freeze_count())

        def broken(settings):
            raise RuntimeError("no server")
        cli.start_prefect = broken
        cli.starting()
        try:
            cli.run_night(load_settings("/nonexistent/inbox", "/nonexistent/warehouse"), dt.date(2024, 12, 20))
        except RuntimeError:
            pass
        print(gc.isenabled())
    """)
    assert out.splitlines() == ["False True True", "0", "True"]
