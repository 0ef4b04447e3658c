"""dlt pipeline wiring: where raw data lands (the working DuckDB, dataset `raw`).

Sources stay pure (`flows/sources/`); this module only decides destination, dataset and file
format. Parquet loader files: DuckDB's default insert_values is ~7x slower.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import dlt
import dlt.common.libs.sql_alchemy_compat  # noqa: F401 - see below
import duckdb
from dlt.common.configuration.specs import BaseConfiguration
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from flows.config import RAW_DATASET, Settings

# dlt imports SQLAlchemy (~0.1 s) when it first renders the destination's credentials, in the
# middle of the first load; imported with the wiring instead (in `ocop run`, while Prefect's
# local server boots), so no load waits for it.

PIPELINE_NAME = "ocop_raw"
LOADER_FILE_FORMAT = "parquet"


def make_pipeline(settings: Settings, name: str = PIPELINE_NAME, destination: Any = None) -> dlt.Pipeline:
    """The pipeline into the working database's `raw` dataset (`destination`: the DuckDB
    destination to use, by default one that opens the database file itself)."""
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    return dlt.pipeline(
        pipeline_name=name,
        destination=destination or dlt.destinations.duckdb(str(settings.work_db)),
        dataset_name=RAW_DATASET,
        pipelines_dir=str(settings.dlt_dir),
    )


@contextmanager
def connected_pipeline(settings: Settings, name: str = PIPELINE_NAME) -> Iterator[dlt.Pipeline]:
    """`make_pipeline` whose destination uses one DuckDB connection, opened here and closed when
    the block ends, for all its steps and sql clients (dlt clones it per thread).

    dlt otherwise opens and closes the database for each step and each sql client, and resolves
    the destination's configuration from the connection string again each time (about 0.4 s of a
    load of a few files). dlt applies the same settings to the connection as to its own."""
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.work_db))
    # dlt's own statements only (set on each connection it clones): the rows of a load need not
    # keep the order of its files, and DuckDB appends them faster from all threads without it
    credentials = DuckDbCredentials(con, local_config={"preserve_insertion_order": False})
    destination = dlt.destinations.duckdb(credentials)
    _resolve_capabilities_config_once(destination)
    try:
        yield make_pipeline(settings, name, destination)
    finally:
        con.close()


def native_connection(pipeline: dlt.Pipeline) -> duckdb.DuckDBPyConnection | None:
    """The DuckDB connection given to the pipeline's destination (`connected_pipeline`), if any."""
    destination = pipeline.destination
    credentials = destination.config_params.get("credentials") if destination is not None else None
    if isinstance(credentials, DuckDbCredentials):
        return credentials.external_conn()
    if isinstance(credentials, duckdb.DuckDBPyConnection):
        return credentials
    return None


def _resolve_capabilities_config_once(destination: Any) -> None:
    """dlt asks the destination for its capabilities a few dozen times per load, and each time,
    without a configuration at hand, resolves one again from every config provider and section
    (~10 ms each). Here that partial configuration is resolved on the first call and reused: the
    destination is given its connection and is used for one block (`connected_pipeline`); what
    the capabilities are made of is computed as before, on each call."""
    capabilities = type(destination).capabilities
    resolved: list[Any] = []

    def capabilities_once(config: Any = None, naming: Any = None) -> Any:
        if config is None:
            if not resolved:  # as Destination.capabilities does when no config is given
                initial = destination.spec()
                initial.update(destination.config_params)
                credentials = initial.credentials
                if isinstance(credentials, BaseConfiguration):
                    credentials = credentials.copy()
                partial = destination.spec(credentials=credentials)
                try:
                    partial = destination.configuration(partial, accept_partial=True)
                except Exception:  # noqa: BLE001 - dlt falls back to the unresolved config too
                    pass
                resolved.append(partial)
            config = resolved[0]
        return capabilities(destination, config, naming)

    destination.capabilities = capabilities_once


def finish_pending(pipeline: dlt.Pipeline) -> bool:
    """Load packages a crashed run left normalized but not loaded, before anything new.

    Returns True when something was pending."""
    if pipeline.has_pending_data:
        pipeline.load()
        return True
    return False
