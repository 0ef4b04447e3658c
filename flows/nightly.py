"""The nightly Prefect flow, step by step as DESIGN.md describes it.

extract → load raw (dlt) → validate submissions (GX) → transform (dbt build) → validate marts (GX)
→ publish (atomic replace + Parquet) → report.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import threading
import uuid
from dataclasses import dataclass, field

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from flows import alerts, districts, gate, publish as publishing, status as run_history, transform
from flows.publish import AlreadyRunning, run_lock  # noqa: F401 - the lock lives with the publication it guards
from flows.config import Settings, load_settings, today_in_vietnam
from flows.workbook import ParsedSubmission


class PublishBlocked(RuntimeError):
    """The night could not publish what it should have (dbt or the marts gate failed)."""


@dataclass
class RunSummary:
    run_id: str
    as_of: dt.date
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    outcome: str = "running"             # published | nothing_new | failed
    new_files: int = 0
    accepted: int = 0
    rejected: int = 0
    verdicts: list[dict] = field(default_factory=list)
    ecommerce: dict = field(default_factory=dict)
    alerts: dict = field(default_factory=dict)
    published_tables: int = 0
    message: str = ""

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        return json.loads(json.dumps(d, default=str))


@contextlib.contextmanager
def night(settings: Settings, summary: "RunSummary"):
    """The lock, recovery after a killed night, and the run history around one night."""
    logger = get_run_logger()
    with run_lock(settings):
        recovered = publishing.recover(settings)
        if recovered:
            logger.warning("cleaned up after an interrupted publish: %s", "; ".join(recovered))
        run_history.record_start(settings, summary.run_id, summary.as_of, summary.started_at)
        try:
            yield
        except BaseException as exc:
            if summary.outcome == "running":
                summary.outcome = "failed"
                summary.message = summary.message or f"{type(exc).__name__}: {exc}"[:2000]
            raise
        finally:
            summary.finished_at = summary.finished_at or dt.datetime.now(dt.timezone.utc)
            run_history.record_finish(settings, summary.as_dict())


def _transient(task, task_run, state) -> bool:
    """Retry only what a second attempt can fix: a lock held by another process, an I/O hiccup."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001
        text = f"{type(exc).__name__}: {exc}"
        return isinstance(exc, (OSError, TimeoutError)) or bool(re.search(
            r"Could not set lock|Conflicting lock|IO Error|database is locked|Resource temporarily unavailable", text))
    return False


@contextlib.contextmanager
def _dbt_progress(settings: Settings, every: float = 5.0):
    """Console progress for the long dbt build: follows dbt's log file ("12 of 190 OK created ...")."""
    logger = get_run_logger()
    log = settings.work_dir / "dbt-logs" / "dbt.log"
    start = log.stat().st_size if log.exists() else 0
    stop = threading.Event()
    pattern = re.compile(r"(\d+) of (\d+) (OK|PASS|WARN|ERROR|FAIL|SKIP)\S* (?:created )?(.*?) \.")

    def follow() -> None:
        offset, last = start, None
        while not stop.wait(every):
            try:
                with open(log, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read().decode("utf-8", "replace")
                    offset = fh.tell()
            except OSError:
                continue
            for m in pattern.finditer(re.sub(r"\x1b\[[0-9;]*m", "", chunk)):
                last = m
            if last:
                logger.info("dbt build: %s of %s nodes done (last: %s %s)", last[1], last[2], last[3], last[4].strip())

    thread = threading.Thread(target=follow, name="dbt-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)


# ---------------------------------------------------------------- steps (small, testable with .fn())

@task(cache_policy=NO_CACHE)
def extract_district_files(settings: Settings) -> list[districts.NewFile]:
    settings.stage_reached("extract")
    new = districts.find_new_files(settings)
    for f in new:
        districts.archive(settings, f)
    get_run_logger().info("district inbox: %d new file(s)", len(new))
    return new


@task(cache_policy=NO_CACHE)
def parse_district_files(settings: Settings, files: list[districts.NewFile], received_at: dt.datetime):
    return districts.parse_files(settings, files, received_at)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30])
