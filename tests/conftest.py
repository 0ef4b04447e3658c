"""Shared fixtures. Flow tests use one session-scoped Prefect test harness (its server costs ~10 s);
everything else calls task functions with .fn() or the modules directly."""
from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
sys.path.insert(0, str(Path(__file__).parent))  # tests/helpers.py

DEMO_AS_OF = dt.date(2024, 12, 20)


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def demo_inbox(tmp_path_factory) -> Path:
    from flows.demo_data import write_demo_inbox

    inbox = tmp_path_factory.mktemp("demo") / "inbox"
    write_demo_inbox(inbox)
    return inbox


@pytest.fixture(scope="session")
def demo_night(prefect_harness, demo_inbox, tmp_path_factory):
    """The real nightly flow, once, on the demo inbox: (settings, summary)."""
    from flows.config import load_settings
    from flows.nightly import nightly

    warehouse = tmp_path_factory.mktemp("warehouse")
    settings = load_settings(demo_inbox, warehouse)
    summary = nightly(inbox=str(demo_inbox), warehouse=str(warehouse), as_of=DEMO_AS_OF)
    return settings, summary
