"""The demo inbox generator (flows/demo_data.py): deterministic, complete, and, read back from the
files it writes, saying exactly the figures the province reported (DESIGN.md).

The workbook read-back here is deliberately independent of flows/workbook.py: a small reader
that knows only the header aliases and the value spellings the generator is allowed to use.
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import openpyxl
import pytest

from helpers import DESIGN_FIGURES

from flows import demo_data
from flows.demo_data import expected_figures, write_demo_inbox

REPO = Path(__file__).resolve().parent.parent
AS_OF = dt.date(2024, 12, 20)
ORDER_FIELDS = {"order_id", "line_no", "ordered_at", "sku", "qty", "unit_price_vnd", "discount_vnd", "channel",
                "status", "buyer_province", "updated_at"}
LISTING_FIELDS = {"listing_id", "sku", "ma_san_pham", "title", "price_vnd", "status", "listed_at", "updated_at"}
REQUIRED = {"ma_san_pham", "ten_san_pham", "hang_sao", "diem", "ngay_cong_nhan", "ten_chu_the", "loai_hinh_chu_the"}


# ------------------------------------------------------------------------------------------------
# helpers: folding, reference data, a minimal workbook reader
# ------------------------------------------------------------------------------------------------


def fold(value) -> str:
    text = unicodedata.normalize("NFD", "" if value is None else str(value))
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn").replace("đ", "d").replace("Đ", "D")
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).strip()


def read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


HEADER_ALIASES: dict[str, dict[str, str]] = {}
for _r in read_csv(REPO / "flows/reference/header_aliases.csv"):
    HEADER_ALIASES.setdefault(_r["sheet"], {})[fold(_r["alias"])] = _r["canonical"]
OWNER_TYPES = {fold(r["alias"]): r["owner_type"] for r in read_csv(REPO / "dbt_project/seeds/owner_type_aliases.csv")}
GROUPS = {fold(r["alias"]): r["group_code"] for r in read_csv(REPO / "dbt_project/seeds/product_group_aliases.csv")}
DISTRICT_ALIASES = [(fold(r["alias"]), r["district_code"])
                    for r in read_csv(REPO / "dbt_project/seeds/district_aliases.csv")]
DISTRICTS = {r["district_code"]: r for r in read_csv(REPO / "dbt_project/seeds/districts.csv")}


def parse_stars(v) -> int:
    if isinstance(v, int):
        return v
    if set(v) == {"★"}:
        return len(v)
    m = re.fullmatch(r"(\d)\s*(\*|sao)?", v.strip())
    assert m, v
    return int(m.group(1))


def parse_score(v) -> float:
    if isinstance(v, (int, float)):
        return float(v)
    assert re.fullmatch(r"\d+(,\d+)?", v), v
    return float(v.replace(",", "."))


def parse_date(v) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, int):
        return dt.date(1899, 12, 30) + dt.timedelta(days=v)
    m = re.fullmatch(r"(\d{1,2})[/-](\d{1,2})[/-](\d{4})", v)
    if m:
        d, mo, y = map(int, m.groups())
        return dt.date(y, mo, d)
    return dt.date.fromisoformat(v)


def parse_flag(v) -> bool:
    return fold(v) in ("co", "x")


def read_sheet(ws, kind: str):
    """{titles, columns, extras, headers, rows} or None when the sheet is not of that kind."""
    aliases = HEADER_ALIASES[kind]
    key = "ten_san_pham" if kind == "products" else "ten_diem_ban"
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    for i, cells in enumerate(rows[:12]):
        mapped = {c: aliases[fold(v)] for c, v in enumerate(cells) if v is not None and fold(v) in aliases}
        if key in mapped.values() and len(mapped) >= 3:
            assert len(set(mapped.values())) == len(mapped), f"{ws.title}: duplicate canonical column"
            extras = [v for c, v in enumerate(cells) if v is not None and c not in mapped]
            data = []
            for row in rows[i + 1:]:
                if not isinstance(row[0], int):  # data rows start with their STT number
                    break
                data.append({canonical: row[c] for c, canonical in mapped.items()})
            titles = [" ".join(str(v) for v in r if v is not None) for r in rows[:i]]
            headers = tuple(str(v) for v in cells if v is not None)
            return {"titles": titles, "columns": set(mapped.values()), "extras": extras, "headers": headers,
                    "rows": data}
    return None


def read_workbook(path: Path) -> dict:
    wb = openpyxl.load_workbook(path)
    products = sales = None
    for ws in wb.worksheets:
        if products is None:
            products = read_sheet(ws, "products")
            if products is not None:
                products_sheet = ws.title
                continue
        if sales is None:
            sales = read_sheet(ws, "sales_points")
    assert products is not None, f"{path.name}: no products sheet"
    return {"sheets": wb.sheetnames, "products_sheet": products_sheet, "products": products, "sales": sales}


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    inbox = tmp_path_factory.mktemp("demo") / "inbox"
    summary = write_demo_inbox(inbox)
    return inbox, summary


@pytest.fixture(scope="module")
def workbooks(demo) -> dict[tuple[str, str], dict]:
    inbox, summary = demo
    out = {}
    for rel, info in summary["workbooks"].items():
        out[(info["district_code"], info["period"])] = dict(read_workbook(inbox / rel), file=Path(rel))
    return out


def order_files(inbox: Path) -> list[Path]:
    pattern = r"orders-\d{4}-\d{2}\.(csv|jsonl\.gz)"
    return sorted(p for p in (inbox / "ecommerce").iterdir() if re.fullmatch(pattern, p.name))


def read_catalogue(inbox: Path) -> list[dict]:
    text = (inbox / "ecommerce" / demo_data.CATALOGUE_FILE).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines()]


def read_order_file(path: Path) -> list[dict]:
    if path.name.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]
    if path.name.endswith(".csv"):
        with open(path, encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def ts(text: str) -> dt.datetime:
    assert text.endswith("+07:00"), text
    return dt.datetime.fromisoformat(text)


# ------------------------------------------------------------------------------------------------
# determinism and the figures
# ------------------------------------------------------------------------------------------------


def test_two_runs_write_identical_bytes(demo, tmp_path):
    inbox, summary = demo
    again = tmp_path / "again"
    write_demo_inbox(again)
    first = sorted(p.relative_to(inbox) for p in inbox.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second
    assert sorted(Path(f) for f in summary["files"]) == first
    for rel in first:
        assert (inbox / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_expected_figures_are_the_reported_figures(demo):
    assert expected_figures(AS_OF) == DESIGN_FIGURES
    assert demo[1]["expected_figures"] == DESIGN_FIGURES


def test_expected_figures_follow_the_as_of_date():
    later = expected_figures(dt.date(2024, 12, 31))
    # recognised 2024-12-23..30 become valid; the five certificates of 2021-12-21..29 expire
    assert later["valid_products"] == 191 + 3 - 5
    assert later["sales_points"] == 14 and later["sales_points_private"] == 8
    earlier = expected_figures(dt.date(2024, 6, 30))
    assert earlier["valid_products"] < 191 and earlier["valid_products_4_star"] < 17
    assert earlier["sales_points"] == 11  # opened by then: the later three (2024-08, 2024-09, 2024-12-28) not yet


def test_generation_refuses_a_model_that_misses_the_figures():
    model = demo_data.build_model()
    demo_data.check_model(model)  # the real model passes
    upgraded = next(p for p in model.products if p.role == "up")
    upgraded.certs.pop()  # lose the 4-star upgrade certificate
    with pytest.raises(AssertionError):
        demo_data.check_model(model)


# ------------------------------------------------------------------------------------------------
# district workbooks
# ------------------------------------------------------------------------------------------------


def test_26_workbooks_two_per_district_named_like_the_districts_do(demo):
    inbox, summary = demo
    files = sorted((inbox / "districts").rglob("*.xlsx"))
    assert len(files) == 26 and summary["district_workbooks"] == 26
    assert {p.parent.name for p in files} == {"2024-06", "2024-12"}
    seen = Counter()
    for rel, info in summary["workbooks"].items():
        name = Path(rel).stem
        assert name.isascii(), name
        folded = fold(name)
        squashed = folded.replace(" ", "")
        named = {code for alias, code in DISTRICT_ALIASES
                 if re.search(rf"(?<![0-9a-z]){re.escape(alias)}(?![0-9a-z])", folded)}
        if not named:  # CamelCase: 'OCOP_TraBong_T12_2024'
            named = {code for alias, code in DISTRICT_ALIASES if alias.replace(" ", "") in squashed}
        assert named == {info["district_code"]}, (name, named)
        if "quang ngai" in folded:
            assert "tp quang ngai" in folded, name
        month = str(int(info["period"][5:]))
        assert re.search(rf"(?<!\d)0?{month}(?!\d)", name) and "2024" in name, name
        assert Path(rel).parent.name == info["period"]
        seen[info["district_code"]] += 1
    assert seen == {code: 2 for code in DISTRICTS}


def test_workbook_layout_headers_and_title_block(workbooks):
    for (district, period), wb in workbooks.items():
        titles, columns, extras, rows = (wb["products"][k] for k in ("titles", "columns", "extras", "rows"))
        assert REQUIRED <= columns, (wb["file"], REQUIRED - columns)
        assert extras in ([], ["Số điện thoại"]), (wb["file"], extras)
        assert 4 <= len(titles) <= 7, wb["file"]
        unit = fold(titles[0])
        assert unit.startswith("ubnd ") and fold(DISTRICTS[district]["district_name"]) in unit, titles[0]
        assert "cong hoa xa hoi chu nghia viet nam" in unit
        month = int(period[5:])
        assert any(re.search(rf"ky bao cao thang 0?{month} 2024", fold(t)) for t in titles), titles
        assert rows and all(isinstance(r["ma_san_pham"], str) for r in rows), wb["file"]
    instructions = [k for k, wb in workbooks.items() if wb["sheets"][0] == "Huong dan"]
    assert 1 <= len(instructions) <= 2
    without_sales = [k for k, wb in workbooks.items() if wb["sales"] is None]
    assert without_sales == [("533", "2024-12")]
    no_expiry_column = {d for (d, _), wb in workbooks.items() if "ngay_het_han" not in wb["products"]["columns"]}
    assert len(no_expiry_column) == 1  # expiry = recognition + 36 months there
    assert len({wb["products"]["headers"] for wb in workbooks.values()}) == 13  # every district its own form
    assert len({frozenset(wb["products"]["columns"]) for wb in workbooks.values()}) >= 3


def test_workbook_values_are_clean_submissions(workbooks):
    """No error-level problem: the rules the quality gate rejects on."""
    codes_by_district: dict[str, set[str]] = {}
    for (district, period), wb in workbooks.items():
        columns, rows = wb["products"]["columns"], wb["products"]["rows"]
        end = demo_data.PERIOD_END[period]
        codes = [r["ma_san_pham"].strip() for r in rows]
        assert len(codes) == len(set(codes)), wb["file"]
        assert all(re.fullmatch(rf"QNg-{district}-\d{{3}}", c) for c in codes), wb["file"]
        codes_by_district.setdefault(district, set()).update(codes)
        owner_types: dict[str, set[str]] = {}
        for r in rows:
            stars, score = parse_stars(r["hang_sao"]), parse_score(r["diem"])
            potential = parse_flag(r.get("tiem_nang_5_sao"))
            assert stars in (3, 4), r
            assert (50 <= score < 70 if stars == 3 else 70 <= score < 90) or (potential and 90 <= score <= 100), r
            recognised = parse_date(r["ngay_cong_nhan"])
            assert dt.date(2019, 1, 1) <= recognised <= end, r
            if "ngay_het_han" in columns:
                assert parse_date(r["ngay_het_han"]) == demo_data.add_months(recognised, 36), r
            tax = r.get("ma_so_thue")
            if tax is not None:
                assert re.fullmatch(r"43\d{8}(-\d{3})?", str(tax)), r
            kind = OWNER_TYPES[fold(r["loai_hinh_chu_the"])]
            owner_types.setdefault(str(tax) if tax else fold(r["ten_chu_the"]), set()).add(kind)
            if "nhom_san_pham" in columns:
                assert fold(r["nhom_san_pham"]) in GROUPS, r
            if "cap_cong_nhan" in columns:
                assert fold(r["cap_cong_nhan"]) == ("huyen" if stars == 3 else "tinh"), r
        assert all(len(kinds) == 1 for kinds in owner_types.values()), wb["file"]
    all_codes = [c for codes in codes_by_district.values() for c in codes]
    assert len(all_codes) == len(set(all_codes))  # never shared by two districts


def test_workbooks_read_back_give_the_reported_figures(demo, workbooks):
    """Accumulate certificates over both periods, owners and flags from the newest workbook."""
    inbox, _ = demo
    certs: dict[tuple[str, dt.date], int] = {}
    in_use: dict[str, tuple[str, dict]] = {}
    for period in ("2024-06", "2024-12"):
        for (district, p), wb in sorted(workbooks.items()):
            if p != period:
                continue
            for r in wb["products"]["rows"]:
                code = r["ma_san_pham"].strip()
                certs[(code, parse_date(r["ngay_cong_nhan"]))] = parse_stars(r["hang_sao"])
                if period == "2024-12":
                    in_use[code] = (district, r)
    newest: dict[str, tuple[dt.date, int]] = {}
    for (code, recognised), stars in certs.items():
        if recognised <= AS_OF < demo_data.add_months(recognised, 36):
            if code not in newest or recognised > newest[code][0]:
                newest[code] = (recognised, stars)
    owners = {}
    for code in newest:
        district, r = in_use[code]
        tax = r.get("ma_so_thue")
        owners[str(tax) if tax else (district, fold(r["ten_chu_the"]))] = OWNER_TYPES[fold(r["loai_hinh_chu_the"])]
    listings = read_catalogue(inbox)
    live = {l["ma_san_pham"] for l in listings
            if l["status"] != "draft" and ts(l["listed_at"]).date() <= AS_OF
            and not (l["status"] == "delisted" and ts(l["updated_at"]).date() <= AS_OF)}
    points = []
    for district in DISTRICTS:
        wb = workbooks[(district, "2024-12")]
        if wb["sales"] is None:
            wb = workbooks[(district, "2024-06")]
        points += [fold(r["hinh_thuc"]) for r in wb["sales"]["rows"] if parse_date(r["ngay_hoat_dong"]) <= AS_OF]
    stars = Counter(s for _, s in newest.values())
    kinds = Counter(owners.values())
    got = {
        "valid_products": len(newest),
        "valid_products_3_star": stars[3],
        "valid_products_4_star": stars[4],
        "valid_products_5_star": stars[5],
        "districts_with_products": len({in_use[c][0] for c in newest}),
        "owners": len(owners),
        "owners_enterprise": kinds["doanh_nghiep"],
        "owners_cooperative": kinds["hop_tac_xa"],
        "owners_cooperative_group": kinds["to_hop_tac"],
        "owners_household": kinds["ho_kinh_doanh"],
        "products_on_ecommerce": len(live & set(newest)),
        "sales_points": len(points),
        "sales_points_state_supported": sum(1 for p in points if p == "nha nuoc ho tro"),
        "sales_points_private": sum(1 for p in points if p == "xa hoi hoa"),
    }
    assert got == DESIGN_FIGURES


def test_history_is_built_in(workbooks):
    """Upgrades and renewals change certificate between the periods; expired and future rows exist."""
    def certs(period):
        return {r["ma_san_pham"].strip():
                (parse_date(r["ngay_cong_nhan"]), parse_stars(r["hang_sao"]), fold(r.get("hinh_thuc")))
                for (d, p), wb in workbooks.items() if p == period for r in wb["products"]["rows"]}
    june, december = certs("2024-06"), certs("2024-12")
    upgrades = [c for c in june if june[c][1] == 3 and december[c][1] == 4]
    renewals = [c for c in june if december[c][2] == "cong nhan lai" and december[c][0] > june[c][0]]
    assert len(upgrades) == 5 and all(december[c][2] == "nang hang" for c in upgrades)
    assert 3 <= len(renewals) <= 5
    expired = [c for c, (rec, _, _) in december.items() if demo_data.add_months(rec, 36) <= AS_OF]
    future = [c for c, (rec, _, _) in december.items() if rec > AS_OF]
    assert 18 <= len(expired) <= 22 and 2 <= len(future) <= 3
    assert set(june) <= set(december)


# ------------------------------------------------------------------------------------------------
# e-commerce feeds
# ------------------------------------------------------------------------------------------------


def test_catalogue_parses_and_has_listings_that_must_not_count(demo):
    inbox, _ = demo
    listings = read_catalogue(inbox)
    assert all(set(l) == LISTING_FIELDS for l in listings)
    assert len({l["listing_id"] for l in listings}) == len(listings)
    assert len({l["sku"] for l in listings}) == len(listings)
    assert all(re.fullmatch(r"L\d{6}", l["listing_id"]) and l["sku"].startswith(f"SKU-{l['ma_san_pham']}-")
               for l in listings)
    assert all(isinstance(l["price_vnd"], int) and l["price_vnd"] > 0 for l in listings)
    assert all(ts(l["listed_at"]) <= ts(l["updated_at"]) for l in listings)
    statuses = Counter(l["status"] for l in listings)
    assert set(statuses) == {"active", "delisted", "draft"}
    assert any(ts(l["listed_at"]).date() > AS_OF for l in listings)
    assert any(l["status"] == "delisted" and ts(l["updated_at"]).date() <= AS_OF for l in listings)
    assert Counter(l["ma_san_pham"] for l in listings).most_common(1)[0][1] >= 2


def test_order_files_have_the_contract_fields(demo):
    inbox, summary = demo
    files = order_files(inbox)
    months = [re.search(r"\d{4}-\d{2}", p.name).group(0) for p in files]
    assert months == sorted({f"{y}-{m:02d}" for y in (2023, 2024) for m in range(1, 13)})
    assert 1 <= sum(p.suffix == ".csv" for p in files) <= 4
    for p in files:
        if p.name.endswith(".gz"):
            assert p.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0
    catalogue = {l["sku"] for l in read_catalogue(inbox)}
    total, unknown, by_month = 0, 0, Counter()
    keys = set()
    for path, month in zip(files, months):
        for line in read_order_file(path):
            assert set(line) == ORDER_FIELDS, path.name
            ordered = ts(line["ordered_at"])
            assert f"{ordered:%Y-%m}" == month and ordered.date() <= AS_OF
            assert ts(line["updated_at"]) >= ordered
            assert re.fullmatch(rf"DH{ordered:%y%m%d}\d{{4}}", line["order_id"])
            assert 1 <= int(line["qty"]) <= 5 and int(line["line_no"]) >= 1
            price, qty = int(line["unit_price_vnd"]), int(line["qty"])
            assert price > 0 and 0 <= int(line["discount_vnd"]) < qty * price
            assert line["channel"] in ("web", "app", "livestream")
            assert line["status"] in ("completed", "cancelled", "returned")
            assert line["buyer_province"]
            key = (line["order_id"], int(line["line_no"]))
            assert key not in keys
            keys.add(key)
            total += 1
            unknown += line["sku"] not in catalogue
            by_month[month] += 1
    assert total == summary["order_lines"] and 25_000 <= total <= 40_000
    assert 0.002 <= unknown / total <= 0.01
    typical = sorted(by_month.values())[len(by_month) // 2]
    assert by_month["2024-01"] > 1.4 * typical and by_month["2023-01"] > 1.2 * typical  # Tết


def test_updates_resend_existing_lines_with_a_newer_version(demo):
    inbox, _ = demo
    originals = {(l["order_id"], int(l["line_no"])): l for p in order_files(inbox) for l in read_order_file(p)}
    updates = read_order_file(inbox / "ecommerce" / demo_data.UPDATES_FILE)
    assert 150 <= len(updates) <= 250
    assert len({(u["order_id"], u["line_no"]) for u in updates}) == len(updates)
    for u in updates:
        assert set(u) == ORDER_FIELDS
        old = originals[(u["order_id"], u["line_no"])]
        assert ts(u["updated_at"]) > ts(old["updated_at"])
        assert u["status"] in ("cancelled", "returned") and old["status"] == "completed"
        assert u["sku"] == old["sku"] and int(u["qty"]) == int(old["qty"]) and u["ordered_at"] == old["ordered_at"]