def load_district_raw(settings: Settings, subs: list[ParsedSubmission]) -> int:
    settings.stage_reached("load")
    districts.load_submissions(settings, subs)
    return len(subs)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_transient)
def load_ecommerce_raw(settings: Settings) -> dict:
    settings.stage_reached("load_ecommerce")
    from flows.ecommerce import load_ecommerce

    report = load_ecommerce(settings)
    return report.as_dict() if hasattr(report, "as_dict") else dict(report.__dict__)


@task(cache_policy=NO_CACHE)
def validate_submissions(settings: Settings, as_of: dt.date) -> list[dict]:
    settings.stage_reached("validate_submissions")
    pending = districts.pending_checks(settings, as_of)
    if pending.submissions.empty:
        return []
    verdicts = gate.validate_submissions(settings, pending.submissions, pending.products, pending.sales_points,
                                         pending.claimed, pending.live_codes, as_of)
    checked_at = dt.datetime.now(dt.timezone.utc)
    records = [v.as_record(checked_at) for v in verdicts.values()]
    districts.save_verdicts(settings, records)
    meta = pending.submissions.set_index("submission_id")
    for r in records:
        r["district_code"] = meta.loc[r["submission_id"], "district_code"]
        r["period"] = meta.loc[r["submission_id"], "period"]
        r["source_file"] = meta.loc[r["submission_id"], "source_file"]
        r["received_at"] = meta.loc[r["submission_id"], "received_at"]
    return records


@task(cache_policy=NO_CACHE)
def alert_districts(settings: Settings, verdicts: list[dict], as_of: dt.date) -> dict:
    """Feedback workbooks and notifications for rejected submissions; late reminders. Never raises."""
    report = alerts.send_rejection_alerts(settings, verdicts)
    with contextlib.suppress(Exception):
        create_markdown_artifact(markdown=report.markdown, key="ocop-district-alerts",
                                 description="Per-district submission status of the night")
    period = alerts.previous_period(as_of)
    late = alerts.late_districts(settings, districts.received_periods(settings), as_of)
    late = [code for code in late if code not in alerts.already_reminded(settings, period)]
    late_report = alerts.send_late_alerts(settings, late, period, today=as_of) if late else None
    if late:
        alerts.record_reminders(settings, late, period)
    return {"feedback_files": [str(p) for p in report.feedback_files],
            "notifications_sent": report.notifications_sent + (late_report.notifications_sent if late_report else 0),
            "notifications_failed": report.notifications_failed + (late_report.notifications_failed if late_report else 0),
            "late_districts": late}


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=10),
      retry_condition_fn=_transient)
def build_marts(settings: Settings, as_of: dt.date) -> int:
    settings.stage_reached("dbt")
    with _dbt_progress(settings):
        outcome = transform.dbt_build(settings, as_of)
    get_run_logger().info("dbt build: %d nodes, %s", outcome.nodes, outcome.scope)
    return outcome.nodes


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=10),
      retry_condition_fn=_transient)
def validate_marts(settings: Settings) -> gate.MartsGateResult:
    import duckdb

    settings.stage_reached("validate_marts")

    con = duckdb.connect(str(settings.work_db), read_only=True)
    try:
        # of fct_order_line, the rows tonight's publication takes from the working marts (the rows it
        # keeps from the previous publication were checked the night they were published)
        since = publishing.incremental_since(settings, "fct_order_line", con)
        return gate.validate_marts(settings, con, since)
    finally:
        con.close()


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=10),
      retry_condition_fn=_transient)
def publish_marts(settings: Settings, run_id: str, as_of: dt.date) -> publishing.Publication:
    settings.stage_reached("publish")
    publication = publishing.publish(settings, run_id, as_of)
    get_run_logger().info("published %d marts in %.2f s (the swap itself %.1f ms); %s kept in %s",
                          len(publication.tables), publication.seconds, publication.swap_seconds * 1000,
                          len(publishing.publications(settings)), settings.publications_dir)
    return publication


