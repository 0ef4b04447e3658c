"""dlt source for district submissions: pure, no pipeline wiring.

Every parsed file becomes one `submissions` row (rejected files too) and its product and
sales-point rows, with lineage (file, content hash, sheet, original row number); dlt adds the load
id. Tables are append-only: raw is history, nothing a district sent is lost.
"""
from __future__ import annotations

import json
from typing import Iterable, Sequence

import dlt
import pyarrow as pa

from flows.workbook import PRODUCT_COLUMNS, SALES_POINT_COLUMNS, ParsedSubmission

LINEAGE = [("submission_id", pa.string()), ("source_file", pa.string()), ("content_hash", pa.string()),
           ("sheet", pa.string()), ("row_number", pa.int64())]

_PRODUCT_TYPES = {
    "hang_sao": pa.int64(), "diem": pa.float64(), "tiem_nang_5_sao": pa.bool_(),
    "ngay_cong_nhan": pa.date32(), "ngay_het_han": pa.date32(), "len_san_tmdt": pa.bool_(),
    "lang_nghe": pa.bool_(), "chu_the_da_tap_huan": pa.bool_(), "kenh_hien_dai": pa.bool_(),
}
PRODUCTS_SCHEMA = pa.schema(
    LINEAGE
    + [(c, _PRODUCT_TYPES.get(c, pa.string())) for c in PRODUCT_COLUMNS]
    + [("nhom_san_pham_goc", pa.string()), ("source_values", pa.string())]
)
SALES_POINTS_SCHEMA = pa.schema(
    LINEAGE
    + [(c, pa.date32() if c == "ngay_hoat_dong" else pa.string()) for c in SALES_POINT_COLUMNS]
    + [("source_values", pa.string())]
)
SUBMISSIONS_SCHEMA = pa.schema([
    ("submission_id", pa.string()), ("source_file", pa.string()), ("file_name", pa.string()),
    ("content_hash", pa.string()), ("file_size", pa.int64()), ("received_at", pa.timestamp("us", tz="UTC")),
    ("district_code", pa.string()), ("period", pa.string()), ("products_sheet", pa.string()),
    ("sales_points_sheet", pa.string()), ("has_sales_points_sheet", pa.bool_()),
    ("rows_received", pa.int64()), ("sales_points_received", pa.int64()),
    ("parse_errors", pa.string()), ("parse_warnings", pa.string()),
])
VERDICTS_SCHEMA = pa.schema([
    ("submission_id", pa.string()), ("checked_at", pa.timestamp("us", tz="UTC")), ("status", pa.string()),
    ("errors", pa.int64()), ("warnings", pa.int64()), ("failed_rules", pa.string()), ("issues", pa.string()),
])


def _rows_table(subs: Sequence[ParsedSubmission], attr: str, schema: pa.Schema) -> pa.Table:
    records = []
    for sub in subs:
        for row in getattr(sub, attr):
            records.append({"submission_id": sub.submission_id, "source_file": sub.source_file,
                            "content_hash": sub.content_hash, **row})
    return pa.Table.from_pylist(records, schema=schema)


def submissions_table(subs: Sequence[ParsedSubmission]) -> pa.Table:
    return pa.Table.from_pylist([
        {
            "submission_id": s.submission_id, "source_file": s.source_file, "file_name": s.file_name,
            "content_hash": s.content_hash, "file_size": s.file_size, "received_at": s.received_at,
            "district_code": s.district_code, "period": s.period, "products_sheet": s.products_sheet,
            "sales_points_sheet": s.sales_points_sheet, "has_sales_points_sheet": s.sales_points_sheet is not None,
            "rows_received": len(s.products), "sales_points_received": len(s.sales_points),
            "parse_errors": json.dumps([i.as_dict() for i in s.errors], ensure_ascii=False),
            "parse_warnings": json.dumps([i.as_dict() for i in s.warnings], ensure_ascii=False),
        }
        for s in subs
    ], schema=SUBMISSIONS_SCHEMA)


@dlt.source(name="districts", max_table_nesting=0)
def district_submissions(subs: Sequence[ParsedSubmission]) -> Iterable:
    """The night's new district files: submissions with their product and sales-point rows."""
    subs = list(subs)

    @dlt.resource(name="submissions", write_disposition="append")
    def submissions():
        yield submissions_table(subs)

    @dlt.resource(name="district_products", write_disposition="append")
    def district_products():
        yield _rows_table(subs, "products", PRODUCTS_SCHEMA)

    @dlt.resource(name="district_sales_points", write_disposition="append")
    def district_sales_points():
        yield _rows_table(subs, "sales_points", SALES_POINTS_SCHEMA)

    return submissions, district_products, district_sales_points


@dlt.source(name="district_verdicts", max_table_nesting=0)
def submission_verdicts(verdicts: Sequence[dict]) -> Iterable:
    """The quality gate's verdict on each checked submission (append-only; newest checked_at wins)."""

    @dlt.resource(name="submission_verdicts", write_disposition="append")
    def verdicts_resource():
        yield pa.Table.from_pylist(list(verdicts), schema=VERDICTS_SCHEMA)

    return verdicts_resource
