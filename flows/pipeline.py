"""dlt pipeline wiring: where raw data lands (the working DuckDB, dataset `raw`).

Sources stay pure (`flows/sources/`); this module only decides destination, dataset and file
format. Parquet loader files: DuckDB's default insert_values is ~7x slower.
"""
from __future__ import annotations

import dlt

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


def finish_pending(pipeline: dlt.Pipeline) -> bool:
    """Load packages a crashed run left normalized but not loaded, before anything new.

    Returns True when something was pending."""
    if pipeline.has_pending_data:
        pipeline.load()
        return True
    return False
