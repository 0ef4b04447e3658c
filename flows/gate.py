"""The quality gates, run with Great Expectations on pandas frames read from the working database.

1. Submissions: the night's new district submissions, checked against the suites in
   `expectations/`. One error-level failure rejects a submission as a whole.
2. Marts: keys unique and not null, KPI parts summing to totals, order lines' products known or
   flagged, no negative amounts. A failure means nothing is published.

Rules that need more than one column (score within its star band, expiry within 36 months, …)
are computed here as boolean check columns; the suites assert them, so every rule, its level and
its Vietnamese message live in the GX suite files.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from flows import domain
from flows.config import EXPECTATIONS_DIR, Settings
from flows.workbook import COLUMN_LABELS, HasIssues, Issue

log = logging.getLogger(__name__)
EXPIRY_TOLERANCE_DAYS = 7
EXPIRING_SOON_DAYS = 90


@dataclass
class Verdict(HasIssues):
    submission_id: str
    status: str
    issues: list[Issue] = field(default_factory=list)


    @property
    def failed_rules(self) -> list[str]:
        return sorted({i.rule for i in self.errors})

    def as_record(self, checked_at: dt.datetime) -> dict:
        return {
            "submission_id": self.submission_id, "checked_at": checked_at, "status": self.status,
            "errors": len(self.errors), "warnings": len(self.warnings),
            "failed_rules": ",".join(self.failed_rules),
            "issues": json.dumps([i.as_dict() for i in self.issues], ensure_ascii=False, default=str),
        }


DOCS_SITE = "ocop_site"


def update_data_docs(context, results: list) -> None:
    """The Data Docs pages of these checkpoint results, and the index, built once (per checkpoint,
    GX's UpdateDataDocsAction renders the whole index each time). Never fails the gate."""
    identifiers = [key for result in results for key in result.run_results]
    if not identifiers:
        return
    try:
        context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=identifiers)
    except Exception as exc:  # noqa: BLE001 - the verdicts stand without their pages
        log.warning("GX Data Docs not updated: %s: %s", type(exc).__name__, exc)


def gx_context(settings: Settings):
    # imported here: Great Expectations takes ~2.3 s to import, which a night with nothing to
    # check (nothing new) does not need to pay
    import great_expectations as gx

    settings.apply_gx_environment()
    return gx.get_context(mode="file", context_root_dir=str(EXPECTATIONS_DIR))


# --------------------------------------------------------------------------------------------
# Submissions
# --------------------------------------------------------------------------------------------


def _owner_key(row: pd.Series) -> str:
    if isinstance(row["ma_so_thue"], str) and row["ma_so_thue"]:
        return "mst:" + row["ma_so_thue"]
    return "name:" + domain.fold(row["ten_chu_the"])


