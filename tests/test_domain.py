import datetime as dt
import unicodedata

import pytest

from flows import domain


@pytest.mark.parametrize("value, expected", [
    ("3", 3), ("3 sao", 3), ("4*", 4), ("★★★★", 4), (3.0, 3), ("5 SAO", 5), (" 4 ", 4), (None, None), ("", None),
])
def test_parse_stars(value, expected):
    assert domain.parse_stars(value) == expected


@pytest.mark.parametrize("value", ["ba sao", "3.5", "sao"])
def test_parse_stars_rejects(value):
    with pytest.raises(ValueError):
        domain.parse_stars(value)


@pytest.mark.parametrize("value, expected", [
    (dt.date(2024, 3, 22), dt.date(2024, 3, 22)),
    (dt.datetime(2024, 3, 22, 0, 0), dt.date(2024, 3, 22)),
    (45373, dt.date(2024, 3, 22)),          # Excel serial stored as a plain number
    (45373.0, dt.date(2024, 3, 22)),
    ("45373", dt.date(2024, 3, 22)),
    ("22/3/2024", dt.date(2024, 3, 22)),
    ("22-03-2024", dt.date(2024, 3, 22)),
    ("2024-03-22", dt.date(2024, 3, 22)),
    ("05/07/2024", dt.date(2024, 7, 5)),     # day first always
    (None, None),
])
def test_parse_date(value, expected):
    assert domain.parse_date(value) == expected


@pytest.mark.parametrize("value", ["31/02/2024", "hôm qua", "2024/13/45"])
def test_parse_date_rejects_with_reason(value):
    with pytest.raises(ValueError, match="ngày"):
        domain.parse_date(value)


def test_scores_and_bands():
    assert domain.parse_score("62,5") == 62.5
    assert domain.parse_score(71.25) == 71.25
    assert domain.score_fits_stars(3, 50) and domain.score_fits_stars(3, 69.9)
    assert not domain.score_fits_stars(3, 70) and domain.score_fits_stars(4, 70)
    assert not domain.score_fits_stars(4, 91) and domain.score_fits_stars(4, 91, five_star_potential=True)
    assert domain.score_fits_stars(5, 100) and not domain.score_fits_stars(5, 89.5)
    assert domain.stars_for_score(49.9) is None


def test_certificate_expiry_is_36_months():
    assert domain.certificate_expiry(dt.date(2021, 12, 20)) == dt.date(2024, 12, 20)
    assert domain.certificate_expiry(dt.date(2024, 2, 29)) == dt.date(2027, 2, 28)


@pytest.mark.parametrize("value, expected", [
    ("DN", "doanh_nghiep"), ("Cty TNHH", "doanh_nghiep"), ("Công ty TNHH MTV Quế Trà Bồng", "doanh_nghiep"),
    ("HTX", "hop_tac_xa"), ("Hợp tác xã", "hop_tac_xa"), ("THT", "to_hop_tac"), ("HKD", "ho_kinh_doanh"),
    ("Hộ", "ho_kinh_doanh"), ("Cơ sở", "ho_kinh_doanh"), ("hộ kinh doanh", "ho_kinh_doanh"),
])
def test_owner_type_abbreviations(value, expected):
    assert domain.parse_owner_type(value) == expected


@pytest.mark.parametrize("value, expected", [
    ("Thực phẩm", "I"), ("I. Thực phẩm", "I"), ("Đồ uống", "II"), ("Thảo dược", "III"),
    ("Vải và may mặc", "IV"), ("Lưu niệm - nội thất - trang trí", "IV"), ("Dịch vụ du lịch nông thôn", "VI"),
    ("Sinh vật cảnh", "V"),
])
def test_product_groups_2019_map_to_2023(value, expected):
    assert domain.parse_product_group(value) == expected


def test_text_is_nfc_and_matching_is_accent_insensitive():
    nfd = unicodedata.normalize("NFD", "Bình Sơn")
    assert domain.nfc(f"  {nfd}  ") == "Bình Sơn"
    assert domain.fold("BINH SON") == domain.fold(nfd) == domain.fold("huyện Bình Sơn").replace("huyen ", "")


