"""`ocop` command line: demo-data, run, serve, status, rollback."""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import sys
from pathlib import Path

from flows.config import NIGHTLY_CRON, TIMEZONE, load_settings


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text}") from None


def cmd_demo_data(args) -> int:
    from flows.demo_data import write_demo_inbox

    settings = load_settings(inbox=args.inbox)
    summary = write_demo_inbox(settings.inbox)
    print(f"demo inbox written to {settings.inbox}: {json.dumps(summary, ensure_ascii=False, default=str)}")
    return 0


def start_prefect(settings):
    """Prefect's local server when no API is configured (None otherwise), started before the
    flow's modules (dlt, dbt, GX) are imported, so that it boots meanwhile."""
    from flows import prefect_api

    return prefect_api.start_local_api(settings.work_dir / "prefect-server.log", settings.prefect_api_url)


def _import_the_gates() -> None:
    """Great Expectations takes ~2.3 s to import; a night with anything new needs it. While
    Prefect's local server boots (on the other core), importing it costs next to no wall time."""
    import great_expectations  # noqa: F401


def run_night(settings, as_of: dt.date | None, api=None) -> dict:
    """One night as `ocop run` runs it (the benchmark runs it the same way), against `api` from
    start_prefect() (started here when not given)."""
    from flows import prefect_api, transform

    try:
        api = api or start_prefect(settings)
        # dbt's own process: it imports dbt and parses the project while this one starts and loads
        with transform.warm_dbt(settings, as_of):
            from flows.nightly import nightly

            with prefect_api.using(api, meanwhile=_import_the_gates):
                started()
                return nightly(inbox=str(settings.inbox), warehouse=str(settings.warehouse), as_of=as_of)
    finally:
        gc.enable()


def starting() -> None:
    """The first step of a night's process: Python's cycle collector is off while it starts.

    A night imports Prefect, dlt, dbt's client side and Great Expectations: ~640k objects that
    live as long as the process. As the heap grows, the collector goes through all of it again and
    again (7 full collections, ~0.9 s of a night's start-up, holding the GIL); imports leave next to
    no garbage to find (~7k objects, ~1 %). `started()` turns it back on."""
    gc.disable()


def started() -> None:
    """The night's process has started (see `starting`): what it holds now is moved out of the
    collector's sight for good (gc.freeze), and the collector is on again for what the night makes.
    Nothing happens unless `starting()` turned the collector off (e.g. a test calling run_night)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def cmd_run(args) -> int:
    starting()
    from flows.publish import AlreadyRunning, run_lock

    settings = load_settings(args.inbox, args.warehouse)
    try:
        # the lock first: a second run stops here at once, before Prefect (or even its import) starts
        with run_lock(settings):
            summary = run_night(settings, args.as_of)
    except AlreadyRunning as exc:
        print(f"ocop run: {exc}", file=sys.stderr)
        return 75  # EX_TEMPFAIL
    except Exception as exc:  # noqa: BLE001 - the night could not publish; say why, non-zero
        from flows.nightly import PublishBlocked

        if isinstance(exc, PublishBlocked):
            print(f"ocop run: {exc}", file=sys.stderr)
        else:
            print(f"ocop run: the night failed before publishing: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"ocop run {summary['run_id']}: {summary['outcome']} (as-of {summary['as_of']}); "
          f"{summary['new_files']} new district file(s): {summary['accepted']} accepted, {summary['rejected']} rejected")
    for v in summary["verdicts"]:
        if v["status"] == "rejected":
            print(f"  rejected: {v['source_file']} ({v['errors']} errors: {v['failed_rules']})")
    feeds = summary.get("ecommerce") or {}
    rows = feeds.get("rows_loaded") or {}
    print(f"  e-commerce: {len(feeds.get('files_loaded') or [])} new feed file(s), "
          f"{rows.get('ecommerce_order_lines', 0)} order lines and {rows.get('ecommerce_listings', 0)} listings "
          f"loaded, {sum((feeds.get('quarantined') or {}).values())} quarantined; API {feeds.get('api_status', '?')}")
    if feeds.get("api_error"):
        print(f"  e-commerce API: {feeds['api_error']}")
    print(f"  published database: {settings.published_db}")
    return 0


def cmd_serve(args) -> int:
    from prefect.schedules import Cron

    from flows.nightly import nightly

    settings = load_settings(args.inbox, args.warehouse)
    nightly.serve(
        name="ocop-nightly",
        schedules=[Cron(NIGHTLY_CRON, timezone=str(TIMEZONE))],
        parameters={"inbox": str(settings.inbox), "warehouse": str(settings.warehouse)},
    )
    return 0


def cmd_status(args) -> int:
    from flows.status import status_data, status_text

    settings = load_settings(warehouse=args.warehouse)
    if args.json:
        print(json.dumps(status_data(settings, args.runs), ensure_ascii=False, indent=2, default=str))
    else:
        print(status_text(settings, args.runs))
    return 0


def cmd_rollback(args) -> int:
    from flows.publish import AlreadyRunning, RollbackError, rollback, run_lock

    settings = load_settings(warehouse=args.warehouse)
    try:
        with run_lock(settings, holder="ocop rollback"):
            done = rollback(settings, args.to)
    except AlreadyRunning as exc:
        print(f"ocop rollback: {exc}", file=sys.stderr)
        return 75  # EX_TEMPFAIL
    except RollbackError as exc:
        print(f"ocop rollback: {exc}", file=sys.stderr)
        return 1
    print(f"ocop rollback: {settings.published_db} is now run {done['run_id']} (as-of {done['as_of_date']}), "
          f"was {done['from_run_id'] or 'none'}; exports switched with it")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocop", description="Quảng Ngãi OCOP warehouse: nightly ETL and marts")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo-data", help="write the demo inbox (district workbooks, feed files)")
    p.add_argument("--inbox", type=Path)
    p.set_defaults(func=cmd_demo_data)
    p = sub.add_parser("run", help="run the nightly flow once")
    p.add_argument("--inbox", type=Path)
    p.add_argument("--warehouse", type=Path)
    p.add_argument("--as-of", type=_date, help="report date (default: today in Asia/Ho_Chi_Minh)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("serve", help="serve the nightly deployment (02:00 Asia/Ho_Chi_Minh)")
    p.add_argument("--inbox", type=Path)
    p.add_argument("--warehouse", type=Path)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("status", help="last runs, what is published, input freshness, each district's submission state")
    p.add_argument("--warehouse", type=Path)
    p.add_argument("--runs", type=int, default=5, metavar="N", help="how many recent runs to show (default 5)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("rollback", help="put the previous publication back in place (atomically, with its exports)")
    p.add_argument("--warehouse", type=Path)
    p.add_argument("--to", metavar="RUN_ID", help="a kept publication to restore instead of the previous one")
    p.set_defaults(func=cmd_rollback)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


def exit_fast(code: int) -> None:
    """End the process without Python collecting every object a night created, one by one, on
    the way out (~3 s after a night: dbt's manifest, GX, Prefect). Files and connections are
    closed by then and atexit handlers still run; the memory goes back to the OS at once."""
    gc.freeze()
    sys.exit(code)


def entry() -> None:
    """The `ocop` command."""
    exit_fast(main())


if __name__ == "__main__":
    entry()