def products_check_frame(products: pd.DataFrame, periods: dict[str, str | None], claimed: dict[str, str],
                         districts: dict[str, str | None], live_codes: set[str] | None,
                         as_of: dt.date) -> pd.DataFrame:
    """The submission rows plus one boolean column per multi-column rule (None = not applicable)."""
    df = products.copy()
    if df.empty:
        for c in ("code_unique_in_submission", "code_not_claimed", "score_in_band", "recognised_in_period",
                  "expiry_valid", "tax_number_valid", "owner_consistent", "listing_flag_matches", "not_expiring_soon"):
            df[c] = pd.Series(dtype="object")
        return df
    dup = df.duplicated(["submission_id", "ma_san_pham"], keep=False) & df["ma_san_pham"].notna()
    df["code_unique_in_submission"] = ~dup

    def not_claimed(r) -> Any:
        owner = claimed.get(r["ma_san_pham"])
        return None if owner is None else owner == districts.get(r["submission_id"])
    df["code_not_claimed"] = df.apply(not_claimed, axis=1).astype("object")

    def in_band(r) -> Any:
        if pd.isna(r["hang_sao"]) or pd.isna(r["diem"]):
            return None
        return domain.score_fits_stars(int(r["hang_sao"]), float(r["diem"]), bool(r["tiem_nang_5_sao"] is True))
    df["score_in_band"] = df.apply(in_band, axis=1).astype("object")

    def in_period(r) -> Any:
        period = periods.get(r["submission_id"])
        if period is None or r["ngay_cong_nhan"] is None or pd.isna(r["ngay_cong_nhan"]):
            return None
        return r["ngay_cong_nhan"] <= domain.period_end(period)
    df["recognised_in_period"] = df.apply(in_period, axis=1).astype("object")

    def expiry_ok(r) -> Any:
        start, end = r["ngay_cong_nhan"], r["ngay_het_han"]
        if start is None or end is None or pd.isna(start) or pd.isna(end):
            return None
        limit = domain.certificate_expiry(start) + dt.timedelta(days=EXPIRY_TOLERANCE_DAYS)
        return start < end <= limit
    df["expiry_valid"] = df.apply(expiry_ok, axis=1).astype("object")

    df["tax_number_valid"] = df["ma_so_thue"].map(
        lambda v: None if not isinstance(v, str) else bool(domain.TAX_NUMBER_RE.match(v))).astype("object")

    keyed = df.assign(_owner=df.apply(_owner_key, axis=1), _name=df["ten_chu_the"].map(domain.fold))
    variety = keyed.groupby(["submission_id", "_owner"]).agg(names=("_name", "nunique"),
                                                             types=("loai_hinh_chu_the", "nunique"))
    bad = {k for k, v in variety.iterrows() if v["names"] > 1 or v["types"] > 1}
    df["owner_consistent"] = [(s, o) not in bad for s, o in zip(keyed["submission_id"], keyed["_owner"])]

    if live_codes is None:
        df["listing_flag_matches"] = None
    else:
        df["listing_flag_matches"] = [None if flag is None or pd.isna(flag) else bool(flag) == (code in live_codes)
                                      for flag, code in zip(df["len_san_tmdt"], df["ma_san_pham"])]
    df["listing_flag_matches"] = df["listing_flag_matches"].astype("object")
    soon = as_of + dt.timedelta(days=EXPIRING_SOON_DAYS)
    df["not_expiring_soon"] = [None if e is None or pd.isna(e) or e <= as_of else not (e <= soon)
                               for e in df["ngay_het_han"]]
    df["not_expiring_soon"] = df["not_expiring_soon"].astype("object")
    return df


def _issues_from_result(result, frame: pd.DataFrame) -> list[tuple[str, Issue]]:
    """(submission_id, issue) for every failing row of every failed expectation."""
    out = []
    by_key = frame.set_index(["submission_id", "row_number"], drop=False)
    for vr in result.run_results.values():
        for er in vr.results:
            if er.success:
                continue
            cfg = er.expectation_config
            meta = cfg.meta or {}
            column = cfg.kwargs.get("column")
            level = "warning" if str(cfg.severity.value if hasattr(cfg.severity, "value") else cfg.severity) == "warning" else "error"
            for idx in er.result.get("unexpected_index_list") or []:
                sid, row = idx["submission_id"], int(idx["row_number"])
                value = by_key.loc[(sid, row)]
                if isinstance(value, pd.DataFrame):
                    value = value.iloc[0]
                shown = _display_value(value, meta.get("source_column") or column)
                out.append((sid, Issue(level, meta.get("rule", cfg.type), meta.get("message_vi", cfg.type),
                                       sheet=value.get("sheet"), row=row, column=meta.get("column_vi", column),
                                       value=shown, fix=meta.get("fix_vi"))))
    return out


def _display_value(row: pd.Series, column: str | None) -> str | None:
    """What the district typed in that cell (from the original values), else the parsed value."""
    label = COLUMN_LABELS.get(column or "", column)
    try:
        source = json.loads(row.get("source_values") or "{}")
    except ValueError:
        source = {}
    for header, v in source.items():
        if domain.fold(header) == domain.fold(label):
            return str(v)
    for c in (column, label):
        if c in row.index and row[c] is not None and not (isinstance(row[c], float) and pd.isna(row[c])):
            return str(row[c])
    return None