@task(cache_policy=NO_CACHE)
def document_marts(settings: Settings, as_of: dt.date) -> bool:
    """dbt docs for analysts; a failure here is logged, it does not undo the publication."""
    outcome = transform.dbt_docs(settings, as_of)
    if not outcome.success:
        get_run_logger().warning("dbt docs generate failed: %s", outcome.failures)
    return outcome.success


@task(cache_policy=NO_CACHE)
def report(settings: Settings, summary: RunSummary) -> str:
    settings.stage_reached("report")
    lines = [f"# OCOP nightly run {summary.run_id}", "",
             f"- as-of date: **{summary.as_of}**", f"- outcome: **{summary.outcome}**",
             f"- new district files: {summary.new_files} (accepted {summary.accepted}, rejected {summary.rejected})",
             f"- e-commerce: {summary.ecommerce}", "",
             "| district | period | file | status | errors | warnings | failed rules |",
             "|---|---|---|---|---|---|---|"]
    for v in summary.verdicts:
        lines.append(f"| {v.get('district_code') or '?'} | {v.get('period') or '?'} | {v.get('source_file')} | "
                     f"{v['status']} | {v['errors']} | {v['warnings']} | {v['failed_rules'] or '—'} |")
    markdown = "\n".join(lines)
    with contextlib.suppress(Exception):  # outside a flow run (tests with .fn()) there is nowhere to attach it
        create_markdown_artifact(markdown=markdown, key="ocop-night", description="OCOP nightly run summary")
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    (settings.reports_dir / "last_run.json").write_text(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2),
                                                        encoding="utf-8")
    return markdown


# ---------------------------------------------------------------- the flow

@flow(name="ocop-nightly", log_prints=True)
def nightly(inbox: str | None = None, warehouse: str | None = None, as_of: dt.date | None = None) -> dict:
    settings = load_settings(inbox, warehouse)
    as_of = as_of or today_in_vietnam()
    summary = RunSummary(run_id=dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6],
                         as_of=as_of, started_at=dt.datetime.now(dt.timezone.utc))
    logger = get_run_logger()
    # dbt imports and parses the project in a process of its own meanwhile, for step 4
    with night(settings, summary), transform.warm_dbt(settings, as_of):
        # 1. extract
        files = extract_district_files(settings)
        subs = parse_district_files(settings, files, summary.started_at)
        summary.new_files = len(files)
        # 2. load raw
        load_district_raw(settings, subs)
        summary.ecommerce = load_ecommerce_raw(settings)
        # 3. validate submissions
        summary.verdicts = validate_submissions(settings, as_of)
        summary.accepted = sum(v["status"] == "accepted" for v in summary.verdicts)
        summary.rejected = sum(v["status"] == "rejected" for v in summary.verdicts)
        summary.alerts = alert_districts(settings, summary.verdicts, as_of)
        nothing_new = (not files and not summary.verdicts and not any(summary.ecommerce.get("rows_loaded", {}).values())
                       and publishing.is_current(settings, as_of))
        if nothing_new:
            summary.outcome, summary.message = "nothing_new", "nothing new to publish; the published database is current"
        else:
            # 4. transform
            build_marts(settings, as_of)
            # 5. validate marts
            gate_result = validate_marts(settings)
            if not gate_result.success:
                summary.outcome, summary.message = "failed", gate_result.describe()
                summary.finished_at = dt.datetime.now(dt.timezone.utc)
                report(settings, summary)
                raise PublishBlocked("nothing published: " + gate_result.describe())
            # 6. publish
            publication = publish_marts(settings, summary.run_id, as_of)
            summary.published_tables = len(publication.tables)
            summary.outcome, summary.message = "published", f"published {publication.path}"
            document_marts(settings, as_of)
        summary.finished_at = dt.datetime.now(dt.timezone.utc)
        # 7. report
        report(settings, summary)
    logger.info("%s", summary.message)
    return summary.as_dict()