@pytest.mark.parametrize("text, code", [
    ("UBND HUYỆN BÌNH SƠN", {"524"}), ("UBND THÀNH PHỐ QUẢNG NGÃI", {"522"}), ("UBND THỊ XÃ ĐỨC PHỔ", {"534"}),
    ("UBND TỈNH QUẢNG NGÃI", set()), ("UBND HUYỆN TÂY TRÀ", {"525"}),
    (unicodedata.normalize("NFD", "UBND HUYỆN LÝ SƠN"), {"536"}),
])
def test_district_from_title(text, code):
    assert domain.district_from_title(text) == code


@pytest.mark.parametrize("name, code", [
    ("BC OCOP T12-2024 Binh Son", {"524"}), ("OCOP_TraBong_T12_2024", {"525"}),
    ("Bao cao OCOP thang 12.2024 - TP Quang Ngai", {"522"}), ("son tay", {"530"}), ("SON TINH", {"527"}),
])
def test_districts_from_file_names(name, code):
    assert domain.find_districts(name) == code


@pytest.mark.parametrize("text, period", [
    ("Kỳ báo cáo: tháng 12/2024", "2024-12"), ("tháng 6 năm 2024", "2024-06"), ("BC OCOP T12-2024 Binh Son", "2024-12"),
    ("Duc Pho - bao cao OCOP 6-2024", "2024-06"), ("2024-12", "2024-12"), ("OCOP_TraBong_T12_2024", "2024-12"),
    ("Bao cao OCOP", None),
])
def test_find_period(text, period):
    assert domain.find_period(text) == period


def test_flags_and_decisions_and_tax_numbers():
    assert [domain.parse_flag(v) for v in ("Có", "x", "Không", None, "")] == [True, True, False, None, None]
    assert domain.parse_decision_no(" 1425 / QĐ-UBND") == "1425/QĐ-UBND"
    assert domain.parse_tax_number(4300123456.0) == "4300123456"
    assert domain.TAX_NUMBER_RE.match("4300123456-001") and not domain.TAX_NUMBER_RE.match("43001234")


@pytest.mark.parametrize("value, expected", [
    ("22/3/24", dt.date(2024, 3, 22)),                 # two-digit year
    ("22/03/2024 00:00:00", dt.date(2024, 3, 22)),     # a date exported with its time
    ("22.03.2024", dt.date(2024, 3, 22)),
    ("ngày 22 tháng 3 năm 2024", dt.date(2024, 3, 22)),
    (dt.datetime(2024, 3, 22, 10, 30), dt.date(2024, 3, 22)),
    ("  22/3/2024 ", dt.date(2024, 3, 22)),
])
def test_parse_date_more_forms(value, expected):
    assert domain.parse_date(value) == expected


@pytest.mark.parametrize("value, expected", [("***", 3), ("4★", 4), ("★★★☆☆", 3), ("3.0", 3), ("4 *", 4)])
def test_parse_stars_more_forms(value, expected):
    assert domain.parse_stars(value) == expected


@pytest.mark.parametrize("value, expected", [("62,5 điểm", 62.5), (" 62,50 ", 62.5), ("75", 75.0), (50, 50.0)])
def test_parse_score_more_forms(value, expected):
    assert domain.parse_score(value) == expected


@pytest.mark.parametrize("value, expected", [("✓", True), ("✔", True), ("X", True), ("có", True), ("K", False),
                                             ("không", False), (0, False), ("-", None), ("  ", None)])
def test_flags_tick_marks_and_blanks(value, expected):
    assert domain.parse_flag(value) == expected


def test_text_nfc_and_fold_are_stable_under_caching():
    nfd = unicodedata.normalize("NFD", "  Hợp  tác xã ")
    assert domain.nfc(nfd) == "Hợp tác xã" and domain.nfc(nfd) == "Hợp tác xã"
    assert domain.fold(nfd) == "hop tac xa" and domain.fold(12.0) == "12 0" and domain.fold(None) == ""


@pytest.mark.parametrize("text, period", [
    ("Kỳ báo cáo: 12/2024", "2024-12"), ("Kỳ báo cáo: Tháng 12 - 2024", "2024-12"),
    ("ngày 22/12/2024", None),  # a date is not a period
])
def test_find_period_slash_forms(text, period):
    assert domain.find_period(text) == period


def test_district_from_a_town_economic_office_title():
    assert domain.district_from_title("PHÒNG KINH TẾ THỊ XÃ ĐỨC PHỔ") == {"534"}