def validate_submissions(settings: Settings, submissions: pd.DataFrame, products: pd.DataFrame,
                         sales_points: pd.DataFrame, claimed: dict[str, str], live_codes: set[str] | None,
                         as_of: dt.date) -> dict[str, Verdict]:
    """Verdicts for the given submissions (rows of raw.submissions) and their raw rows."""
    verdicts: dict[str, Verdict] = {}
    for s in submissions.itertuples():
        issues = [Issue(**i) for i in json.loads(s.parse_errors or "[]") + json.loads(s.parse_warnings or "[]")]
        verdicts[s.submission_id] = Verdict(s.submission_id, "accepted", issues)
    checkable = [s.submission_id for s in submissions.itertuples()
                 if not any(i.level == "error" and i.rule in WHOLE_FILE_RULES for i in verdicts[s.submission_id].issues)]
    if checkable:
        periods = dict(zip(submissions["submission_id"], submissions["period"]))
        districts = dict(zip(submissions["submission_id"], submissions["district_code"]))
        context = gx_context(settings)
        frame = products_check_frame(products[products["submission_id"].isin(checkable)], periods, claimed,
                                     districts, live_codes, as_of)
        found, results = [], []
        if not frame.empty:
            result = context.checkpoints.get("district_products").run(batch_parameters={"dataframe": frame})
            found += _issues_from_result(result, frame)
            results.append(result)
        sp = sales_points[sales_points["submission_id"].isin(checkable)]
        if not sp.empty:
            result = context.checkpoints.get("district_sales_points").run(batch_parameters={"dataframe": sp.copy()})
            found += _issues_from_result(result, sp)
            results.append(result)
        update_data_docs(context, results)
        for sid, issue in found:
            known = {(i.row, i.column) for i in verdicts[sid].issues if i.row is not None}
            if issue.level == "error" and (issue.row, issue.column) in known:
                continue  # the cell could not be read at all: that message already says it better
            verdicts[sid].issues.append(issue)
    for v in verdicts.values():
        v.status = "rejected" if v.errors else "accepted"
    return verdicts


WHOLE_FILE_RULES = {"unreadable_file", "products_sheet_missing", "district_unresolved", "district_ambiguous",
                    "district_conflict", "period_unresolved", "period_conflict"}


# --------------------------------------------------------------------------------------------
# Marts
# --------------------------------------------------------------------------------------------

# What GX validates for each mart: the marts are small except fct_order_line (one row per order
# line, millions). For it, DuckDB computes the rules in one pass (over the rows the publication
# takes, see MART_PRECHECKS) and GX gets a bounded frame: every offending row (up to
# MART_FRAME_CAP, keys sorted so duplicates stay together) plus a sample of good rows. Same rules,
# same rule names, same verdict as validating those rows in pandas, in a fraction of the time and
# memory.
MART_FRAME_CAP = 10_000
MART_SAMPLE_ROWS = 1_000

_ORDER_LINE_COLUMNS = """order_id, line_no, qty, revenue_vnd,
               (ma_san_pham is not null) or is_unmapped_sku as product_known_or_flagged"""
# A row breaks a rule of the marts_fct_order_line suite (keys null or duplicated, product neither
# known nor flagged, negative quantity or revenue). Nulls in qty/revenue/flag: GX ignores them.
_ORDER_LINE_OFFENDING = """
        order_id is null or line_no is null or qty < 0 or revenue_vnd < 0
        or product_known_or_flagged is not true
        or exists (select 1 from _duplicate_keys d where d.order_id = l.order_id and d.line_no = l.line_no)"""
_ORDER_LINE_CTES = f"""
        with _duplicate_keys as (
            select order_id, line_no from marts.fct_order_line group by all having count(*) > 1
        ),
        l as (select {_ORDER_LINE_COLUMNS} from marts.fct_order_line)"""

MART_QUERIES = {
    "marts_kpi_province_snapshot": """
        select p.*,
               p.valid_products_3_star + p.valid_products_4_star + p.valid_products_5_star = p.valid_products
                   as stars_sum_ok,
               p.owners_enterprise + p.owners_cooperative + p.owners_cooperative_group + p.owners_household
                   = p.owners as owners_sum_ok,
               p.sales_points_state_supported + p.sales_points_private = p.sales_points as sales_points_sum_ok,
               coalesce(d.valid_products = p.valid_products and d.products_on_ecommerce = p.products_on_ecommerce
                        and d.sales_points = p.sales_points, false) as matches_districts
        from marts.kpi_province_snapshot p
        left join (select as_of_date, sum(valid_products) as valid_products,
                          sum(products_on_ecommerce) as products_on_ecommerce, sum(sales_points) as sales_points
                   from marts.kpi_district_snapshot group by 1) d using (as_of_date)""",
    "marts_kpi_district_snapshot": "select * from marts.kpi_district_snapshot",
    # the offending rows (capped; a duplicate key's rows together) and a sample of good ones
    "marts_fct_order_line": f"""{_ORDER_LINE_CTES}
        (select * from l where {_ORDER_LINE_OFFENDING} order by order_id, line_no limit {MART_FRAME_CAP})
        union all
        (select * from l where not ({_ORDER_LINE_OFFENDING}) limit {MART_SAMPLE_ROWS})""",
    "marts_fct_certification": """
        select c.certificate_id, p.ma_san_pham is not null as product_known
        from marts.fct_certification c left join marts.dim_product p using (ma_san_pham)""",
    "marts_dim_product": """
        select p.ma_san_pham, d.district_code is not null as district_known
        from marts.dim_product p left join marts.dim_district d using (district_code)""",
    "marts_dim_owner": "select owner_key from marts.dim_owner",
}

