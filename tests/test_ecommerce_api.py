"""The platform API -> raw.ecommerce_* : real dlt pipelines, real DuckDB file, real local HTTP server."""
from __future__ import annotations

import json
import logging
import shutil
import urllib.parse
import urllib.request

import pytest

from flows.ecommerce import load_ecommerce
from flows.pipeline import make_pipeline
from flows.platform_server import PlatformServer, completed_revenue, write_jsonl
from flows.sources.ecommerce import ecommerce_api
from tests.test_ecommerce_files import feed, figures, make_settings, query, snapshot

FAST = {"page_size": 50, "backoff_factor": 0.01, "max_retry_delay": 0.05, "max_attempts": 3, "timeout": 2.0}


@pytest.fixture
def platform():
    with PlatformServer(n_listings=30, n_order_lines=400, seed=11) as server:
        yield server


def api_settings(tmp_path, platform, **kw):
    return make_settings(tmp_path, feed_api_url=platform.url, feed_api_token=platform.token, **kw)


def statuses(platform, start=0):
    return [r["status"] for r in platform.requests[start:]]


# ---- the server itself -----------------------------------------------------------------------
def test_platform_server_pages_filters_and_checks_the_token(platform):
    def get(path, token=platform.token):
        req = urllib.request.Request(platform.url + path, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    status, body = get("/api/v1/order-lines?page=2&page_size=100")
    assert status == 200 and body["total"] == 400 and body["total_pages"] == 4 and len(body["data"]) == 100
    assert body["data"][0] == platform.all_order_lines()[100]
    # cursor paging walks everything once
    seen, cursor = [], None
    while True:
        status, body = get("/api/v1/order-lines?page_size=150" + (f"&cursor={cursor}" if cursor else ""))
        seen += body["data"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 400 and len({(r["order_id"], r["line_no"]) for r in seen}) == 400
    since = platform.all_order_lines()[390]["updated_at"]
    status, body = get("/api/v1/order-lines?updated_since=" + urllib.parse.quote(since))
    assert body["total"] == 10  # inclusive
    assert get("/api/v1/listings", token="wrong")[0] == 401
    platform.fail_next(1, 503)
    assert get("/api/v1/listings")[0] == 503
    assert get("/api/v1/listings")[0] == 200


# ---- loads -----------------------------------------------------------------------------------
def test_first_load_then_increment_exact_and_same_window_twice_changes_nothing(tmp_path, platform):
    s = api_settings(tmp_path, platform)
    r1 = load_ecommerce(s, api_options=FAST)
    assert r1.api_status == "ok" and r1.api_error is None
    assert r1.rows_loaded == {"ecommerce_listings": 30, "ecommerce_order_lines": 400}
    assert figures(s) == (400, completed_revenue(platform.all_order_lines()))
    assert query(s, "select count(*) from raw.ecommerce_listings where source = 'api'") == [(30,)]

    # the same window again: the cursor is inclusive, the boundary records are recognised
    before, n = snapshot(s), len(platform.requests)
    r2 = load_ecommerce(s, api_options=FAST)
    assert r2.api_status == "ok" and r2.rows_loaded == {} and r2.quarantined == {}
    assert snapshot(s) == before
    assert statuses(platform, n) == [200, 200]  # one page per endpoint
    assert all("updated_since" in r["params"] for r in platform.requests[n:])

    # an increment: new lines, changed lines (cancelled / returned / qty), a listing change
    lines = platform.all_order_lines()
    for i, rec in enumerate(lines[:25]):
        platform.update_order_line(rec["order_id"], rec["line_no"],
                                   **({"status": "returned"} if i % 2 else {"qty": rec["qty"] + 1}))
    for i in range(20):
        platform.add_order_line(order_id=f"NEW{i:03d}", line_no=1, sku="SKU-00002", qty=1 + i % 4,
                                unit_price_vnd=45_000, discount_vnd=1000 * (i % 2))
    platform.update_listing("L00003", status="delisted")
    r3 = load_ecommerce(s, api_options=FAST)
    assert r3.api_status == "ok"
    assert r3.rows_loaded == {"ecommerce_listings": 1, "ecommerce_order_lines": 45}
    assert figures(s) == (420, completed_revenue(platform.all_order_lines()))
    assert query(s, "select status from raw.ecommerce_listings where listing_id = 'L00003'") == [("delisted",)]
    assert query(s, "select count(*) - count(distinct (order_id, line_no)) from raw.ecommerce_order_lines") == [(0,)]
    # and once more: nothing
    before = snapshot(s)
    assert load_ecommerce(s, api_options=FAST).rows_loaded == {}
    assert snapshot(s) == before


def test_5xx_then_success_is_retried(tmp_path, platform):
    s = api_settings(tmp_path, platform)
    platform.fail_next(2, 500)
    r = load_ecommerce(s, api_options=FAST)
    assert r.api_status == "ok"
    assert statuses(platform)[:3] == [500, 500, 200]
    assert figures(s) == (400, completed_revenue(platform.all_order_lines()))


def test_timeout_then_success_is_retried(tmp_path, platform):
    s = api_settings(tmp_path, platform)
    platform.delay_next(1, 1.0)
    r = load_ecommerce(s, api_options=FAST | {"timeout": 0.3})
    assert r.api_status == "ok"
    assert figures(s) == (400, completed_revenue(platform.all_order_lines()))


def test_5xx_that_persists_stops_the_api_only(tmp_path, platform):
    s = api_settings(tmp_path, platform)
    platform.fail_next(3, 503)  # = max_attempts
    r = load_ecommerce(s, api_options=FAST)
    assert r.api_status == "unavailable"
    assert "HTTP 503" in r.api_error and "Không đọc được" in r.api_error and "Could not read" in r.api_error
    assert not make_pipeline(s).has_pending_data
    # the next night reads everything (the cursor did not move)
    r = load_ecommerce(s, api_options=FAST)
    assert r.api_status == "ok" and figures(s) == (400, completed_revenue(platform.all_order_lines()))


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_gives_a_clear_message_and_files_still_load(tmp_path, platform, status, caplog):
    s = api_settings(tmp_path, platform)
    write_jsonl(feed(s) / "listings.jsonl", platform.all_listings())
    platform.force_status(status)
    caplog.set_level(logging.DEBUG)
    r = load_ecommerce(s, api_options=FAST)
    assert r.files_loaded == ["listings.jsonl"] and r.rows_loaded == {"ecommerce_listings": 30, "ecommerce_files": 1}
    assert r.api_status == "auth_failed"
    assert f"HTTP {status}" in r.api_error
    assert "từ chối xác thực" in r.api_error and "rejected the credentials" in r.api_error
    assert statuses(platform) == [status]  # not retried
    assert platform.token not in r.api_error and platform.token not in caplog.text
    assert not make_pipeline(s).has_pending_data

    platform.force_status(None)
    r = load_ecommerce(s, api_options=FAST)
    assert r.api_status == "ok" and figures(s) == (400, completed_revenue(platform.all_order_lines()))
    assert platform.token not in caplog.text


def test_wrong_token_is_401(tmp_path, platform):
    s = make_settings(tmp_path, feed_api_url=platform.url, feed_api_token="not-the-token")
    r = load_ecommerce(s, api_options=FAST)
    assert r.api_status == "auth_failed" and "HTTP 401" in r.api_error and "not-the-token" not in r.api_error


def test_bad_api_records_are_quarantined_once(tmp_path, platform):
    s = api_settings(tmp_path, platform)
    load_ecommerce(s, api_options=FAST)
    platform.add_order_line(order_id="NEG", line_no=1, sku="SKU-00001", qty=-2, unit_price_vnd=10_000)
    platform.add_order_line(order_id="ODD", line_no=1, sku="SKU-00001", qty=1, unit_price_vnd=10_000, status="lost")
    platform.add_order_line(order_id="UNK", line_no=1, sku="SKU-UNKNOWN", qty=1, unit_price_vnd=10_000)
    platform.add_raw("order-lines", {"line_no": 1, "sku": "SKU-00001", "qty": 1, "status": "completed",
                                     "updated_at": platform.tick()})
    r = load_ecommerce(s, api_options=FAST)
    assert r.api_status == "ok"
    assert r.quarantined == {"negative_qty": 1, "unknown_status": 1, "unknown_sku": 1, "missing_key": 1}
    assert r.warnings == {"unknown_sku": 1}
    assert query(s, "select order_id from raw.ecommerce_order_lines where order_id in ('NEG','ODD','UNK')") == [("UNK",)]
    rows = query(s, "select source, kind, line_number, reason, raw_text from raw.ecommerce_quarantine order by reason")
    assert {(x[0], x[1], x[2]) for x in rows} == {("api", "order_lines", None)}
    assert [x[3] for x in rows] == ["missing_key", "negative_qty", "unknown_sku", "unknown_status"]
    assert json.loads(rows[1][4])["order_id"] == "NEG"
    # the same window again does not quarantine them again
    before = snapshot(s)
    r = load_ecommerce(s, api_options=FAST)
    assert r.quarantined == {} and snapshot(s) == before
    loaded = [r for r in platform.all_order_lines() if r.get("order_id") and r["order_id"] not in ("NEG", "ODD")]
    assert figures(s) == (401, completed_revenue(loaded))


def test_an_older_file_after_the_api_does_not_win(tmp_path, platform):
    s = api_settings(tmp_path, platform)
    old = platform.all_order_lines()[:5]
    for rec in old:
        platform.update_order_line(rec["order_id"], rec["line_no"], status="cancelled")
    load_ecommerce(s, api_options=FAST)
    cancelled = figures(s)
    write_jsonl(feed(s) / "orders_late_export.jsonl", old)  # the old 'completed' versions, dropped late
    r = load_ecommerce(s, api_options=FAST)
    assert r.files_loaded == ["orders_late_export.jsonl"]
    assert "ecommerce_order_lines" not in r.rows_loaded
    assert figures(s) == cancelled == (400, completed_revenue(platform.all_order_lines()))
    assert query(s, "select rows_valid, rows_stale from raw.ecommerce_files") == [(5, 5)]


def test_source_reads_base_url_and_token_from_dlt_config(tmp_path, platform, monkeypatch):
    """`ecommerce_api()` without arguments: [sources.ecommerce_api] from config/secrets (here the
    environment form); load_ecommerce falls back to the same keys when Settings has no URL."""
    monkeypatch.setenv("SOURCES__ECOMMERCE_API__BASE_URL", platform.url)
    monkeypatch.setenv("SOURCES__ECOMMERCE_API__TOKEN", platform.token)
    monkeypatch.setenv("SOURCES__ECOMMERCE_API__PAGE_SIZE", "70")
    s = make_settings(tmp_path)
    pipeline = make_pipeline(s, name="ecommerce_config_test")
    info = pipeline.run(ecommerce_api(backoff_factor=0.01), loader_file_format="parquet")
    assert not info.has_failed_jobs
    assert figures(s) == (400, completed_revenue(platform.all_order_lines()))
    assert {r["params"]["page_size"] for r in platform.requests} == {"70"}

    r = load_ecommerce(make_settings(tmp_path / "b"), api_options={"backoff_factor": 0.01})
    assert r.api_status == "ok" and r.rows_loaded["ecommerce_order_lines"] == 400


def test_cursor_state_survives_in_the_destination(tmp_path, platform):
    """The cursor is dlt state: a lost local pipeline folder is restored from the warehouse."""
    s = api_settings(tmp_path, platform)
    load_ecommerce(s, api_options=FAST)
    shutil.rmtree(s.dlt_dir)
    n = len(platform.requests)
    pipeline = make_pipeline(s)
    pipeline.sync_destination()
    r = load_ecommerce(s, pipeline=pipeline, api_options=FAST)
    assert r.rows_loaded == {} and statuses(platform, n) == [200, 200]


def test_the_token_is_never_written_to_disk(tmp_path, platform, monkeypatch):
    """Neither the dlt pipeline folder (state, traces, packages) nor the warehouse holds the token,
    whether it came from Settings or from dlt secrets (here their environment form)."""
    s = api_settings(tmp_path / "a", platform)
    load_ecommerce(s, api_options=FAST)
    platform.force_status(401)
    load_ecommerce(s, api_options=FAST)
    platform.force_status(None)
    monkeypatch.setenv("SOURCES__ECOMMERCE_API__BASE_URL", platform.url)
    monkeypatch.setenv("SOURCES__ECOMMERCE_API__TOKEN", platform.token)
    load_ecommerce(make_settings(tmp_path / "b"), api_options=FAST)
    secret = platform.token.encode()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path


def test_url_without_token_is_reported_not_sent(tmp_path, platform):
    s = make_settings(tmp_path, feed_api_url=platform.url)
    r = load_ecommerce(s, api_options=FAST)
    assert r.api_status == "auth_failed"
    assert "Chưa cấu hình token" in r.api_error and "No API token is configured" in r.api_error
    assert platform.requests == []
