"""dlt pipeline wiring: where raw data lands (the working DuckDB, dataset `raw`).

Sources stay pure (`flows/sources/`); this module only decides destination, dataset and file
format. Parquet loader files: DuckDB's default insert_values is ~7x slower.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import dlt
import duckdb
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from flows.config import RAW_DATASET, Settings

PIPELINE_NAME = "ocop_raw"
LOADER_FILE_FORMAT = "parquet"


def make_pipeline(settings: Settings, name: str = PIPELINE_NAME) -> dlt.Pipeline:
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    return dlt.pipeline(
        pipeline_name=name,
        destination=dlt.destinations.duckdb(str(settings.work_db)),
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
    try:
        yield dlt.pipeline(
            pipeline_name=name,
            destination=dlt.destinations.duckdb(credentials),
            dataset_name=RAW_DATASET,
            pipelines_dir=str(settings.dlt_dir),
        )
    finally:
        con.close()


def finish_pending(pipeline: dlt.Pipeline) -> bool:
    """Load packages a crashed run left normalized but not loaded, before anything new.

    Returns True when something was pending."""
    if pipeline.has_pending_data:
        pipeline.load()
        return True
    return False