# For a capped frame: how many rows offend in the whole table (the failure message says so).
MART_OFFENDING_COUNTS = {
    "marts_fct_order_line": f"{_ORDER_LINE_CTES}\n        select count(*) from l where {_ORDER_LINE_OFFENDING}",
}

# One cheap pass first: 0 means no row can offend (row rules, and as many distinct key hashes as
# rows), so GX gets the sample alone. Anything else (a real duplicate, or once in ~10^12 nights a
# hash collision) builds the exact frame above, over the whole table.
# The pass reads only the rows tonight's publication takes from the working table: those dbt
# (re)wrote after `since` when the publication is built from the previous one (see
# flows/publish.py: it keeps the older rows, which were checked the night they were published, and
# is checked to hold exactly as many rows as the working table, which a duplicate key among the
# older rows would break); every row when it is written whole. So its cost follows the night's rows.
MART_PRECHECKS = {
    "marts_fct_order_line": """
        select count(*) filter (where order_id is null or line_no is null or qty < 0 or revenue_vnd < 0
                                   or ((ma_san_pham is not null) or is_unmapped_sku) is not true)
               + count(*) - count(distinct hash(order_id, line_no))
        from marts.fct_order_line""",
}
MART_PRECHECK_SINCE = {"marts_fct_order_line": "where dbt_loaded_at > ?::timestamptz"}  # zone maps skip the rest
MART_SAMPLES = {
    "marts_fct_order_line": f"select {_ORDER_LINE_COLUMNS} from marts.fct_order_line limit {MART_SAMPLE_ROWS}",
}


@dataclass
class MartsGateResult:
    success: bool
    failures: list[str]

    def describe(self) -> str:
        return "marts gate passed" if self.success else "marts gate FAILED:\n  " + "\n  ".join(self.failures)


def _precheck(con: duckdb.DuckDBPyConnection, name: str, since: str | None) -> int:
    if since is None:
        return con.execute(MART_PRECHECKS[name]).fetchone()[0]
    return con.execute(f"{MART_PRECHECKS[name]}\n        {MART_PRECHECK_SINCE[name]}", [since]).fetchone()[0]


def validate_marts(settings: Settings, con: duckdb.DuckDBPyConnection, since: str | None = None) -> MartsGateResult:
    """The marts gate. `since`: check only fct_order_line's rows written after it (see
    MART_PRECHECKS and publish.incremental_since); None checks every row."""
    context = gx_context(settings)
    failures: list[str] = []
    results = []
    for name, sql in MART_QUERIES.items():
        if name in MART_PRECHECKS and _precheck(con, name, since) == 0:
            sql = MART_SAMPLES[name]
        frame = con.execute(sql).df()
        result = context.checkpoints.get(name).run(batch_parameters={"dataframe": frame})
        results.append(result)
        note = ""
        if name in MART_OFFENDING_COUNTS and not result.success and len(frame) >= MART_FRAME_CAP:
            total = con.execute(MART_OFFENDING_COUNTS[name]).fetchone()[0]
            note = f"; {total} offending rows in the table, the first {MART_FRAME_CAP} checked"
        for vr in result.run_results.values():
            for er in vr.results:
                if not er.success:
                    cfg = er.expectation_config
                    failures.append(f"{name}: {cfg.meta.get('rule', cfg.type)} ({cfg.type} "
                                    f"{ {k: v for k, v in cfg.kwargs.items() if k != 'batch_id'} }, "
                                    f"unexpected {er.result.get('unexpected_count', '?')}{note})")
    update_data_docs(context, results)
    return MartsGateResult(not failures, failures)
