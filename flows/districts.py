"""District submissions: find new files, keep them, parse them, load them raw, record verdicts.

The steps the nightly flow calls. A file is identified by its content hash: the same content is
never loaded twice; a changed file is a new submission.
"""
from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from flows.config import RAW_DATASET, Settings
from flows.pipeline import finish_pending, make_pipeline
from flows.sources.districts import district_submissions, submission_verdicts
from flows.workbook import ParsedSubmission, file_sha256, read_submission

IGNORED_NAMES = (".", "~$")  # hidden files, Excel lock files


@dataclass(frozen=True)
class NewFile:
    path: Path
    content_hash: str


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return con.execute("select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                       [schema, table]).fetchone()[0] > 0


def read_work_db(settings: Settings) -> duckdb.DuckDBPyConnection | None:
    if not settings.work_db.exists():
        return None
    return duckdb.connect(str(settings.work_db), read_only=True)


def known_hashes(settings: Settings) -> set[str]:
    con = read_work_db(settings)
    if con is None:
        return set()
    try:
        if not table_exists(con, RAW_DATASET, "submissions"):
            return set()
        return {r[0] for r in con.execute(f"select content_hash from {RAW_DATASET}.submissions").fetchall()}
    finally:
        con.close()


def find_new_files(settings: Settings) -> list[NewFile]:
    """Every file under <inbox>/districts whose content has not been received before (oldest first)."""
    root = settings.districts_inbox
    if not root.exists():
        return []
    known = known_hashes(settings)
    files = sorted((p for p in root.rglob("*") if p.is_file() and not p.name.startswith(IGNORED_NAMES)),
                   key=lambda p: (p.stat().st_mtime, str(p)))
    out, seen = [], set()
    for path in files:
        digest = file_sha256(path)
        if digest not in known and digest not in seen:
            seen.add(digest)
            out.append(NewFile(path, digest))
    return out


def archive(settings: Settings, new: NewFile) -> Path:
    """Keep the file exactly as sent (raw is history), under its content hash."""
    target = settings.raw_files_dir / "districts" / new.content_hash[:2] / f"{new.content_hash}__{new.path.name}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        shutil.copyfile(new.path, tmp)
        tmp.replace(target)
    return target


def parse_files(settings: Settings, files: list[NewFile], received_at: dt.datetime) -> list[ParsedSubmission]:
    subs = []
    for i, new in enumerate(files):
        # same night: keep the order in which the files arrived (mtime), one microsecond apart
        subs.append(read_submission(new.path, settings.inbox, received_at + dt.timedelta(microseconds=i),
                                    new.content_hash))
    return subs


def load_submissions(settings: Settings, subs: list[ParsedSubmission]):
    pipeline = make_pipeline(settings)
    finish_pending(pipeline)
    if not subs:
        return None
    return pipeline.run(district_submissions(subs), loader_file_format="parquet")


# --------------------------------------------------------------------------------------------
# What the quality gate needs, read back from raw
# --------------------------------------------------------------------------------------------

_LATEST_VERDICTS = f"""
    select * from {RAW_DATASET}.submission_verdicts
    qualify row_number() over (partition by submission_id order by checked_at desc) = 1"""


@dataclass
class PendingChecks:
    submissions: pd.DataFrame
    products: pd.DataFrame
    sales_points: pd.DataFrame
    claimed: dict[str, str]          # product code -> district whose in-use submission has it
    live_codes: set[str] | None      # product codes with a live listing on the as-of date (None: no catalogue)


def pending_checks(settings: Settings, as_of: dt.date) -> PendingChecks:
    """Submissions in raw that have no verdict yet (this night's, or a crashed night's)."""
    con = read_work_db(settings)
    empty = PendingChecks(pd.DataFrame(columns=["submission_id"]), pd.DataFrame(), pd.DataFrame(), {}, None)
    if con is None:
        return empty
    try:
        if not table_exists(con, RAW_DATASET, "submissions"):
            return empty
        has_verdicts = table_exists(con, RAW_DATASET, "submission_verdicts")
        pending_sql = f"select * from {RAW_DATASET}.submissions" + (
            f" where submission_id not in (select submission_id from {RAW_DATASET}.submission_verdicts)"
            if has_verdicts else "")
        subs = con.execute(pending_sql + " order by received_at").df()
        if subs.empty:
            return PendingChecks(subs, pd.DataFrame(), pd.DataFrame(), {}, None)
        ids = list(subs["submission_id"])
        products = _rows(con, "district_products", ids)
        sales = _rows(con, "district_sales_points", ids)
        claimed: dict[str, str] = {}
        if has_verdicts:
            claimed = dict(con.execute(f"""
                with accepted as (
                    select s.* from {RAW_DATASET}.submissions s join ({_LATEST_VERDICTS}) v using (submission_id)
                    where v.status = 'accepted'),
                in_use as (
                    select * from accepted
                    qualify row_number() over (partition by district_code order by period desc, received_at desc) = 1)
                select distinct p.ma_san_pham, i.district_code
                from {RAW_DATASET}.district_products p join in_use i using (submission_id)
                where p.ma_san_pham is not null""").fetchall())
        live = None
        if table_exists(con, RAW_DATASET, "ecommerce_listings"):
            live = {r[0] for r in con.execute(f"""
                select distinct ma_san_pham from {RAW_DATASET}.ecommerce_listings
                where ma_san_pham is not null and status <> 'draft'
                  and cast(listed_at at time zone 'Asia/Ho_Chi_Minh' as date) <= ?
                  and not (status = 'delisted' and cast(updated_at at time zone 'Asia/Ho_Chi_Minh' as date) <= ?)""",
                [as_of, as_of]).fetchall()}
        return PendingChecks(subs, products, sales, claimed, live)
    finally:
        con.close()


def _rows(con: duckdb.DuckDBPyConnection, table: str, ids: list[str]) -> pd.DataFrame:
    if not table_exists(con, RAW_DATASET, table):
        return pd.DataFrame(columns=["submission_id", "row_number"])
    df = con.execute(f"select * exclude (_dlt_load_id) from {RAW_DATASET}.{table} where submission_id in "
                     f"(select unnest(?::varchar[]))", [ids]).df()
    for column in ("ngay_cong_nhan", "ngay_het_han", "ngay_hoat_dong"):
        if column in df:
            df[column] = [None if pd.isna(v) else pd.Timestamp(v).date() for v in df[column]]
    return df.astype({c: "object" for c in df.columns if str(df[c].dtype) in ("boolean", "bool")})


def received_periods(settings: Settings) -> list[tuple[str, str]]:
    """(district_code, period) of every submission ever received, accepted or not."""
    con = read_work_db(settings)
    if con is None:
        return []
    try:
        if not table_exists(con, RAW_DATASET, "submissions"):
            return []
        return con.execute(f"select distinct district_code, period from {RAW_DATASET}.submissions "
                           "where district_code is not null and period is not null").fetchall()
    finally:
        con.close()


def save_verdicts(settings: Settings, records: list[dict]):
    if not records:
        return None
    pipeline = make_pipeline(settings)
    return pipeline.run(submission_verdicts(records), loader_file_format="parquet")
