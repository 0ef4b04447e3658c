"""Deterministic demo inbox: the 13 districts' OCOP workbooks and the e-commerce platform's feeds.

`write_demo_inbox(inbox)` writes

- `districts/2024-06/*.xlsx` and `districts/2024-12/*.xlsx`: one workbook per district-level unit
  and period, laid out and spelled the way each district really fills its form (title block,
  one header row with that district's header aliases, data rows, totals row, signatures);
- `ecommerce/listings-2024-12-20.jsonl`: the platform catalogue;
- `ecommerce/orders-YYYY-MM.jsonl.gz` (a few months as `orders-YYYY-MM.csv`): order lines
  2023-01-01 .. 2024-12-20;
- `ecommerce/orders-updates-2024-12-20.jsonl`: order lines re-sent later (cancelled/returned).

Everything is derived from one internal model (`build_model`) drawn from `random.Random(SEED)`
with fixed dates, so two runs give byte-identical files. `expected_figures(as_of)` computes the
KPI figures from the rows as written (certificates accumulated over both periods, owners and
flags from the newest submission, catalogue listings, sales points from the newest submission
that has a sales-points sheet). For 2024-12-20 they are the figures the province reported
(DESIGN.md), and generation asserts that.

Module layout: reference tables (districts, owners, products, sales points, per-district
layouts) at the top, then the model, then the figures, then the writers.
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import random
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter

from flows.domain import add_months

SEED = 20241220
AS_OF = dt.date(2024, 12, 20)
PERIODS = ("2024-06", "2024-12")
PERIOD_END = {"2024-06": dt.date(2024, 6, 30), "2024-12": dt.date(2024, 12, 31)}
TZ = dt.timezone(dt.timedelta(hours=7))
ORDERS_FROM = dt.date(2023, 1, 1)
ORDERS_TO = AS_OF
CSV_ORDER_MONTHS = frozenset({"2023-04", "2023-10", "2024-03"})
CATALOGUE_FILE = "listings-2024-12-20.jsonl"
UPDATES_FILE = "orders-updates-2024-12-20.jsonl"
# xlsx core properties and zip entry times: fixed, so the bytes never depend on the clock
WORKBOOK_CREATED = dt.datetime(2024, 1, 2, 8, 0, 0)
WORKBOOK_MODIFIED = {"2024-06": dt.datetime(2024, 6, 30, 9, 0, 0), "2024-12": dt.datetime(2024, 12, 20, 9, 0, 0)}
ZIP_TIME = (2024, 12, 20, 0, 0, 0)

# What the province reported for 2024-12-20 (DESIGN.md); the demo must reproduce it exactly.
REPORTED_FIGURES = {
    "valid_products": 191,
    "valid_products_3_star": 174,
    "valid_products_4_star": 17,
    "valid_products_5_star": 0,
    "districts_with_products": 13,
    "owners": 120,
    "owners_enterprise": 19,
    "owners_cooperative": 34,
    "owners_cooperative_group": 0,
    "owners_household": 67,
    "products_on_ecommerce": 130,
    "sales_points": 13,
    "sales_points_state_supported": 6,
    "sales_points_private": 7,
}

# ================================================================================================
# Reference tables
# ================================================================================================

# code -> (name, "UBND ..." title line, office line, place name for "…, ngày … tháng …")
DISTRICTS: dict[str, tuple[str, str, str]] = {
    "522": ("Quảng Ngãi", "UBND THÀNH PHỐ QUẢNG NGÃI", "PHÒNG KINH TẾ"),
    "524": ("Bình Sơn", "UBND HUYỆN BÌNH SƠN", "PHÒNG NÔNG NGHIỆP VÀ PTNT"),
    "525": ("Trà Bồng", "UBND HUYỆN TRÀ BỒNG", "PHÒNG NÔNG NGHIỆP VÀ PTNT"),
    "527": ("Sơn Tịnh", "UBND HUYỆN SƠN TỊNH", "PHÒNG NÔNG NGHIỆP VÀ PTNT"),
    "528": ("Tư Nghĩa", "UBND HUYỆN TƯ NGHĨA", "PHÒNG NÔNG NGHIỆP VÀ PTNT"),
    "529": ("Sơn Hà", "UBND HUYỆN SƠN HÀ", "PHÒNG NÔNG NGHIỆP VÀ PTNT"),
    "530": ("Sơn Tây", "UBND HUYỆN SƠN TÂY", "PHÒNG NÔNG NGHIỆP VÀ PTNT"),
    "531": ("Minh Long", "UBND HUYỆN MINH LONG", "PHÒNG NÔNG NGHIỆP VÀ PTNT"),
    "532": ("Nghĩa Hành", "UBND HUYỆN NGHĨA HÀNH", "PHÒNG NÔNG NGHIỆP VÀ PTNT"),
    "533": ("Mộ Đức", "UBND HUYỆN MỘ ĐỨC", "PHÒNG NÔNG NGHIỆP VÀ PTNT"),
    "534": ("Đức Phổ", "UBND THỊ XÃ ĐỨC PHỔ", "PHÒNG KINH TẾ"),
    "535": ("Ba Tơ", "UBND HUYỆN BA TƠ", "PHÒNG NÔNG NGHIỆP VÀ PTNT"),
    "536": ("Lý Sơn", "UBND HUYỆN LÝ SƠN", "PHÒNG NÔNG NGHIỆP VÀ PTNT"),
}

OWNER_KINDS = {"DN": "doanh_nghiep", "HTX": "hop_tac_xa", "THT": "to_hop_tac", "HKD": "ho_kinh_doanh"}

# Owners per district: (key, kind, name, tax number?, commune). tax: True = own 10-digit number,
# False = none (identified by name), "branch:<key>" = a branch "<that owner's number>-001".
OWNERS: dict[str, list[tuple[str, str, str, bool | str, str]]] = {
    "522": [
        ("tp1", "DN", "Công ty TNHH Thực phẩm Thiên Hương", True, "Nghĩa Chánh"),
        ("tp2", "DN", "Công ty TNHH Yến sào Hoàng Long", True, "Trần Phú"),
        ("tp3", "DN", "Công ty TNHH MTV Nông sản Sông Trà", True, "Lê Hồng Phong"),
        ("tp4", "DN", "Công ty Cổ phần Thủy sản Tịnh Kỳ", True, "Tịnh Kỳ"),
        ("tp5", "HTX", "HTX Nông nghiệp Nghĩa Hà", True, "Nghĩa Hà"),
        ("tp6", "HKD", "Hộ kinh doanh Nguyễn Thị Lan", False, "Tịnh Ấn Tây"),
        ("tp7", "HKD", "Cơ sở nước mắm Kim Thành", True, "Tịnh Khê"),
        ("tp8", "HKD", "Hộ kinh doanh Trần Văn Hùng", False, "Chánh Lộ"),
        ("tp9", "HKD", "Cơ sở sản xuất bánh tráng Nghĩa Dõng", False, "Nghĩa Dõng"),
        ("tp10", "HKD", "Hộ kinh doanh Lê Thị Thu Hà", True, "Nghĩa Lộ"),
        ("tp11", "HKD", "Cơ sở cà phê Phúc An", True, "Trương Quang Trọng"),
        ("tp12", "HKD", "Hộ kinh doanh Phạm Văn Thọ", False, "Nghĩa Phú"),
        ("tp0", "DN", "Công ty TNHH Thương mại Dịch vụ Phú Lộc", True, "Nghĩa Lộ"),
    ],
    "524": [
        ("bs1", "DN", "Công ty TNHH Nông sản Dung Quất", True, "Bình Trị"),
        ("bs2", "DN", "Công ty Cổ phần Thực phẩm Bình Châu", True, "Bình Châu"),
        ("bs3", "DN", "Doanh nghiệp tư nhân Hương Quê", True, "Châu Ổ"),
        ("bs4", "HTX", "HTX Nông nghiệp Bình Trị", True, "Bình Trị"),
        ("bs5", "HTX", "HTX Dịch vụ nông nghiệp Bình Minh", True, "Bình Minh"),
        ("bs6", "HTX", "HTX Dịch vụ thủy sản Sa Kỳ", True, "Bình Châu"),
        ("bs7", "HKD", "Hộ kinh doanh Trần Thị Hoa", False, "Bình Long"),
        ("bs8", "HKD", "Cơ sở sản xuất nước mắm Bình Thạnh", True, "Bình Thạnh"),
        ("bs9", "HKD", "Hộ kinh doanh Võ Văn Tám", False, "Bình An"),
        ("bs10", "HKD", "Hộ kinh doanh Nguyễn Văn Ba", False, "Bình Đông"),
        ("bs11", "HKD", "Cơ sở bánh kẹo Châu Ổ", True, "Châu Ổ"),
        ("bs12", "HKD", "Hộ kinh doanh Phan Thị Mỹ", False, "Châu Ổ"),
        ("bs13", "HKD", "Cơ sở sản xuất chổi đót Bình An", False, "Bình An"),
        ("bs14", "HKD", "Hộ kinh doanh Huỳnh Văn Lộc", True, "Bình Khương"),
    ],
    "525": [
        ("tb1", "DN", "Công ty Cổ phần Tinh dầu quế Trà Bồng", True, "Trà Xuân"),
        ("tb2", "HTX", "HTX Nông lâm nghiệp Trà Bùi", True, "Trà Bùi"),
        ("tb3", "HTX", "HTX Sản xuất kinh doanh dịch vụ quế Trà Hiệp", True, "Trà Hiệp"),
        ("tb4", "HTX", "HTX Nông nghiệp Trà Phong", True, "Trà Phong"),
        ("tb5", "HKD", "Hộ kinh doanh Hồ Văn Lâm", False, "Trà Lâm"),
        ("tb6", "HKD", "Cơ sở sản xuất rượu cần Trà Thủy", True, "Trà Thủy"),
        ("tb7", "HKD", "Hộ kinh doanh Đinh Thị Mai", False, "Trà Xinh"),
        ("tb8", "HKD", "Cơ sở mật ong Trà Tân", False, "Trà Tân"),
        ("tb9", "HKD", "Hộ kinh doanh Nguyễn Văn Sang", True, "Trà Xuân"),
    ],
    "527": [
        ("st1", "DN", "Công ty TNHH Nông sản sạch Tịnh Hà", True, "Tịnh Hà"),
        ("st2", "HTX", "HTX Nông nghiệp Tịnh Bắc", True, "Tịnh Bắc"),
        ("st3", "HTX", "HTX Dịch vụ nông nghiệp Tịnh Đông", True, "Tịnh Đông"),
        ("st4", "HTX", "HTX Nông nghiệp hữu cơ Tịnh Hiệp", True, "Tịnh Hiệp"),
        ("st5", "HKD", "Hộ kinh doanh Lê Văn Sáu", False, "Tịnh Sơn"),
        ("st6", "HKD", "Cơ sở sản xuất bánh tráng Tịnh Bình", False, "Tịnh Bình"),
        ("st7", "HKD", "Hộ kinh doanh Nguyễn Thị Thanh", True, "Tịnh Giang"),
        ("st8", "HKD", "Cơ sở mạch nha Tịnh Minh", False, "Tịnh Minh"),
        ("st9", "HKD", "Hộ kinh doanh Trương Văn Được", False, "Tịnh Trà"),
        ("st10", "HKD", "Hộ kinh doanh Đỗ Thị Kim", True, "Tịnh Phong"),
        ("st0", "HKD", "Cơ sở sản xuất Hương Trà", False, "Tịnh Thọ"),
    ],
    "528": [
        ("tn1", "DN", "Công ty TNHH Thực phẩm La Hà", True, "La Hà"),
        ("tn2", "DN", "Công ty Cổ phần Dược liệu Sông Vệ", True, "Sông Vệ"),
        ("tn3", "HTX", "HTX Nông nghiệp Nghĩa Hiệp", True, "Nghĩa Hiệp"),
        ("tn4", "HTX", "HTX Dịch vụ nông nghiệp Nghĩa Mỹ", True, "Nghĩa Mỹ"),
        ("tn5", "HTX", "HTX Nông nghiệp Nghĩa Sơn", True, "Nghĩa Sơn"),
        ("tn6", "HKD", "Hộ kinh doanh Bùi Thị Nga", False, "Nghĩa Điền"),
        ("tn7", "HKD", "Cơ sở kẹo gương Hạnh Phúc", True, "Nghĩa Kỳ"),
        ("tn8", "HKD", "Hộ kinh doanh Nguyễn Văn Thành", False, "Nghĩa Thắng"),
        ("tn9", "HKD", "Hộ kinh doanh Võ Thị Bích", False, "Nghĩa Trung"),
        ("tn10", "HKD", "Cơ sở sản xuất nhang Nghĩa Hòa", True, "Nghĩa Hòa"),
        ("tn11", "HKD", "Hộ kinh doanh Lê Quang Vinh", False, "Nghĩa Lâm"),
        ("tn0", "HKD", "Hộ kinh doanh Trần Thị Xuân", False, "Nghĩa Phương"),
    ],
    "529": [
        ("sh1", "HTX", "HTX Nông lâm nghiệp Sơn Hạ", True, "Sơn Hạ"),
        ("sh2", "HTX", "HTX Nông nghiệp Sơn Nham", True, "Sơn Nham"),
        ("sh3", "HTX", "HTX Dịch vụ tổng hợp Sơn Thành", True, "Sơn Thành"),
        ("sh4", "HKD", "Hộ kinh doanh Đinh Văn Mười", False, "Sơn Giang"),
        ("sh5", "HKD", "Cơ sở sản xuất rượu cần Sơn Kỳ", False, "Sơn Kỳ"),
        ("sh6", "HKD", "Hộ kinh doanh Phạm Thị Hồng", True, "Di Lăng"),
        ("sh0", "HKD", "Hộ kinh doanh Đinh Thị Lê", False, "Sơn Linh"),
    ],
    "530": [
        ("sy1", "HTX", "HTX Nông lâm nghiệp Sơn Tân", True, "Sơn Tân"),
        ("sy2", "HTX", "HTX Dịch vụ nông nghiệp Sơn Dung", True, "Sơn Dung"),
        ("sy3", "HKD", "Hộ kinh doanh Đinh Văn Lời", False, "Sơn Mùa"),
        ("sy4", "HKD", "Cơ sở sản xuất mật ong Sơn Liên", True, "Sơn Liên"),
        ("sy5", "HKD", "Hộ kinh doanh Hồ Thị Bé", False, "Sơn Màu"),
    ],
    "531": [
        ("ml1", "HTX", "HTX Nông nghiệp Long Sơn", True, "Long Sơn"),
        ("ml2", "HTX", "HTX Sản xuất kinh doanh chè Thanh An", True, "Thanh An"),
        ("ml3", "HKD", "Hộ kinh doanh Đinh Văn Ruôn", False, "Long Môn"),
        ("ml4", "HKD", "Cơ sở sản xuất rượu Minh Long", True, "Long Hiệp"),
        ("ml5", "HKD", "Hộ kinh doanh Phạm Thị Xuân", False, "Long Hiệp"),
    ],
    "532": [
        ("nh1", "DN", "Công ty TNHH Nông nghiệp Hành Thiện", True, "Hành Thiện"),
        ("nh2", "HTX", "HTX Nông nghiệp Hành Thịnh", True, "Hành Thịnh"),
        ("nh3", "HTX", "HTX Dịch vụ nông nghiệp Hành Đức", True, "Hành Đức"),
        ("nh4", "HTX", "HTX Cây cảnh Hành Phước", True, "Hành Phước"),
        ("nh5", "HKD", "Hộ kinh doanh Lương Văn Cường", False, "Hành Dũng"),
        ("nh6", "HKD", "Cơ sở sản xuất bánh tráng Chợ Chùa", True, "Chợ Chùa"),
        ("nh7", "HKD", "Hộ kinh doanh Đặng Thị Hương", False, "Hành Minh"),
        ("nh8", "HKD", "Hộ kinh doanh Trịnh Văn Lực", False, "Hành Trung"),
        ("nh9", "HKD", "Cơ sở sản xuất hương trầm Hành Tín", True, "Hành Tín Đông"),
        ("nh10", "HKD", "Hộ kinh doanh Nguyễn Thị Ánh", False, "Hành Nhân"),
        ("nh0", "HTX", "HTX Nông nghiệp Hành Nhân", True, "Hành Nhân"),
    ],
    "533": [
        ("md1", "DN", "Công ty TNHH Thực phẩm Thi Phổ", True, "Đức Nhuận"),
        ("md2", "DN", "Công ty Cổ phần Nông sản Mộ Đức", True, "Mộ Đức"),
        ("md3", "HTX", "HTX Mạch nha Thi Phổ", True, "Đức Nhuận"),
        ("md4", "HTX", "HTX Nông nghiệp Đức Tân", True, "Đức Tân"),
        ("md5", "HTX", "HTX Nông nghiệp Đức Chánh", True, "Đức Chánh"),
        ("md6", "HKD", "Cơ sở mạch nha Bảy Thắng", True, "Đức Nhuận"),
        ("md7", "HKD", "Hộ kinh doanh Nguyễn Thị Sen", False, "Đức Hiệp"),
        ("md8", "HKD", "Hộ kinh doanh Lê Văn Phước", False, "Đức Phú"),
        ("md9", "HKD", "Cơ sở sản xuất nước mắm Đức Minh", True, "Đức Minh"),
        ("md10", "HKD", "Hộ kinh doanh Huỳnh Thị Tuyết", False, "Đức Lợi"),
        ("md11", "HKD", "Cơ sở bánh tráng Đức Nhuận", False, "Đức Nhuận"),
        ("md0", "HKD", "Hộ kinh doanh Phạm Văn Hòa", False, "Đức Lợi"),
    ],
    "534": [
        ("dp1", "DN", "Công ty TNHH Muối Sa Huỳnh", True, "Phổ Thạnh"),
        ("dp2", "DN", "Công ty Cổ phần Thủy sản Sa Huỳnh", True, "Phổ Thạnh"),
        ("dp3", "DN", "Công ty TNHH Nước mắm Phổ Thạnh", True, "Phổ Thạnh"),
        ("dp4", "HTX", "HTX Sản xuất kinh doanh muối Sa Huỳnh", True, "Phổ Thạnh"),
        ("dp5", "HTX", "HTX Nông nghiệp Phổ Phong", True, "Phổ Phong"),
        ("dp6", "HTX", "HTX Dịch vụ nông nghiệp Phổ Nhơn", True, "Phổ Nhơn"),
        ("dp7", "HKD", "Hộ kinh doanh Nguyễn Văn Tư", False, "Phổ Thạnh"),
        ("dp8", "HKD", "Cơ sở sản xuất nước mắm Mỹ Á", True, "Phổ Quang"),
        ("dp9", "HKD", "Hộ kinh doanh Trần Thị Thu", False, "Phổ Cường"),
        ("dp10", "HKD", "Cơ sở bánh tráng Phổ Văn", False, "Phổ Văn"),
        ("dp11", "HKD", "Hộ kinh doanh Võ Văn Hải", True, "Phổ Thạnh"),
        ("dp12", "HKD", "Hộ kinh doanh Đoàn Thị Cúc", False, "Phổ Châu"),
        ("dp0", "HKD", "Cơ sở sản xuất mắm Phổ Khánh", False, "Phổ Khánh"),
    ],
    "535": [
        ("bt1", "DN", "Công ty TNHH Dược liệu Ba Tơ", True, "Ba Tơ"),
        ("bt2", "HTX", "HTX Dệt thổ cẩm Làng Teng", True, "Ba Thành"),
        ("bt3", "HTX", "HTX Nông lâm nghiệp Ba Vì", True, "Ba Vì"),
        ("bt4", "HTX", "HTX Nông nghiệp Ba Điền", True, "Ba Điền"),
        ("bt5", "HKD", "Hộ kinh doanh Phạm Văn Kiếm", False, "Ba Thành"),
        ("bt6", "HKD", "Cơ sở sản xuất rượu ngô Ba Tơ", True, "Ba Tơ"),
        ("bt7", "HKD", "Hộ kinh doanh Đinh Thị Hồng", False, "Ba Vinh"),
    ],
    "536": [
        ("ls1", "DN", "Chi nhánh Công ty TNHH MTV Nông sản Sông Trà tại Lý Sơn", "branch:tp3", "An Vĩnh"),
        ("ls2", "HTX", "HTX Nông nghiệp tổng hợp An Hải", True, "An Hải"),
        ("ls3", "HTX", "HTX Sản xuất kinh doanh tỏi Lý Sơn", True, "An Vĩnh"),
        ("ls4", "HKD", "Hộ kinh doanh Võ Thị Lệ", False, "An Vĩnh"),
        ("ls5", "HKD", "Cơ sở sản xuất tỏi đen Hải Vân", True, "An Hải"),
        ("ls6", "HKD", "Hộ kinh doanh Phạm Văn Trung", False, "An Bình"),
        ("ls7", "HKD", "Hộ kinh doanh Trương Thị Hạnh", False, "An Vĩnh"),
        ("ls8", "HKD", "Hộ kinh doanh Nguyễn Văn Lành", False, "An Hải"),
        ("ls9", "HKD", "Hộ kinh doanh Lê Thị Bông", False, "An Vĩnh"),
    ],
}

# Products per district: (name, group, owner key, role). Groups: Decision 148 codes I..VI, plus
# "IVt" for textiles (group IV, "Vải và may mặc" in the 2019 naming).
# Roles: ""    3 stars, one certificate, valid on 2024-12-20 (year drawn later)
#        "4"   4 stars by the province, 2022-2023
#        "up"  3 stars 2022-2023, upgraded ("Nâng hạng") to 4 stars by the province in 2024-07..11
#        "tn5" 4 stars 2024 with a 90+ score, put forward as five-star potential
#        "ren" 3 stars 2021 (in the 2024-06 workbook), renewed ("Công nhận lại") in 2024-07..12
#        "exp" only certificate before 2021-12-21, not renewed: expired on 2024-12-20
#        "fut" recognised 2024-12-23..30: in the period, after the as-of date
PRODUCTS: dict[str, list[tuple[str, str, str, str]]] = {
    "522": [
        ("Kẹo gương Thiên Hương", "I", "tp1", "4"),
        ("Đường phổi Thiên Hương", "I", "tp1", "up"),
        ("Mạch nha gừng Thiên Hương", "I", "tp1", ""),
        ("Yến sào tinh chế Hoàng Long", "I", "tp2", "4"),
        ("Nước yến sào Hoàng Long", "II", "tp2", ""),
        ("Cá bống sông Trà kho tiêu", "I", "tp3", ""),
        ("Cá bống sông Trà chiên giòn", "I", "tp3", ""),
        ("Chả cá Quảng Ngãi", "I", "tp4", ""),
        ("Mực một nắng Tịnh Kỳ", "I", "tp4", ""),
        ("Cá cơm sấy giòn Tịnh Kỳ", "I", "tp4", "exp"),
        ("Gạo hữu cơ Nghĩa Hà", "I", "tp5", ""),
        ("Nấm bào ngư Nghĩa Hà", "I", "tp5", ""),
        ("Bánh ít lá gai Bà Lan", "I", "tp6", ""),
        ("Bánh nổ Tịnh Ấn", "I", "tp6", ""),
        ("Nước mắm cá cơm Kim Thành", "I", "tp7", ""),
        ("Tré rơm Quảng Ngãi", "I", "tp8", ""),
        ("Bánh tráng nướng Nghĩa Dõng", "I", "tp9", ""),
        ("Dầu phộng ép Thu Hà", "I", "tp10", ""),
        ("Mè đen rang Thu Hà", "I", "tp10", ""),
        ("Cà phê rang xay Phúc An", "II", "tp11", ""),
        ("Tinh dầu sả chanh Phạm Thọ", "III", "tp12", ""),
        ("Rượu chuối hột Phú Lộc", "II", "tp0", "exp"),
    ],
    "524": [
        ("Nước mắm nhĩ Sa Kỳ", "I", "bs6", "4"),
        ("Cá cơm khô Sa Kỳ", "I", "bs6", ""),
        ("Mực khô Bình Châu", "I", "bs2", "up"),
        ("Ruốc biển Bình Châu", "I", "bs2", ""),
        ("Tinh bột nghệ Dung Quất", "III", "bs1", ""),
        ("Trà vối Dung Quất", "II", "bs1", ""),
        ("Bánh thuẫn Hương Quê", "I", "bs3", ""),
        ("Bánh in Hương Quê", "I", "bs3", ""),
        ("Gạo sạch Bình Trị", "I", "bs4", ""),
        ("Dưa hấu Bình Trị", "I", "bs4", ""),
        ("Bánh tráng Bình Trị", "I", "bs4", "exp"),
        ("Mè đen Bình Minh", "I", "bs5", ""),
        ("Đậu phộng rang Bình Minh", "I", "bs5", ""),
        ("Bánh tráng mè Bình Long", "I", "bs7", ""),
        ("Bánh nậm Bình Long", "I", "bs7", ""),
        ("Bánh ít lá gai Bình Long", "I", "bs7", ""),
        ("Nước mắm cá cơm Bình Thạnh", "I", "bs8", "ren"),
        ("Nước mắm truyền thống Bình Thạnh", "I", "bs8", "exp"),
        ("Mật ong rừng Bình An", "I", "bs9", ""),
        ("Chả cá Bình Đông", "I", "bs10", ""),
        ("Chả cá thu Bình Đông", "I", "bs10", "fut"),
        ("Kẹo đậu phộng Châu Ổ", "I", "bs11", ""),
        ("Nem chua Châu Ổ", "I", "bs12", ""),
        ("Chổi đót Bình An", "IV", "bs13", ""),
        ("Tinh dầu tràm Bình Khương", "III", "bs14", ""),
    ],
    "525": [
        ("Tinh dầu quế Trà Bồng", "III", "tb1", "tn5"),
        ("Bột quế Trà Bồng", "III", "tb1", ""),
        ("Quế khô Trà Bồng", "III", "tb3", "up"),
        ("Trà quế túi lọc", "II", "tb3", ""),
        ("Quế chi Trà Hiệp", "III", "tb3", "exp"),
        ("Quế cuộn Trà Bùi", "III", "tb2", ""),
        ("Gạo lúa rẫy Trà Bùi", "I", "tb2", ""),
        ("Mật ong rừng Trà Bùi", "I", "tb2", ""),
        ("Măng khô Trà Phong", "I", "tb4", ""),
        ("Thịt heo gác bếp Trà Phong", "I", "tb4", ""),
        ("Chổi đót Trà Lâm", "IV", "tb5", ""),
        ("Rượu cần Trà Thủy", "II", "tb6", ""),
        ("Nếp than Trà Xinh", "I", "tb7", ""),
        ("Mật ong Trà Tân", "I", "tb8", ""),
        ("Dầu xoa bóp quế", "III", "tb9", ""),
    ],
    "527": [
        ("Tinh bột nghệ Tịnh Hà", "III", "st1", ""),
        ("Trà gừng Tịnh Hà", "II", "st1", ""),
        ("Mè đen Tịnh Bắc", "I", "st2", ""),
        ("Đậu phộng Tịnh Bắc", "I", "st2", ""),
        ("Nước rau má Tịnh Đông", "II", "st3", ""),
        ("Bột rau má Tịnh Đông", "I", "st3", ""),
        ("Gạo hữu cơ Tịnh Hiệp", "I", "st4", "4"),
        ("Bột gạo lứt Tịnh Hiệp", "I", "st4", ""),
        ("Bánh tráng nướng Tịnh Sơn", "I", "st5", ""),
        ("Bánh tráng mỏng Tịnh Bình", "I", "st6", ""),
        ("Củ kiệu Tịnh Giang", "I", "st7", ""),
        ("Mạch nha Tịnh Minh", "I", "st8", ""),
        ("Mật ong Tịnh Trà", "I", "st9", ""),
        ("Nấm linh chi Tịnh Phong", "III", "st10", ""),
        ("Trà linh chi Tịnh Phong", "II", "st10", ""),
        ("Nhang trầm Hương Trà", "IV", "st0", "exp"),
        ("Bột ngũ cốc Hương Trà", "I", "st0", "exp"),
    ],
    "528": [
        ("Chả lụa La Hà", "I", "tn1", "4"),
        ("Nem chua La Hà", "I", "tn1", ""),
        ("Giò thủ La Hà", "I", "tn1", "exp"),
        ("Trà thảo mộc Sông Vệ", "II", "tn2", ""),
        ("Cao xương khớp Sông Vệ", "III", "tn2", ""),
        ("Hành tím Nghĩa Hiệp", "I", "tn3", ""),
        ("Ớt bột Nghĩa Hiệp", "I", "tn3", ""),
        ("Rau sạch Nghĩa Hiệp", "I", "tn3", ""),
        ("Gạo nếp Nghĩa Mỹ", "I", "tn4", ""),
        ("Bánh tráng gạo Nghĩa Mỹ", "I", "tn4", ""),
        ("Mật ong Nghĩa Sơn", "I", "tn5", ""),
        ("Trà xanh Nghĩa Sơn", "II", "tn5", ""),
        ("Bánh ít lá gai Nghĩa Điền", "I", "tn6", "ren"),
        ("Kẹo gương Hạnh Phúc", "I", "tn7", ""),
        ("Mạch nha Hạnh Phúc", "I", "tn7", ""),
        ("Rượu nếp Nghĩa Thắng", "II", "tn8", ""),
        ("Bánh tráng nướng Nghĩa Trung", "I", "tn9", ""),
        ("Nhang trầm Nghĩa Hòa", "IV", "tn10", ""),
        ("Điểm du lịch sinh thái Vườn Quê", "VI", "tn11", ""),
        ("Bánh tráng Nghĩa Phương", "I", "tn0", "exp"),
    ],
    "529": [
        ("Ba kích Sơn Hạ", "III", "sh1", ""),
        ("Mật ong rừng Sơn Hạ", "I", "sh1", ""),
        ("Chuối hột rừng Sơn Nham", "III", "sh2", ""),
        ("Măng khô Sơn Nham", "I", "sh2", ""),
        ("Trà dây Sơn Thành", "II", "sh3", ""),
        ("Rượu ba kích Sơn Thành", "II", "sh3", ""),
        ("Thổ cẩm Sơn Hà", "IVt", "sh4", ""),
        ("Mây tre đan Sơn Giang", "IV", "sh4", ""),
        ("Rượu cần Sơn Kỳ", "II", "sh5", ""),
        ("Thịt heo đen gác bếp Sơn Hà", "I", "sh6", ""),
        ("Cau khô Sơn Linh", "I", "sh0", "exp"),
    ],
    "530": [
        ("Ba kích tím Sơn Tân", "III", "sy1", "4"),
        ("Chè dây Sơn Tân", "II", "sy1", ""),
        ("Măng khô Sơn Tân", "I", "sy1", "exp"),
        ("Gạo lúa rẫy Sơn Dung", "I", "sy2", ""),
        ("Thịt heo đen Sơn Dung", "I", "sy2", ""),
        ("Rượu cần Sơn Mùa", "II", "sy3", ""),
        ("Tiêu rừng Sơn Mùa", "I", "sy3", ""),
        ("Mật ong rừng Sơn Tây", "I", "sy4", ""),
        ("Dệt thổ cẩm Sơn Màu", "IVt", "sy5", ""),
    ],
    "531": [
        ("Chè xanh Minh Long", "II", "ml2", "4"),
        ("Trà xanh túi lọc Thanh An", "II", "ml2", ""),
        ("Chè búp khô Thanh An", "II", "ml2", "exp"),
        ("Gạo lúa rẫy Long Sơn", "I", "ml1", ""),
        ("Mật ong Long Sơn", "I", "ml1", ""),
        ("Thổ cẩm Long Môn", "IVt", "ml3", ""),
        ("Rượu ngô Minh Long", "II", "ml4", ""),
        ("Thịt heo gác bếp Long Hiệp", "I", "ml5", ""),
    ],
    "532": [
        ("Đông trùng hạ thảo Hành Thiện", "III", "nh1", "4"),
        ("Gạo sạch Hành Thiện", "I", "nh1", ""),
        ("Rau an toàn Hành Thịnh", "I", "nh2", ""),
        ("Nấm rơm Hành Thịnh", "I", "nh2", ""),
        ("Dưa lưới Hành Thịnh", "I", "nh2", "exp"),
        ("Mè đen Hành Đức", "I", "nh3", ""),
        ("Đậu xanh Hành Đức", "I", "nh3", ""),
        ("Mai vàng Hành Phước", "V", "nh4", ""),
        ("Cây cảnh bonsai Hành Phước", "V", "nh4", ""),
        ("Mật ong Hành Dũng", "I", "nh5", ""),
        ("Bánh tráng Chợ Chùa", "I", "nh6", ""),
        ("Bánh tráng mè Chợ Chùa", "I", "nh6", ""),
        ("Bánh ít lá gai Hành Minh", "I", "nh7", ""),
        ("Rượu nếp Hành Trung", "II", "nh8", ""),
        ("Hương trầm Hành Tín", "IV", "nh9", ""),
        ("Kẹo đậu phộng Hành Nhân", "I", "nh10", ""),
        ("Gạo nếp Hành Nhân", "I", "nh0", "exp"),
    ],
    "533": [
        ("Mạch nha gừng Thi Phổ", "I", "md1", "4"),
        ("Kẹo mạch nha Thi Phổ", "I", "md1", ""),
        ("Tinh bột nghệ Mộ Đức", "III", "md2", "up"),
        ("Nghệ viên mật ong Mộ Đức", "III", "md2", ""),
        ("Mạch nha Thi Phổ", "I", "md3", ""),
        ("Bánh tráng mạch nha Thi Phổ", "I", "md3", ""),
        ("Bánh tráng gạo lứt Đức Tân", "I", "md4", ""),
        ("Gạo hữu cơ Đức Tân", "I", "md4", ""),
        ("Rau sạch Đức Chánh", "I", "md5", ""),
        ("Ruốc biển Đức Chánh", "I", "md5", ""),
        ("Mạch nha Bảy Thắng", "I", "md6", "ren"),
        ("Bánh ít lá gai Đức Hiệp", "I", "md7", ""),
        ("Bánh nậm Đức Hiệp", "I", "md7", ""),
        ("Mật ong Đức Phú", "I", "md8", ""),
        ("Nước mắm cá cơm Đức Minh", "I", "md9", ""),
        ("Nước mắm ruốc Đức Minh", "I", "md9", "exp"),
        ("Bánh thuẫn Đức Lợi", "I", "md10", ""),
        ("Bánh tráng Đức Nhuận", "I", "md11", ""),
        ("Mắm nêm Đức Lợi", "I", "md0", "exp"),
    ],
    "534": [
        ("Muối Sa Huỳnh", "I", "dp1", "4"),
        ("Muối tôm Sa Huỳnh", "I", "dp1", ""),
        ("Muối ớt Sa Huỳnh", "I", "dp1", ""),
        ("Cá khô Sa Huỳnh", "I", "dp2", ""),
        ("Mực một nắng Sa Huỳnh", "I", "dp2", ""),
        ("Nước mắm cá cơm Phổ Thạnh", "I", "dp3", ""),
        ("Nước mắm nhĩ Phổ Thạnh", "I", "dp3", ""),
        ("Muối hạt sạch Sa Huỳnh", "I", "dp4", ""),
        ("Muối tinh Sa Huỳnh", "I", "dp4", ""),
        ("Gạo sạch Phổ Phong", "I", "dp5", ""),
        ("Nấm linh chi Phổ Phong", "III", "dp5", ""),
        ("Mè đen Phổ Nhơn", "I", "dp6", ""),
        ("Đậu phộng Phổ Nhơn", "I", "dp6", ""),
        ("Chả cá Phổ Thạnh", "I", "dp7", ""),
        ("Chả cá chiên Phổ Thạnh", "I", "dp7", "fut"),
        ("Nước mắm Mỹ Á", "I", "dp8", "ren"),
        ("Mắm ruốc Mỹ Á", "I", "dp8", "exp"),
        ("Bánh ít lá gai Phổ Cường", "I", "dp9", ""),
        ("Bánh tráng Phổ Văn", "I", "dp10", ""),
        ("Du lịch cộng đồng làng biển Sa Huỳnh", "VI", "dp11", ""),
        ("Dầu dừa Phổ Châu", "I", "dp12", ""),
        ("Kẹo dừa Phổ Châu", "I", "dp12", ""),
        ("Mắm cá cơm Phổ Khánh", "I", "dp0", "exp"),
    ],
    "535": [
        ("Trà sâm Ba Tơ", "II", "bt1", "4"),
        ("Sâm cau Ba Tơ", "III", "bt1", ""),
        ("Ba kích ngâm mật ong Ba Tơ", "III", "bt1", ""),
        ("Thổ cẩm Làng Teng", "IVt", "bt2", ""),
        ("Túi xách thổ cẩm Làng Teng", "IVt", "bt2", ""),
        ("Mật ong rừng Ba Vì", "I", "bt3", ""),
        ("Quế Ba Vì", "III", "bt3", ""),
        ("Gạo lúa rẫy Ba Điền", "I", "bt4", ""),
        ("Thịt heo đen Ba Điền", "I", "bt4", ""),
        ("Măng le khô Ba Điền", "I", "bt4", "exp"),
        ("Homestay cộng đồng Ba Thành", "VI", "bt5", ""),
        ("Rượu ngô Ba Tơ", "II", "bt6", ""),
        ("Bánh nẹp Ba Tơ", "I", "bt7", ""),
    ],
    "536": [
        ("Tỏi cô đơn Lý Sơn", "I", "ls1", "up"),
        ("Tỏi ngâm mật ong Lý Sơn", "I", "ls1", ""),
        ("Tỏi Lý Sơn", "I", "ls3", ""),
        ("Hành tím Lý Sơn", "I", "ls3", ""),
        ("Rượu tỏi Lý Sơn", "II", "ls3", ""),
        ("Hành lá Lý Sơn", "I", "ls2", ""),
        ("Đậu phộng An Hải", "I", "ls2", ""),
        ("Tỏi khô An Hải", "I", "ls2", "exp"),
        ("Rong biển sấy khô Lý Sơn", "I", "ls4", ""),
        ("Muối tỏi Lý Sơn", "I", "ls4", ""),
        ("Tỏi đen Hải Vân", "I", "ls5", ""),
        ("Du lịch cộng đồng An Bình", "VI", "ls6", ""),
        ("Mắm tỏi Lý Sơn", "I", "ls7", ""),
        ("Chè rong biển Lý Sơn", "II", "ls8", ""),
        ("Bánh tráng hành tỏi Lý Sơn", "I", "ls9", "fut"),
    ],
}

# Craft-village products (lang_nghe = Có)
CRAFT_VILLAGE = frozenset({
    "Thổ cẩm Làng Teng", "Túi xách thổ cẩm Làng Teng", "Mạch nha Thi Phổ",
    "Bánh tráng mạch nha Thi Phổ", "Mạch nha Bảy Thắng",
})

# Showcase and sales points: (district, name, address, commune, state-supported?, opened, note)
SALES_POINTS: list[tuple[str, str, str, str, bool, dt.date, str | None]] = [
    ("522", "Điểm giới thiệu và bán sản phẩm OCOP tỉnh Quảng Ngãi", "Số 20 Hùng Vương", "Trần Phú", True,
     dt.date(2021, 9, 24), None),
    ("522", "Cửa hàng đặc sản OCOP Sông Trà", "145 Quang Trung", "Lê Hồng Phong", False, dt.date(2022, 4, 15), None),
    ("524", "Điểm bán sản phẩm OCOP huyện Bình Sơn", "Tổ dân phố 3, thị trấn Châu Ổ", "Châu Ổ", True,
     dt.date(2023, 5, 19), None),
    ("524", "Cửa hàng OCOP Dung Quất", "Khu dân cư Vạn Tường", "Bình Trị", False, dt.date(2024, 9, 6),
     "Mới khai trương"),
    ("525", "Điểm giới thiệu sản phẩm quế Trà Bồng", "Tổ 2, thị trấn Trà Xuân", "Trà Xuân", True,
     dt.date(2022, 7, 8), None),
    ("527", "Cửa hàng nông sản sạch Tịnh Hà", "Thôn Thọ Lộc", "Tịnh Hà", False, dt.date(2024, 4, 12), None),
    ("528", "Cửa hàng OCOP La Hà", "Tổ dân phố 1, thị trấn La Hà", "La Hà", False, dt.date(2023, 3, 3), None),
    ("532", "Cửa hàng đặc sản Nghĩa Hành", "Tổ dân phố 2, thị trấn Chợ Chùa", "Chợ Chùa", False,
     dt.date(2021, 6, 11), None),
    ("533", "Điểm giới thiệu sản phẩm OCOP huyện Mộ Đức", "Tổ dân phố 4, thị trấn Mộ Đức", "Mộ Đức", True,
     dt.date(2023, 10, 20), None),
    ("534", "Điểm giới thiệu sản phẩm OCOP thị xã Đức Phổ", "Đường Nguyễn Nghiêm", "Nguyễn Nghiêm", True,
     dt.date(2022, 8, 12), None),
    ("534", "Cửa hàng đặc sản Sa Huỳnh", "Quốc lộ 1A, khu phố Thạnh Đức 1", "Phổ Thạnh", False,
     dt.date(2020, 11, 20), None),
    ("535", "Điểm giới thiệu sản phẩm OCOP huyện Ba Tơ", "Tổ dân phố Trường Xuân, thị trấn Ba Tơ", "Ba Tơ", True,
     dt.date(2024, 8, 19), None),
    ("536", "Cửa hàng đặc sản Lý Sơn An Vĩnh", "Thôn Đông, An Vĩnh", "An Vĩnh", False, dt.date(2021, 3, 26), None),
    ("536", "Điểm bán OCOP cảng Lý Sơn", "Cảng Bến Đình", "An Vĩnh", False, dt.date(2024, 12, 28),
     "Khai trương cuối năm"),  # opens after the as-of date: not counted on 2024-12-20
]

OFFICE_NAMES = {"PHÒNG KINH TẾ": "Phòng Kinh tế", "PHÒNG NÔNG NGHIỆP VÀ PTNT": "Phòng Nông nghiệp và PTNT"}

# Provincial decisions (4 stars, by the provincial People's Committee)
PROVINCE_4STAR_DECISIONS = [
    (dt.date(2022, 5, 17), "845/QĐ-UBND"), (dt.date(2022, 11, 25), "1702/QĐ-UBND"),
    (dt.date(2023, 6, 9), "962/QĐ-UBND"), (dt.date(2023, 12, 15), "1938/QĐ-UBND"),
]
PROVINCE_2024_DECISIONS = [(dt.date(2024, 8, 16), "1189/QĐ-UBND"), (dt.date(2024, 11, 8), "1587/QĐ-UBND")]

# Years of the plain 3-star certificates valid on 2024-12-20 (170 of them)
PLAIN_YEARS = ["2021-late"] * 5 + ["2022"] * 50 + ["2023"] * 55 + ["2024"] * 60
# Recognition classes of the 20 expired products
EXPIRED_CLASSES = ["2019"] * 6 + ["2020"] * 7 + ["2021-h1"] * 3 + ["2021-h2"] * 3 + ["edge"]
# date ranges for district decision batches
BATCH_RANGES = {
    "2019": (dt.date(2019, 6, 1), dt.date(2019, 12, 20)),
    "2020": (dt.date(2020, 3, 1), dt.date(2020, 12, 20)),
    "2021-h1": (dt.date(2021, 1, 11), dt.date(2021, 6, 25)),
    "2021-h2": (dt.date(2021, 7, 5), dt.date(2021, 12, 10)),
    "edge": (dt.date(2021, 12, 20), dt.date(2021, 12, 20)),  # expires exactly on the as-of date
    "ren-old": (dt.date(2021, 8, 2), dt.date(2021, 10, 28)),
    "up-old": (dt.date(2022, 3, 1), dt.date(2023, 10, 31)),
    "2021-late": (dt.date(2021, 12, 21), dt.date(2021, 12, 29)),
    "2022": (dt.date(2022, 2, 14), dt.date(2022, 12, 23)),
    "2023": (dt.date(2023, 2, 6), dt.date(2023, 12, 22)),
    "2024-a": (dt.date(2024, 2, 26), dt.date(2024, 6, 21)),
    "2024-b": (dt.date(2024, 7, 15), dt.date(2024, 12, 13)),
    "fut": (dt.date(2024, 12, 23), dt.date(2024, 12, 30)),
}

GROUP_NAMES = {
    "2023": {"I": "Thực phẩm", "II": "Đồ uống", "III": "Dược liệu và sản phẩm từ dược liệu",
             "IV": "Thủ công mỹ nghệ", "IVt": "Thủ công mỹ nghệ", "V": "Sinh vật cảnh",
             "VI": "Dịch vụ du lịch cộng đồng, du lịch sinh thái và điểm du lịch"},
    "2019": {"I": "Thực phẩm", "II": "Đồ uống", "III": "Thảo dược", "IV": "Lưu niệm - nội thất - trang trí",
             "IVt": "Vải và may mặc", "VI": "Dịch vụ du lịch nông thôn"},
    "short": {"I": "Thực phẩm", "II": "Đồ uống", "III": "Dược liệu", "IV": "Thủ công mỹ nghệ",
              "IVt": "Thủ công mỹ nghệ", "V": "Sinh vật cảnh", "VI": "Du lịch"},
}
OWNER_TYPE_TEXT = {
    "full": {"doanh_nghiep": "Doanh nghiệp", "hop_tac_xa": "Hợp tác xã", "ho": "Hộ kinh doanh",
             "co_so": "Cơ sở sản xuất"},
    # abbr: companies are written Cty TNHH / Cty CP / DNTN (see _Writer.owner_type)
    "abbr": {"doanh_nghiep": "DN", "hop_tac_xa": "HTX", "ho": "HKD", "co_so": "Cơ sở"},
    "short": {"doanh_nghiep": "DN", "hop_tac_xa": "HTX", "ho": "Hộ", "co_so": "Cơ sở"},
}
LEVEL_TEXT = {"huyen": "Huyện", "tinh": "Tỉnh"}
KIND_TEXT = {"moi": "Mới", "cong_nhan_lai": "Công nhận lại", "nang_hang": "Nâng hạng"}
STAFF = ["Nguyễn Thị Mai", "Trần Văn Bình", "Lê Thị Hồng", "Phạm Văn Đức", "Võ Thị Thu", "Huỳnh Văn Nam",
         "Đặng Thị Hạnh", "Bùi Văn Tuấn", "Đỗ Thị Phương", "Ngô Văn Sơn", "Trương Thị Lý", "Phan Văn Hải",
         "Đinh Văn Tâm", "Lương Thị Nga"]
BUYER_PROVINCES = [
    ("Quảng Ngãi", 30), ("TP. Hồ Chí Minh", 20), ("Hà Nội", 12), ("Đà Nẵng", 8), ("Bình Định", 4),
    ("Quảng Nam", 4), ("Khánh Hòa", 3), ("Gia Lai", 2), ("Kon Tum", 2), ("Đắk Lắk", 2), ("Bình Dương", 3),
    ("Đồng Nai", 3), ("Cần Thơ", 2), ("Hải Phòng", 2), ("Thừa Thiên Huế", 2), ("Phú Yên", 1), ("Lâm Đồng", 1),
]
UNKNOWN_SKUS = ["SKU-UNKNOWN-0173", "SKU-UNKNOWN-0458", "SKU-UNKNOWN-2291", "SKU-UNKNOWN-7730"]
# sku size token -> (title label, price range in thousand VND)
SIZES = {
    "100G": ("gói 100g", 40, 80), "200G": ("gói 200g", 45, 95), "500G": ("túi 500g", 80, 180),
    "1KG": ("túi 1kg", 150, 350), "HOP25": ("hộp 25 túi lọc", 35, 65), "500ML": ("chai 500ml", 45, 120),
    "750ML": ("chai 750ml", 90, 250), "1L": ("can 1 lít", 80, 200), "10ML": ("lọ 10ml", 35, 60),
    "50ML": ("chai 50ml", 90, 180), "100ML": ("chai 100ml", 150, 280), "CAI": ("1 cái", 150, 600),
    "BO": ("bộ quà tặng", 250, 500), "CHAU": ("chậu", 300, 1500), "HOP": ("hộp quà", 180, 450),
}

# ================================================================================================
# Per-district layouts: file names, sheets, headers and how values are written
# ================================================================================================
# canonical column keys (short) -> raw-contract column
CANONICAL = {
    "stt": "stt", "ma": "ma_san_pham", "ten": "ten_san_pham", "nhom": "nhom_san_pham", "sao": "hang_sao",
    "diem": "diem", "qd": "so_quyet_dinh", "cap": "cap_cong_nhan", "ht": "hinh_thuc", "tn5": "tiem_nang_5_sao",
    "ngay": "ngay_cong_nhan", "het": "ngay_het_han", "chu": "ten_chu_the", "loai": "loai_hinh_chu_the",
    "mst": "ma_so_thue", "xa": "xa_phuong", "tmdt": "len_san_tmdt", "lang": "lang_nghe",
    "taphuan": "chu_the_da_tap_huan", "kenh": "kenh_hien_dai", "ghichu": "ghi_chu", "dt": None,  # phone: unknown
}
SALES_CANONICAL = {"stt": "stt", "ten": "ten_diem_ban", "diachi": "dia_chi", "xa": "xa_phuong",
                   "ht": "hinh_thuc", "ngay": "ngay_hoat_dong", "ghichu": "ghi_chu"}


@dataclass(frozen=True)
class Layout:
    files: dict[str, str]                      # period -> file name
    products_sheet: str
    sales_sheet: str
    columns: tuple[tuple[str, str], ...]       # (canonical key, header as written)
    sales_columns: tuple[tuple[str, str], ...]
    no_sales_sheet_in: tuple[str, ...] = ()    # periods without a sales-points sheet
    instructions_in: tuple[str, ...] = ()      # periods with a "Huong dan" sheet first
    title_rows: int = 5                        # rows above the header row (4..7)
    stars: str = "int"      # int | sao ("3 sao") | star ("3*") | black ("★★★")
    score: str = "num"      # num | comma (text "62,5")
    dates: str = "date"     # date (real Excel date) | serial (plain number) | dmy ("22/3/2024") |
    #                         dmy0 ("22-03-2024") | iso ("2024-03-22") | mixed (real dates and "22/3/2024")
    flags: str = "cokhong"  # cokhong (Có/Không) | x (x/blank) | coblank (Có/blank)
    owner_types: str = "full"   # full | abbr (Cty TNHH, Cty CP, DNTN, HTX, HKD, Cơ sở) | short (DN, HTX, Hộ, Cơ sở)
    groups: str = "2023"        # 2023 | 2019 | short | upper (2023 names in capitals)
    nfd: bool = False           # every text cell in Unicode NFD
    owner_case_variants: bool = False  # one owner's name in different case/spacing on different rows
    decision_spaces: bool = False      # " 1425 / QĐ-UBND"
    code_spaces: bool = False          # stray spaces around a few product codes
    tax_as_number: bool = False        # tax numbers typed as numbers
    wrapped_headers: bool = False      # line breaks inside header cells
    zero_padded_period: bool = False   # "Kỳ báo cáo: tháng 06/2024"
    totals_col: int = 1
    sales_type_text: tuple[str, str] = ("Nhà nước hỗ trợ", "Xã hội hóa")


def _cols(spec: str) -> tuple[tuple[str, str], ...]:
    """'stt=STT|ma=Mã sản phẩm|…' -> ((key, header), …)"""
    out = []
    for part in spec.split("|"):
        key, header = part.split("=", 1)
        out.append((key.strip(), header.strip()))
    return tuple(out)


STANDARD = ("stt=STT|ma=Mã sản phẩm|ten=Tên sản phẩm|nhom=Nhóm sản phẩm|sao=Hạng sao|diem=Điểm|"
            "qd=Số quyết định|ngay=Ngày công nhận|het=Ngày hết hạn|cap=Cấp công nhận|ht=Hình thức|"
            "tn5=Tiềm năng 5 sao|chu=Tên chủ thể|loai=Loại hình chủ thể|mst=Mã số thuế|xa=Xã/phường|"
            "tmdt=Lên sàn TMĐT|lang=Làng nghề|taphuan=Chủ thể đã tập huấn|kenh=Kênh hiện đại|ghichu=Ghi chú")
SALES_STANDARD = "stt=STT|ten=Tên điểm bán|diachi=Địa chỉ|xa=Xã/phường|ht=Hình thức|ngay=Ngày hoạt động|ghichu=Ghi chú"

LAYOUTS: dict[str, Layout] = {
    "522": Layout(
        files={"2024-06": "Bao cao OCOP thang 6.2024 - TP Quang Ngai.xlsx",
               "2024-12": "Bao cao OCOP thang 12.2024 - TP Quang Ngai.xlsx"},
        products_sheet="San pham OCOP", sales_sheet="Diem ban",
        columns=_cols(STANDARD), sales_columns=_cols(SALES_STANDARD), title_rows=5),
    "524": Layout(
        files={"2024-06": "BC OCOP T6-2024 Binh Son.xlsx", "2024-12": "BC OCOP T12-2024 Binh Son.xlsx"},
        products_sheet="DS OCOP", sales_sheet="Diem gioi thieu SP",
        columns=_cols("stt=Số TT|ma=Mã SP|ten=Tên sản phẩm OCOP|nhom=Nhóm|sao=Số sao|diem=Điểm đánh giá|"
                      "qd=Số QĐ|ngay=Ngày QĐ|het=Hết hạn|cap=Cấp|ht=Hình thức công nhận|tn5=Đề xuất 5 sao|"
                      "chu=Chủ thể|loai=Loại hình|mst=MST|xa=Xã|dt=Số điện thoại|tmdt=Sàn TMĐT|lang=Làng nghề|"
                      "taphuan=Đã tập huấn|kenh=Siêu thị|ghichu=Ghi chú"),
        sales_columns=_cols("stt=Số TT|ten=Tên điểm giới thiệu và bán sản phẩm|diachi=Địa chỉ|xa=Xã|"
                            "ht=Nguồn vốn|ngay=Ngày khai trương"),
        title_rows=6, stars="sao", score="comma", dates="dmy", flags="x", owner_types="abbr",
        owner_case_variants=True, totals_col=2),
    "525": Layout(
        files={"2024-06": "OCOP_TraBong_T6_2024.xlsx", "2024-12": "OCOP_TraBong_T12_2024.xlsx"},
        products_sheet="Sản phẩm", sales_sheet="Điểm bán",
        columns=_cols("stt=STT|ma=Mã OCOP|ten=Tên SP|nhom=Nhóm SP|sao=Hạng sao|diem=Tổng điểm|qd=Quyết định|"
                      "ngay=Ngày ký QĐ|het=Hiệu lực đến|cap=Cấp đánh giá|ht=Loại công nhận|tn5=Tiềm năng 5 sao|"
                      "chu=Tên chủ thể OCOP|loai=Loại hình tổ chức|mst=Mã số thuế|xa=Xã, phường, thị trấn|"
                      "tmdt=TMĐT|lang=Sản phẩm làng nghề|taphuan=Tập huấn|kenh=Kênh hiện đại|ghichu=Ghi chú"),
        sales_columns=_cols("stt=STT|ten=Tên cửa hàng|diachi=Địa chỉ|xa=Xã|ht=Hình thức đầu tư|"
                            "ngay=Ngày đưa vào hoạt động|ghichu=Ghi chú"),
        title_rows=4, stars="star", dates="serial"),
    "527": Layout(
        files={"2024-06": "Son Tinh - DS OCOP thang 06-2024.xlsx", "2024-12": "Son Tinh - DS OCOP thang 12-2024.xlsx"},
        products_sheet="DS san pham", sales_sheet="Diem ban OCOP",
        columns=_cols("stt=STT|chu=Tên chủ thể|loai=Loại hình chủ thể|mst=Mã số thuế|xa=Xã/phường|"
                      "ma=Mã sản phẩm|ten=Tên sản phẩm|nhom=Nhóm sản phẩm|sao=Hạng sao|diem=Điểm|"
                      "qd=Số quyết định|ngay=Ngày quyết định|het=Ngày hết hiệu lực|cap=Cấp công nhận|"
                      "ht=Hình thức|tn5=Tiềm năng 5 sao|tmdt=Lên sàn thương mại điện tử|lang=Làng nghề|"
                      "taphuan=Chủ thể đã tập huấn|kenh=Kênh hiện đại|ghichu=Ghi chú"),
        sales_columns=_cols("stt=STT|ten=Tên điểm bán OCOP|diachi=Địa chỉ|xa=Xã/phường|ht=Hình thức|"
                            "ngay=Ngày hoạt động"),
        title_rows=5, stars="black", dates="dmy0", flags="coblank", nfd=True, zero_padded_period=True),
    "528": Layout(
        files={"2024-06": "TuNghia_BaoCao_OCOP_2024-06.xlsx", "2024-12": "TuNghia_BaoCao_OCOP_2024-12.xlsx"},
        products_sheet="SP OCOP", sales_sheet="Diem ban",
        columns=_cols("stt=STT|ma=Mã sản phẩm|ten=Tên sản phẩm|nhom=Nhóm sản phẩm|sao=Hạng sao|"
                      "diem=Điểm trung bình|qd=Số quyết định công nhận|ngay=Ngày công nhận|het=Ngày hết hạn|"
                      "cap=Cấp công nhận|ht=Hình thức|tn5=Tiềm năng 5 sao|chu=Chủ thể OCOP|loai=Loại chủ thể|"
                      "mst=Mã số thuế|xa=Xã/phường|tmdt=Lên sàn TMĐT|lang=Sản phẩm làng nghề|"
                      "taphuan=Chủ thể đã tập huấn|kenh=Bán qua kênh hiện đại|ghichu=Ghi chú"),
        sales_columns=_cols("stt=STT|ten=Điểm bán|diachi=Địa chỉ|xa=Xã/phường|ht=Nguồn vốn|ngay=Ngày khai trương|"
                            "ghichu=Ghi chú"),
        instructions_in=("2024-06", "2024-12"), title_rows=7, score="comma", flags="x", owner_types="abbr",
        groups="short", tax_as_number=True, wrapped_headers=True, sales_type_text=("Nhà nước hỗ trợ", "Xã hội hoá")),
    "529": Layout(
        files={"2024-06": "DS san pham OCOP Son Ha 6-2024.xlsx", "2024-12": "DS san pham OCOP Son Ha 12-2024.xlsx"},
        products_sheet="Sản phẩm OCOP", sales_sheet="Điểm giới thiệu SP",
        columns=_cols("stt=STT|ma=Mã sản phẩm OCOP|ten=Tên sản phẩm|nhom=Bộ nhóm|sao=Xếp hạng|diem=Điểm số|"
                      "qd=Số quyết định|ngay=Ngày ký|het=Thời hạn|cap=Cấp công nhận|ht=Hình thức|"
                      "tn5=Tiềm năng 5 sao|chu=Tên đơn vị|loai=Loại hình chủ thể|mst=Mã số doanh nghiệp|xa=Xã|"
                      "tmdt=TMĐT|lang=Làng nghề|taphuan=Tập huấn|kenh=Kênh hiện đại|ghichu=Ghi chú"),
        sales_columns=_cols("stt=STT|ten=Tên điểm bán|diachi=Địa chỉ|xa=Xã|ht=Hình thức|ngay=Ngày hoạt động"),
        title_rows=5, stars="sao", groups="2019"),
    "530": Layout(
        files={"2024-06": "Son Tay_OCOP_T6.2024.xlsx", "2024-12": "Son Tay_OCOP_T12.2024 (ban sua).xlsx"},
        products_sheet="San pham", sales_sheet="Diem ban",
        columns=_cols("stt=Số thứ tự|ma=Mã số sản phẩm|ten=Tên sản phẩm|nhom=Nhóm sản phẩm|sao=Hạng sao|"
                      "diem=Điểm đánh giá|qd=Số QĐ|ngay=Ngày QĐ|het=Ngày hết hạn|ht=Hình thức|chu=Chủ thể|"
                      "loai=Loại hình|mst=MST|xa=Xã|tmdt=Lên sàn TMĐT|taphuan=Đã tập huấn|kenh=Kênh hiện đại|"
                      "ghichu=Ghi chú"),
        sales_columns=_cols(SALES_STANDARD), title_rows=4, dates="dmy", owner_types="short", groups="2019"),
    "531": Layout(
        files={"2024-06": "MINH LONG - OCOP 06 2024.xlsx", "2024-12": "MINH LONG - OCOP 12 2024.xlsx"},
        products_sheet="Danh sach OCOP", sales_sheet="Diem ban",
        columns=_cols("stt=STT|ma=Mã sản phẩm|ten=Tên sản phẩm|nhom=Nhóm|sao=Hạng sao (sao)|diem=Điểm|"
                      "qd=Số quyết định|ngay=Ngày công nhận|cap=Cấp|ht=Hình thức|tn5=Tiềm năng 5 sao|"
                      "chu=Tên chủ thể|loai=Loại hình chủ thể|mst=Mã số thuế|xa=Xã|tmdt=Lên sàn TMĐT|"
                      "lang=Làng nghề|taphuan=Chủ thể đã tập huấn|kenh=Kênh hiện đại|ghichu=Ghi chú"),
        sales_columns=_cols(SALES_STANDARD), title_rows=6, stars="star", score="comma", dates="serial",
        zero_padded_period=True),
    "532": Layout(
        files={"2024-06": "Bao cao san pham OCOP Nghia Hanh T6 nam 2024.xlsx",
               "2024-12": "Bao cao san pham OCOP Nghia Hanh T12 nam 2024.xlsx"},
        products_sheet="DS OCOP", sales_sheet="Điểm bán",
        columns=_cols("stt=STT|ma=Mã SP|ten=Tên sản phẩm|nhom=Nhóm ngành|sao=Hạng sao|diem=Điểm|"
                      "qd=QĐ công nhận|ngay=Ngày công nhận|het=Ngày hết hạn|cap=Cấp công nhận|ht=Hình thức|"
                      "tn5=Tiềm năng 5 sao|chu=Tên đơn vị|loai=Loại hình|mst=Mã số thuế|xa=Xã/phường|"
                      "dt=Số điện thoại|tmdt=Thương mại điện tử|lang=Làng nghề|taphuan=Chủ thể đã tập huấn|"
                      "kenh=Siêu thị, cửa hàng tiện lợi|ghichu=Ghi chú"),
        sales_columns=_cols("stt=STT|ten=Tên cửa hàng|diachi=Địa chỉ|xa=Xã|ht=Hình thức|ngay=Ngày khai trương"),
        title_rows=5, dates="iso", flags="coblank", owner_types="short"),
    "533": Layout(
        files={"2024-06": "BC_OCOP_MoDuc_thang6_2024.xlsx", "2024-12": "BC_OCOP_MoDuc_thang12_2024.xlsx"},
        products_sheet="San pham OCOP", sales_sheet="Diem gioi thieu",
        columns=_cols("stt=STT|ma=Mã sản phẩm|ten=Tên sản phẩm|nhom=Nhóm sản phẩm|sao=Kết quả xếp hạng|"
                      "diem=Điểm|qd=Số quyết định|ngay=Ngày công nhận|het=Ngày hết hạn|cap=Cấp công nhận|"
                      "ht=Hình thức|tn5=Tiềm năng 5 sao|chu=Tên chủ thể|loai=Loại hình chủ thể|mst=Mã số thuế|"
                      "xa=Địa bàn|tmdt=Lên sàn TMĐT|lang=Làng nghề|taphuan=Chủ thể đã tập huấn|"
                      "kenh=Kênh hiện đại|ghichu=Ghi chú"),
        sales_columns=_cols("stt=STT|ten=Tên điểm giới thiệu và bán sản phẩm|diachi=Địa chỉ|xa=Xã/phường|"
                            "ht=Hình thức đầu tư|ngay=Ngày hoạt động"),
        no_sales_sheet_in=("2024-12",), title_rows=6, stars="sao"),
    "534": Layout(
        files={"2024-06": "Duc Pho - bao cao OCOP 6-2024.xlsx", "2024-12": "Duc Pho - bao cao OCOP 12-2024.xlsx"},
        products_sheet="Sản phẩm OCOP", sales_sheet="Điểm giới thiệu SP",
        columns=_cols("stt=STT|ma=Mã sản phẩm|ten=Tên sản phẩm|nhom=Nhóm sản phẩm|sao=Hạng|diem=Điểm|qd=Số QĐ|"
                      "ngay=Ngày QĐ|het=Ngày hết hạn|cap=Cấp|ht=Hình thức|tn5=Tiềm năng 5 sao|chu=Tên chủ thể|"
                      "loai=Loại hình chủ thể|mst=MST|xa=Xã/phường|tmdt=Lên sàn TMĐT|lang=Làng nghề|"
                      "taphuan=Chủ thể đã tập huấn|kenh=Kênh hiện đại|ghichu=Ghi chú"),
        sales_columns=_cols(SALES_STANDARD), title_rows=7, stars="black", dates="dmy", decision_spaces=True),
    "535": Layout(
        files={"2024-06": "OCOP Ba To T6-2024.xlsx", "2024-12": "OCOP Ba To T12-2024 final.xlsx"},
        products_sheet="DS san pham OCOP", sales_sheet="Diem ban",
        columns=_cols("stt=STT|ma=Mã sản phẩm|ten=Tên sản phẩm|nhom=Nhóm sản phẩm|sao=Hạng sao|diem=Điểm|"
                      "qd=Số quyết định|ngay=Ngày công nhận|het=Ngày hết hạn|cap=Cấp công nhận|"
                      "ht=Hình thức công nhận|tn5=Tiềm năng 5 sao|chu=Chủ thể|loai=Loại hình chủ thể|"
                      "mst=Mã số thuế|xa=Xã|tmdt=Lên sàn TMĐT|lang=Làng nghề|taphuan=Chủ thể đã tập huấn|"
                      "kenh=Kênh hiện đại|ghichu=Ghi chú"),
        sales_columns=_cols("stt=STT|ten=Tên điểm bán|diachi=Địa chỉ|xa=Xã|ht=Nguồn vốn|ngay=Ngày đưa vào hoạt động"),
        title_rows=5, score="comma", flags="x", owner_types="abbr", groups="upper"),
    "536": Layout(
        files={"2024-06": "DS san pham OCOP Ly Son T6-2024.xlsx", "2024-12": "DS san pham OCOP Ly Son T12-2024.xlsx"},
        products_sheet="San pham OCOP", sales_sheet="Diem ban",
        columns=_cols("stt=STT|ma=Mã sản phẩm|ten=Tên sản phẩm|nhom=Nhóm sản phẩm|sao=Hạng sao|diem=Điểm|"
                      "qd=Số quyết định|ngay=Ngày công nhận|het=Hết hạn|cap=Cấp công nhận|ht=Hình thức|"
                      "tn5=Tiềm năng 5 sao|chu=Tên chủ thể|loai=Loại hình|mst=Mã số thuế|xa=Xã|tmdt=Lên sàn TMĐT|"
                      "lang=Làng nghề|taphuan=Chủ thể đã tập huấn|kenh=Kênh hiện đại|ghichu=Ghi chú"),
        sales_columns=_cols(SALES_STANDARD), title_rows=6, dates="mixed", owner_types="short", groups="2019",
        code_spaces=True),
}

# ================================================================================================
# Model
# ================================================================================================


@dataclass
class Owner:
    key: str
    district: str
    kind: str            # doanh_nghiep | hop_tac_xa | to_hop_tac | ho_kinh_doanh
    name: str
    tax: str | None
    commune: str
    trained: bool = True
    modern_channels: bool = False
    phone: str = ""


@dataclass
class Certificate:
    recognised: dt.date
    stars: int
    score: float
    decision: str
    level: str           # huyen | tinh
    kind: str            # moi | cong_nhan_lai | nang_hang
    potential_5: bool = False

    @property
    def expires(self) -> dt.date:
        return add_months(self.recognised, 36)

    def valid_on(self, day: dt.date) -> bool:
        return self.recognised <= day < self.expires


@dataclass
class Product:
    district: str
    index: int           # position in PRODUCTS[district]
    name: str
    group: str
    owner: Owner
    role: str
    craft_village: bool
    certs: list[Certificate] = field(default_factory=list)   # oldest first
    code: str = ""
    flag_mismatch: bool = False   # the district's len_san_tmdt flag disagrees with the catalogue

    def cert_as_of(self, day: dt.date) -> Certificate | None:
        known = [c for c in self.certs if c.recognised <= day]
        return known[-1] if known else None

    def valid_cert(self, day: dt.date) -> Certificate | None:
        valid = [c for c in self.certs if c.valid_on(day)]
        return max(valid, key=lambda c: c.recognised) if valid else None


@dataclass
class Listing:
    listing_id: str
    sku: str
    ma_san_pham: str
    title: str
    price_vnd: int
    status: str          # active | delisted | draft
    listed_at: dt.datetime
    updated_at: dt.datetime
    popularity: float = 1.0

    def live_on(self, day: dt.date) -> bool:
        """docs/raw-contract.md: listed on or before D and not delisted by D; drafts never."""
        if self.status == "draft" or self.listed_at.date() > day:
            return False
        return not (self.status == "delisted" and self.updated_at.date() <= day)


@dataclass
class SalesPoint:
    district: str
    name: str
    address: str
    commune: str
    state_supported: bool
    opened: dt.date
    note: str | None


@dataclass
class Model:
    owners: dict[str, Owner]
    products: list[Product]
    listings: list[Listing]
    sales_points: list[SalesPoint]

    def district_products(self, district: str) -> list[Product]:
        return sorted((p for p in self.products if p.district == district), key=lambda p: p.code)

    def on_platform(self, code: str, day: dt.date) -> bool:
        """The product has a listing live on `day` (docs/raw-contract.md listing rule)."""
        return any(l.live_on(day) for l in self.listings if l.ma_san_pham == code)


def _random_day(rng: random.Random, lo: dt.date, hi: dt.date) -> dt.date:
    """A day in [lo, hi] (just lo when hi < lo), on day-of-month <= 28 where the range allows."""
    hi = max(lo, hi)
    while True:
        day = lo + dt.timedelta(days=rng.randint(0, (hi - lo).days))
        if day.day <= 28 or (hi - lo).days < 7:
            return day


def _district_decision(rng: random.Random, day: dt.date) -> str:
    # district decisions are numbered through the year, roughly 200 a month
    return f"{rng.randint(max(1, (day.month - 1) * 200), day.month * 200 + 40)}/QĐ-UBND"


def _score(rng: random.Random, stars: int, high: bool = False) -> float:
    if stars == 3:
        lo, hi, mode = (62.0, 68.75, 66.0) if high else (50.5, 68.75, 60.0)
    else:
        lo, hi, mode = 70.5, 86.5, 75.0
    return round(rng.triangular(lo, hi, mode) * 4) / 4


def _build_owners(rng: random.Random) -> dict[str, Owner]:
    owners: dict[str, Owner] = {}
    taxes: set[str] = set()
    branches = []
    for district, rows in OWNERS.items():
        for key, kind, name, tax, commune in rows:
            number = None
            if tax is True:
                while number is None or number in taxes:
                    number = f"43{rng.randint(0, 99_999_999):08d}"
                taxes.add(number)
            elif isinstance(tax, str):
                branches.append((key, tax.split(":", 1)[1]))
            owner = Owner(key, district, OWNER_KINDS[kind], name, number, commune)
            owner.trained = rng.random() < 0.93
            owner.modern_channels = rng.random() < {"doanh_nghiep": 0.85, "hop_tac_xa": 0.6}.get(owner.kind, 0.4)
            owner.phone = rng.choice(["0905", "0935", "0914", "0982", "0255"]) + f"{rng.randint(0, 999_999):06d}"
            owners[key] = owner
    for key, parent in branches:
        owners[key].tax = f"{owners[parent].tax}-001"
    return owners


def _build_products(rng: random.Random, owners: dict[str, Owner]) -> list[Product]:
    products = [Product(d, i, name, group, owners[owner], role, name in CRAFT_VILLAGE)
                for d, rows in PRODUCTS.items() for i, (name, group, owner, role) in enumerate(rows)]

    batches: dict[tuple[str, str], tuple[dt.date, str]] = {}

    def batch(district: str, key: str) -> tuple[dt.date, str]:
        """One district decision recognises several products on the same day."""
        if (district, key) not in batches:
            day = _random_day(rng, *BATCH_RANGES[key])
            if key == "2021-late" and not any(k == "2021-late" for _, k in batches):
                day = BATCH_RANGES[key][0]  # the first: recognised 2021-12-21, expires 2024-12-21 (valid)
            batches[(district, key)] = (day, _district_decision(rng, day))
        return batches[(district, key)]

    def plain_kind(year: str) -> str:
        return "cong_nhan_lai" if year in ("2022", "2023") and rng.random() < 0.1 else "moi"

    plain_years = list(PLAIN_YEARS)
    rng.shuffle(plain_years)
    expired_classes = list(EXPIRED_CLASSES)
    rng.shuffle(expired_classes)
    four_star = [p for p in products if p.role == "4"]
    four_decisions = [PROVINCE_4STAR_DECISIONS[i % len(PROVINCE_4STAR_DECISIONS)] for i in range(len(four_star))]
    rng.shuffle(four_decisions)
    upgrades = 0
    for p in products:
        if p.role == "":
            year = plain_years.pop()
            key = year if year != "2024" else rng.choice(["2024-a", "2024-b"])
            day, decision = batch(p.district, key)
            p.certs.append(Certificate(day, 3, _score(rng, 3), decision, "huyen", plain_kind(year)))
        elif p.role == "4":
            day, decision = four_decisions.pop()
            p.certs.append(Certificate(day, 4, _score(rng, 4), decision, "tinh", "moi"))
        elif p.role == "up":
            day, decision = batch(p.district, "up-old")
            p.certs.append(Certificate(day, 3, _score(rng, 3, high=True), decision, "huyen", "moi"))
            day, decision = PROVINCE_2024_DECISIONS[upgrades % 2]
            upgrades += 1
            p.certs.append(Certificate(day, 4, _score(rng, 4), decision, "tinh", "nang_hang"))
        elif p.role == "tn5":
            day, decision = PROVINCE_2024_DECISIONS[1]
            score = rng.choice([90.25, 90.5, 90.75, 91.0, 91.25, 91.5])
            p.certs.append(Certificate(day, 4, score, decision, "tinh", "moi", potential_5=True))
        elif p.role == "ren":
            day, decision = batch(p.district, "ren-old")
            p.certs.append(Certificate(day, 3, _score(rng, 3), decision, "huyen", "moi"))
            renewed = add_months(day, 36) + dt.timedelta(days=rng.randint(-45, 30))
            renewed = min(max(renewed, dt.date(2024, 7, 1)), dt.date(2024, 12, 13))
            if renewed.day > 28:
                renewed = renewed.replace(day=28)
            p.certs.append(Certificate(renewed, 3, _score(rng, 3), _district_decision(rng, renewed), "huyen",
                                       "cong_nhan_lai"))
        elif p.role == "exp":
            day, decision = batch(p.district, expired_classes.pop())
            p.certs.append(Certificate(day, 3, _score(rng, 3), decision, "huyen", "moi"))
        elif p.role == "fut":
            day, decision = batch(p.district, "fut")
            p.certs.append(Certificate(day, 3, _score(rng, 3), decision, "huyen", "moi"))
        else:
            raise ValueError(f"unknown role {p.role!r} for {p.name}")
    assert not plain_years and not expired_classes and not four_decisions, "role counts do not match the tables"

    # province product codes: numbered per district in order of first recognition
    for district in PRODUCTS:
        mine = sorted((p for p in products if p.district == district), key=lambda p: (p.certs[0].recognised, p.index))
        for seq, p in enumerate(mine, start=1):
            p.code = f"QNg-{district}-{seq:03d}"
    return products


def _sizes_for(p: Product) -> list[str]:
    n = p.name.lower()
    if p.group == "V":
        return ["CHAU"]
    if p.group in ("IV", "IVt"):
        return ["CAI", "BO"]
    if "tinh dầu" in n or "dầu xoa" in n:
        return ["10ML", "50ML", "100ML"]
    if n.startswith(("nước", "rượu")) or "nước mắm" in n:
        return ["500ML", "750ML", "1L"]
    if n.startswith(("trà", "chè")) or "túi lọc" in n:
        return ["100G", "HOP25", "200G"]
    if "yến" in n or "đông trùng" in n or "sâm" in n:
        return ["HOP", "100G"]
    return ["200G", "500G", "1KG"]


def _at(day: dt.date, rng: random.Random, lo_hour: int = 8, hi_hour: int = 20) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, rng.randint(lo_hour, hi_hour), rng.randint(0, 59),
                       rng.randint(0, 59), tzinfo=TZ)


def _build_listings(rng: random.Random, products: list[Product]) -> list[Listing]:
    """Catalogue: 130 valid products live on the as-of date, plus listings that must not count."""
    valid = [p for p in products if p.valid_cert(AS_OF)]
    sellable = [p for p in valid if p.group != "VI"]  # tourism services are not sold on the platform
    weight = {"doanh_nghiep": 3.0, "hop_tac_xa": 2.0}
    pool = list(sellable)
    live: list[Product] = []
    while len(live) < REPORTED_FIGURES["products_on_ecommerce"]:
        total = sum(weight.get(p.owner.kind, 1.2) for p in pool)
        r, acc = rng.random() * total, 0.0
        for i, p in enumerate(pool):
            acc += weight.get(p.owner.kind, 1.2)
            if acc >= r:
                live.append(pool.pop(i))
                break
    live.sort(key=lambda p: p.code)
    not_live = sorted(pool, key=lambda p: p.code)
    rng.shuffle(not_live)
    delisted_before, drafts, listed_after = not_live[:10], not_live[10:15], not_live[15:19]

    raw: list[dict] = []  # listing fields without listing_id; ids are given in listed_at order

    used: set[str] = set()

    def add(p: Product, size: str, status: str, listed: dt.datetime, updated: dt.datetime) -> None:
        if f"SKU-{p.code}-{size}" in used:  # one SKU per listing: take the product's next free size
            free = [s for s in _sizes_for(p) + ["HOP", "1KG"] if f"SKU-{p.code}-{s}" not in used]
            size = free[0]
        used.add(f"SKU-{p.code}-{size}")
        label, lo, hi = SIZES[size]
        raw.append(dict(sku=f"SKU-{p.code}-{size}", ma_san_pham=p.code, title=f"{p.name} - {label}",
                        price_vnd=rng.randint(lo, hi) * 1000, status=status, listed_at=listed,
                        updated_at=max(updated, listed), popularity=rng.lognormvariate(0, 0.8)))

    def first_listing_day(p: Product, latest: dt.date) -> dt.date:
        day = p.certs[0].recognised + dt.timedelta(days=rng.randint(15, 150))
        if day < dt.date(2022, 1, 10):  # the platform opened in January 2022
            day = _random_day(rng, dt.date(2022, 1, 10), dt.date(2022, 9, 30))
        return min(day, latest)

    last_live_day = AS_OF - dt.timedelta(days=2)
    live_shuffled = list(live)
    rng.shuffle(live_shuffled)
    delisted_after_as_of = {p.code for p in live_shuffled[:2]}   # delisted 2024-12-21..23: still live on D
    relisted = {p.code for p in live_shuffled[2:10]}             # an older, delisted size as well
    for p in live:
        sizes = _sizes_for(p)
        listed = _at(first_listing_day(p, last_live_day), rng)
        if p.code in delisted_after_as_of:
            add(p, sizes[0], "delisted", listed, _at(AS_OF + dt.timedelta(days=rng.randint(1, 3)), rng))
            continue
        updated = _at(min(listed.date() + dt.timedelta(days=rng.randint(0, 300)), last_live_day), rng)
        add(p, sizes[0], "active", listed, updated)
        if len(sizes) > 1 and rng.random() < 0.3:
            second = _at(min(listed.date() + dt.timedelta(days=rng.randint(30, 400)), last_live_day), rng)
            add(p, sizes[1], "active", second, second)
        if p.code in relisted and len(sizes) > 1:
            old = _at(_random_day(rng, dt.date(2022, 2, 1), dt.date(2023, 3, 31)), rng)
            gone = _at(_random_day(rng, old.date() + dt.timedelta(days=60), dt.date(2024, 6, 28)), rng)
            add(p, sizes[-1], "delisted", old, gone)
    for p in delisted_before:
        listed = _at(_random_day(rng, max(p.certs[0].recognised, dt.date(2022, 3, 1)), dt.date(2024, 10, 15)), rng)
        gone = _at(_random_day(rng, listed.date() + dt.timedelta(days=45), dt.date(2024, 12, 10)), rng)
        add(p, _sizes_for(p)[0], "delisted", listed, gone)
    for p in drafts:
        created = _at(_random_day(rng, dt.date(2024, 5, 1), dt.date(2024, 12, 15)), rng)
        add(p, _sizes_for(p)[0], "draft", created, created)
    for p in listed_after:
        listed = _at(_random_day(rng, dt.date(2024, 12, 22), dt.date(2024, 12, 27)), rng)
        add(p, _sizes_for(p)[0], "active", listed, listed)
    # the district flag disagrees with the catalogue for four valid products (a warning)
    for p in [live_shuffled[10], live_shuffled[11], drafts[0], listed_after[0]]:
        p.flag_mismatch = True

    # expired products: some still listed (does not count: not valid), some delisted after expiry
    expired = [p for p in products if p.role == "exp"]
    for i, p in enumerate(expired[:12]):
        listed = _at(_random_day(rng, dt.date(2022, 1, 10), min(p.certs[-1].expires, dt.date(2023, 6, 30))), rng)
        if i % 2:
            add(p, _sizes_for(p)[0], "active", listed, listed)
        else:
            gone = _at(_random_day(rng, max(p.certs[-1].expires, listed.date() + dt.timedelta(days=30)),
                                   dt.date(2024, 12, 10)), rng)
            add(p, _sizes_for(p)[0], "delisted", listed, gone)
    # not yet valid products: one already on sale before its certificate, one listed after D
    future = [p for p in products if p.role == "fut"]
    add(future[0], _sizes_for(future[0])[0], "active", _at(dt.date(2024, 12, 12), rng), _at(dt.date(2024, 12, 12), rng))
    add(future[1], _sizes_for(future[1])[0], "active", _at(dt.date(2024, 12, 26), rng), _at(dt.date(2024, 12, 26), rng))

    raw.sort(key=lambda r: (r["listed_at"], r["sku"]))
    return [Listing(listing_id=f"L{101 + i:06d}", **r) for i, r in enumerate(raw)]


def build_model(rng: random.Random | None = None) -> Model:
    rng = rng or random.Random(SEED)
    owners = _build_owners(rng)
    products = _build_products(rng, owners)
    listings = _build_listings(rng, products)
    sales_points = [SalesPoint(*row) for row in SALES_POINTS]
    return Model(owners, products, listings, sales_points)


# ================================================================================================
# What a submission says (rows as written, in canonical form) and the figures
# ================================================================================================


@dataclass
class ProductRow:
    product: Product
    cert: Certificate
    on_platform_flag: bool
    note: str | None


def submission_rows(model: Model, district: str, period: str) -> list[ProductRow]:
    """Products of a district's workbook for a period: each once, with its newest certificate."""
    end = PERIOD_END[period]
    check_day = min(end, AS_OF)  # the district checks the platform on the day it reports
    rows = []
    for p in model.district_products(district):
        cert = p.cert_as_of(end)
        if cert is None:
            continue
        flag = model.on_platform(p.code, check_day)
        if period == "2024-12" and p.flag_mismatch:
            flag = not flag
        expired_by = end if period == "2024-06" else AS_OF
        if cert.expires <= expired_by:
            note = "Hết hạn"
        elif cert.potential_5:
            note = "Đề xuất Trung ương đánh giá 5 sao"
        elif cert.kind == "nang_hang":
            note = "Nâng hạng từ 3 sao lên 4 sao"
        elif cert.kind == "cong_nhan_lai" and len(p.certs) > 1:
            note = "Công nhận lại"
        elif cert.recognised > AS_OF:
            note = "Mới công nhận"
        else:
            note = None
        rows.append(ProductRow(p, cert, flag, note))
    return rows


def sales_point_rows(model: Model, district: str, period: str) -> list[SalesPoint] | None:
    """Sales points in a district's workbook; None when the workbook has no sales-points sheet."""
    if period in LAYOUTS[district].no_sales_sheet_in:
        return None
    return [s for s in model.sales_points if s.district == district and s.opened <= PERIOD_END[period]]


def fold(text: str) -> str:
    """Accent-, case- and space-insensitive key (owner names)."""
    text = unicodedata.normalize("NFD", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn").replace("đ", "d").replace("Đ", "D")
    return re.sub(r"\s+", " ", text.lower()).strip()


def compute_figures(model: Model, as_of: dt.date) -> dict:
    """The KPI figures the marts must show for `as_of`, from the rows as the districts wrote them."""
    certs: dict[tuple[str, dt.date], Certificate] = {}
    for period in PERIODS:                       # older submissions first: the newest version wins
        for district in DISTRICTS:
            for row in submission_rows(model, district, period):
                certs[(row.product.code, row.cert.recognised)] = row.cert
    in_use = {row.product.code: row for d in DISTRICTS for row in submission_rows(model, d, PERIODS[-1])}
    stars: dict[str, int] = {}
    newest: dict[str, dt.date] = {}
    for (code, recognised), cert in certs.items():
        if cert.valid_on(as_of) and recognised >= newest.get(code, dt.date.min):
            newest[code], stars[code] = recognised, cert.stars
    owners: dict[tuple, str] = {}
    districts_with = set()
    for code in stars:
        owner = in_use[code].product.owner
        identity = ("tax", owner.tax) if owner.tax else ("name", owner.district, fold(owner.name))
        owners[identity] = owner.kind
        districts_with.add(owner.district)
    live = {l.ma_san_pham for l in model.listings if l.live_on(as_of)}
    points = []
    for district in DISTRICTS:
        for period in reversed(PERIODS):
            rows = sales_point_rows(model, district, period)
            if rows is not None:
                points += [s for s in rows if s.opened <= as_of]
                break
    kinds = list(owners.values())
    return {
        "valid_products": len(stars),
        "valid_products_3_star": sum(1 for s in stars.values() if s == 3),
        "valid_products_4_star": sum(1 for s in stars.values() if s == 4),
        "valid_products_5_star": sum(1 for s in stars.values() if s == 5),
        "districts_with_products": len(districts_with),
        "owners": len(owners),
        "owners_enterprise": kinds.count("doanh_nghiep"),
        "owners_cooperative": kinds.count("hop_tac_xa"),
        "owners_cooperative_group": kinds.count("to_hop_tac"),
        "owners_household": kinds.count("ho_kinh_doanh"),
        "products_on_ecommerce": len(live & set(stars)),
        "sales_points": len(points),
        "sales_points_state_supported": sum(1 for s in points if s.state_supported),
        "sales_points_private": sum(1 for s in points if not s.state_supported),
    }


def expected_figures(as_of: dt.date = AS_OF) -> dict:
    """Figures the published KPI mart must show for `as_of` on the demo inbox."""
    return compute_figures(build_model(random.Random(SEED)), as_of)


def check_model(model: Model) -> None:
    """Generation-time assertions: the reported figures and the rules that keep submissions clean."""
    figures = compute_figures(model, AS_OF)
    assert figures == REPORTED_FIGURES, {k: (v, REPORTED_FIGURES[k]) for k, v in figures.items()
                                         if v != REPORTED_FIGURES[k]}
    per_owner: dict[str, int] = {}
    for p in model.products:
        per_owner[p.owner.key] = per_owner.get(p.owner.key, 0) + 1
        for c in p.certs:
            band = (50, 70) if c.stars == 3 else (70, 90)
            assert band[0] <= c.score < band[1] or (c.potential_5 and 90 <= c.score <= 100), (p.name, c)
            assert c.level == ("huyen" if c.stars == 3 else "tinh"), (p.name, c)
    assert all(1 <= n <= 4 for n in per_owner.values()), per_owner
    assert set(per_owner) == set(model.owners), set(model.owners) - set(per_owner)
    codes = [p.code for p in model.products]
    assert len(codes) == len(set(codes))
    for district in DISTRICTS:
        for period in PERIODS:
            for row in submission_rows(model, district, period):
                assert row.cert.recognised <= PERIOD_END[period]


# ================================================================================================
# Workbooks
# ================================================================================================

THIN = Side(style="thin", color="808080")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
BOLD = Font(name="Times New Roman", bold=True, size=12)
TITLE = Font(name="Times New Roman", bold=True, size=14)
NORMAL = Font(name="Times New Roman", size=12)
ITALIC = Font(name="Times New Roman", italic=True, size=12)
CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)


def _excel_serial(day: dt.date) -> int:
    return (day - dt.date(1899, 12, 30)).days


class _Writer:
    """Writes one district workbook for one period, in that district's style."""

    def __init__(self, model: Model, district: str, period: str, rng: random.Random):
        self.model, self.district, self.period, self.rng = model, district, period, rng
        self.layout = LAYOUTS[district]
        self.name, self.unit, self.office = DISTRICTS[district]
        self.unit_kind = {"522": "thành phố", "534": "thị xã"}.get(district, "huyện")
        self.month = int(period[5:])
        self.staff = rng.sample(STAFF, 2)

    # ---- values ---------------------------------------------------------------------------------
    def text(self, value):
        if isinstance(value, str) and self.layout.nfd:
            return unicodedata.normalize("NFD", value)
        return value

    def date(self, day: dt.date | None, row_index: int = 0):
        style = self.layout.dates
        if day is None:
            return None
        if style == "mixed":
            style = "dmy" if row_index % 3 == 1 else "date"
        if style == "date":
            return day
        if style == "serial":
            return _excel_serial(day)
        if style == "dmy":
            return f"{day.day}/{day.month}/{day.year}"
        if style == "dmy0":
            return day.strftime("%d-%m-%Y")
        if style == "iso":
            return day.isoformat()
        raise ValueError(style)

    def stars(self, n: int):
        return {"int": n, "sao": f"{n} sao", "star": f"{n}*", "black": "★" * n}[self.layout.stars]

    def score(self, x: float):
        value = int(x) if float(x).is_integer() else x
        if self.layout.score == "comma":
            return str(value).replace(".", ",")
        return value

    def flag(self, yes: bool):
        style = self.layout.flags
        if style == "cokhong":
            return "Có" if yes else "Không"
        if style == "x":
            return "x" if yes else None
        return "Có" if yes else None

    def owner_type(self, owner: Owner) -> str:
        texts = OWNER_TYPE_TEXT[self.layout.owner_types]
        if owner.kind == "ho_kinh_doanh":
            return texts["co_so" if owner.name.startswith("Cơ sở") else "ho"]
        if owner.kind == "doanh_nghiep" and self.layout.owner_types == "abbr":
            if "TNHH" in owner.name:
                return "Cty TNHH"
            if "Cổ phần" in owner.name:
                return "Cty CP"
            if owner.name.startswith("Doanh nghiệp tư nhân"):
                return "DNTN"
        return texts[owner.kind]

    def owner_name(self, owner: Owner, occurrence: int) -> str:
        if self.layout.owner_case_variants and not owner.tax and occurrence:
            variants = [owner.name, owner.name.upper(), owner.name[0].lower() + owner.name[1:].replace(" ", "  ", 1)]
            return variants[occurrence % len(variants)]
        return owner.name

    def group(self, code: str) -> str:
        style = self.layout.groups
        if style == "upper":
            return GROUP_NAMES["2023"][code].upper()
        return GROUP_NAMES[style][code]

    def decision(self, text: str, row_index: int) -> str:
        if self.layout.decision_spaces and row_index % 2 == 0:
            number, rest = text.split("/", 1)
            return f" {number} / {rest}"
        return text

    def tax(self, number: str | None):
        if number and self.layout.tax_as_number and "-" not in number:
            return int(number)
        return number

    def code(self, code: str, row_index: int) -> str:
        if self.layout.code_spaces and row_index in (2, 7):
            return f"{code} "
        if self.layout.code_spaces and row_index == 11:
            return f" {code}"
        return code

    # ---- sheets ---------------------------------------------------------------------------------
    def period_line(self) -> str:
        month = f"{self.month:02d}" if self.layout.zero_padded_period else str(self.month)
        return f"Kỳ báo cáo: tháng {month}/2024"

    def place_date(self) -> str:
        day = 28 if self.month == 6 else 18
        return f"{self.name}, ngày {day} tháng {self.month} năm 2024"

    def title_block(self, ws, ncols: int, title: str, rows: int) -> int:
        """Writes the title block; returns the number of rows used."""
        right = max(ncols - 6, 5)
        layout = {4: ["unit", "office", "title", "period"],
                  5: ["unit", "office", "title", "period", None],
                  6: ["unit", "office", None, "title", "period", None],
                  7: ["unit", "office", "number", "title", "attached", "period", None]}[rows]
        for r, what in enumerate(layout, start=1):
            if what == "unit":
                self.put(ws, r, 1, self.unit, BOLD)
                self.put(ws, r, right, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", BOLD)
                ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=min(4, right - 1))
                ws.merge_cells(start_row=r, start_column=right, end_row=r, end_column=ncols)
            elif what == "office":
                self.put(ws, r, 1, self.office, BOLD)
                self.put(ws, r, right, "Độc lập - Tự do - Hạnh phúc", BOLD)
                ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=min(4, right - 1))
                ws.merge_cells(start_row=r, start_column=right, end_row=r, end_column=ncols)
            elif what == "number":
                self.put(ws, r, 1, f"Số: {self.rng.randint(80, 420)}/BC-PNN", NORMAL)
                self.put(ws, r, right, self.place_date(), ITALIC)
            elif what == "title":
                self.put(ws, r, 1, title, TITLE)
                ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=ncols)
            elif what == "attached":
                attached = f"(Kèm theo Báo cáo của {OFFICE_NAMES[self.office]} {self.unit_kind} {self.name})"
                self.put(ws, r, 1, attached, ITALIC)
                ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=ncols)
            elif what == "period":
                self.put(ws, r, 1, self.period_line(), ITALIC)
                ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=ncols)
        for r in range(1, len(layout) + 1):
            ws.cell(r, 1).alignment = CENTER
            ws.cell(r, right).alignment = CENTER
        return len(layout)

    def put(self, ws, row: int, col: int, value, font=None, number_format: str | None = None):
        cell = ws.cell(row=row, column=col, value=self.text(value))
        if font is not None:
            cell.font = font
        if number_format:
            cell.number_format = number_format
        return cell

    def header(self, ws, row: int, headers: list[str]) -> None:
        for c, h in enumerate(headers, start=1):
            if self.layout.wrapped_headers and len(h) > 12 and " " in h:
                words = h.split(" ")
                h = " ".join(words[:2]) + "\n" + " ".join(words[2:])
            cell = self.put(ws, row, c, h, BOLD)
            cell.alignment, cell.border = CENTER, BORDER

    def data_row(self, ws, row: int, values: list) -> None:
        for c, v in enumerate(values, start=1):
            cell = self.put(ws, row, c, v, NORMAL,
                            "dd/mm/yyyy" if isinstance(v, dt.date) else None)
            cell.border = BORDER

    def signatures(self, ws, row: int, ncols: int) -> None:
        right = max(ncols - 4, 4)
        self.put(ws, row, 2, "Người lập biểu", BOLD)
        self.put(ws, row, right, "TRƯỞNG PHÒNG", BOLD)
        self.put(ws, row + 1, 2, "(Ký, ghi rõ họ tên)", ITALIC)
        self.put(ws, row + 1, right, "(Ký tên, đóng dấu)", ITALIC)
        self.put(ws, row + 5, 2, self.staff[0], BOLD)
        self.put(ws, row + 5, right, self.staff[1], BOLD)

    def instructions(self, wb) -> None:
        ws = wb.create_sheet("Huong dan")
        lines = [
            "HƯỚNG DẪN NHẬP BIỂU MẪU DANH SÁCH SẢN PHẨM OCOP",
            "",
            "1. Mỗi sản phẩm ghi trên một dòng; mã sản phẩm do tỉnh cấp, không tự đặt mã.",
            "2. Ngày công nhận và ngày hết hạn ghi theo ngày/tháng/năm.",
            "3. Hạng sao ghi 3, 4 hoặc 5; điểm ghi theo kết quả chấm của Hội đồng đánh giá.",
            "4. Các cột có/không (lên sàn, làng nghề, tập huấn, kênh hiện đại) đánh dấu x nếu có.",
            "5. Sản phẩm hết hạn vẫn giữ trong danh sách, ghi chú 'Hết hạn'.",
            "6. Gửi báo cáo về Văn phòng Điều phối nông thôn mới tỉnh trước ngày 05 của tháng kế tiếp.",
        ]
        for r, line in enumerate(lines, start=1):
            self.put(ws, r, 1, line or None, BOLD if r == 1 else NORMAL)
        ws.column_dimensions["A"].width = 100

    def products_sheet(self, wb) -> int:
        layout = self.layout
        ws = wb.create_sheet(layout.products_sheet)
        keys = [k for k, _ in layout.columns]
        headers = [h for _, h in layout.columns]
        ncols = len(headers)
        title = "DANH SÁCH SẢN PHẨM OCOP ĐƯỢC CÔNG NHẬN"
        if self.district in ("524", "532", "535"):
            unit_words = self.unit.split(" ", 1)[1]  # "HUYỆN BÌNH SƠN"
            title += f" TRÊN ĐỊA BÀN {unit_words}"
        top = self.title_block(ws, ncols, title, layout.title_rows)
        header_row = top + 1
        self.header(ws, header_row, headers)
        rows = submission_rows(self.model, self.district, self.period)
        seen: dict[str, int] = {}
        for i, pr in enumerate(rows):
            p, c, o = pr.product, pr.cert, pr.product.owner
            occurrence = seen.get(o.key, 0)
            seen[o.key] = occurrence + 1
            values = {
                "stt": i + 1, "ma": self.code(p.code, i), "ten": p.name, "nhom": self.group(p.group),
                "sao": self.stars(c.stars), "diem": self.score(c.score), "qd": self.decision(c.decision, i),
                "cap": LEVEL_TEXT[c.level], "ht": KIND_TEXT[c.kind], "tn5": self.flag(c.potential_5),
                "ngay": self.date(c.recognised, i), "het": self.date(c.expires, i + 1),
                "chu": self.owner_name(o, occurrence), "loai": self.owner_type(o), "mst": self.tax(o.tax),
                "xa": o.commune, "tmdt": self.flag(pr.on_platform_flag), "lang": self.flag(p.craft_village),
                "taphuan": self.flag(o.trained), "kenh": self.flag(o.modern_channels), "ghichu": pr.note,
                "dt": o.phone,
            }
            self.data_row(ws, header_row + 1 + i, [values[k] for k in keys])
        end = header_row + len(rows)
        self.put(ws, end + 1, layout.totals_col, f"Tổng cộng: {len(rows)} sản phẩm", BOLD)
        ws.merge_cells(start_row=end + 1, start_column=layout.totals_col, end_row=end + 1,
                       end_column=layout.totals_col + 2)
        self.signatures(ws, end + 3, ncols)
        widths = {"stt": 6, "ma": 14, "ten": 34, "chu": 36, "nhom": 22, "xa": 16, "qd": 16, "ghichu": 24}
        for c, k in enumerate(keys, start=1):
            ws.column_dimensions[get_column_letter(c)].width = widths.get(k, 12)
        ws.freeze_panes = ws.cell(header_row + 1, 3)
        return len(rows)

    def sales_sheet(self, wb) -> int | None:
        points = sales_point_rows(self.model, self.district, self.period)
        if points is None:
            return None
        layout = self.layout
        ws = wb.create_sheet(layout.sales_sheet)
        keys = [k for k, _ in layout.sales_columns]
        headers = [h for _, h in layout.sales_columns]
        ncols = max(len(headers), 7)
        top = self.title_block(ws, ncols, "DANH SÁCH ĐIỂM GIỚI THIỆU VÀ BÁN SẢN PHẨM OCOP", 5)
        header_row = top + 1
        self.header(ws, header_row, headers)
        for i, s in enumerate(points):
            values = {"stt": i + 1, "ten": s.name, "diachi": s.address, "xa": s.commune,
                      "ht": layout.sales_type_text[0 if s.state_supported else 1],
                      "ngay": self.date(s.opened, i), "ghichu": s.note}
            self.data_row(ws, header_row + 1 + i, [values[k] for k in keys])
        if points:
            self.put(ws, header_row + len(points) + 1, 1, f"Tổng cộng: {len(points)} điểm", BOLD)
        widths = {"stt": 6, "ten": 44, "diachi": 36, "xa": 16, "ht": 18, "ngay": 16, "ghichu": 20}
        for c, k in enumerate(keys, start=1):
            ws.column_dimensions[get_column_letter(c)].width = widths.get(k, 12)
        return len(points)

    def workbook_bytes(self) -> tuple[bytes, int, int | None]:
        wb = openpyxl.Workbook()
        wb.remove(wb.active)
        if self.period in self.layout.instructions_in:
            self.instructions(wb)
        n_products = self.products_sheet(wb)
        n_points = self.sales_sheet(wb)
        wb.properties.creator = f"{OFFICE_NAMES[self.office]} {self.name}"
        wb.properties.lastModifiedBy = self.staff[0]
        wb.properties.title = "Danh sách sản phẩm OCOP"
        wb.properties.created = WORKBOOK_CREATED
        wb.properties.modified = WORKBOOK_MODIFIED[self.period]
        buffer = io.BytesIO()
        wb.save(buffer)
        return _stable_zip(buffer.getvalue(), WORKBOOK_MODIFIED[self.period]), n_products, n_points


def _stable_zip(data: bytes, modified: dt.datetime) -> bytes:
    """Rewrite an xlsx with fixed zip entry times and a fixed dcterms:modified (openpyxl stamps now())."""
    stamp = modified.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            payload = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                payload = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                                 rb"\g<1>" + stamp + rb"\g<2>", payload)
            entry = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            dst.writestr(entry, payload)
    return out.getvalue()


# ================================================================================================
# E-commerce feeds
# ================================================================================================

ORDER_FIELDS = ["order_id", "line_no", "ordered_at", "sku", "qty", "unit_price_vnd", "discount_vnd", "channel",
                "status", "buyer_province", "updated_at"]
LISTING_FIELDS = ["listing_id", "sku", "ma_san_pham", "title", "price_vnd", "status", "listed_at", "updated_at"]
TET = [dt.date(2023, 1, 22), dt.date(2024, 2, 10)]
MONTH_FACTOR = {1: 1.2, 2: 1.0, 3: 0.8, 4: 0.85, 5: 0.9, 6: 0.9, 7: 0.95, 8: 1.0, 9: 1.05, 10: 1.05,
                11: 1.2, 12: 1.3}
HOUR_WEIGHTS = [1, 0.6, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 3.5, 3.5, 3, 3, 2.5, 2.5, 2.5, 2.5, 3, 3.5, 4.5, 5, 5, 4, 2.5]
PROVINCE_LIMIT = dt.datetime(2024, 12, 20, 21, 0, 0, tzinfo=TZ)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def _daily_orders(day: dt.date) -> float:
    base = 22 + 10 * (day - ORDERS_FROM).days / (ORDERS_TO - ORDERS_FROM).days
    factor = MONTH_FACTOR[day.month]
    for tet in TET:
        if tet - dt.timedelta(days=28) <= day <= tet - dt.timedelta(days=3):
            factor *= 2.2          # Tết shopping
        elif tet - dt.timedelta(days=2) <= day <= tet + dt.timedelta(days=5):
            factor *= 0.3          # Tết holiday
    if (day.month, day.day) in ((11, 11), (12, 12), (9, 9), (10, 10)):
        factor *= 2.5              # platform sale days
    return base * factor


def build_order_lines(model: Model, rng: random.Random) -> list[dict]:
    """Order lines 2023-01-01 .. 2024-12-20, newest status as first sent (before updates)."""
    provinces, province_weights = zip(*BUYER_PROVINCES)
    lines: list[dict] = []
    day = ORDERS_FROM
    while day <= ORDERS_TO:
        eligible = [l for l in model.listings if l.live_on(day)]
        cum_weights, total = [], 0.0
        for listing in eligible:
            total += listing.popularity
            cum_weights.append(total)
        mu = _daily_orders(day)
        n_orders = max(0, round(rng.gauss(mu, mu ** 0.5)))
        late = day.year == 2024
        channel_weights = (0.45, 0.38, 0.17) if late else (0.56, 0.37, 0.07)
        moments = sorted(
            dt.datetime(day.year, day.month, day.day, rng.choices(range(24), HOUR_WEIGHTS)[0], rng.randint(0, 59),
                        rng.randint(0, 59), tzinfo=TZ) for _ in range(n_orders))
        for seq, ordered in enumerate(moments, start=1):
            order_id = f"DH{ordered:%y%m%d}{seq:04d}"
            n_lines = rng.choices([1, 2, 3, 4], [65, 25, 8, 2])[0]
            chosen: list[Listing] = []
            while len(chosen) < min(n_lines, len(eligible)):
                pick = rng.choices(eligible, cum_weights=cum_weights)[0]
                if pick not in chosen:
                    chosen.append(pick)
            channel = rng.choices(["web", "app", "livestream"], channel_weights)[0]
            province = rng.choices(provinces, province_weights)[0]
            status = rng.choices(["completed", "cancelled", "returned"], [93, 5, 2])[0]
            if status == "completed":
                updated = ordered + dt.timedelta(hours=rng.randint(40, 160))
            elif status == "cancelled":
                updated = ordered + dt.timedelta(minutes=rng.randint(10, 1440))
            else:
                updated = ordered + dt.timedelta(days=rng.randint(7, 20), hours=rng.randint(0, 12))
            updated = max(min(updated, PROVINCE_LIMIT), ordered + dt.timedelta(minutes=5))
            for line_no, listing in enumerate(chosen, start=1):
                sku, price = listing.sku, listing.price_vnd
                if rng.random() < 0.005:
                    sku, price = rng.choice(UNKNOWN_SKUS), rng.randint(50, 200) * 1000
                qty = rng.choices([1, 2, 3, 4, 5], [55, 25, 10, 6, 4])[0]
                discount = 0
                if rng.random() < 0.2:
                    discount = round(qty * price * rng.choice([0.05, 0.1, 0.15]) / 1000) * 1000
                lines.append({"order_id": order_id, "line_no": line_no, "ordered_at": ordered, "sku": sku,
                              "qty": qty, "unit_price_vnd": price, "discount_vnd": discount, "channel": channel,
                              "status": status, "buyer_province": province, "updated_at": updated})
        day += dt.timedelta(days=1)
    return lines


def build_order_updates(lines: list[dict], rng: random.Random) -> list[dict]:
    """~200 lines already sent, re-sent with a newer updated_at and status cancelled/returned."""
    candidates = [l for l in lines if l["status"] == "completed" and l["ordered_at"].date() >= dt.date(2024, 8, 1)
                  and l["updated_at"] <= dt.datetime(2024, 12, 15, 23, 59, tzinfo=TZ)]
    updates = []
    for line in sorted(rng.sample(candidates, 200), key=lambda l: (l["order_id"], l["line_no"])):
        newer = line["updated_at"] + dt.timedelta(days=rng.randint(1, 20), hours=rng.randint(0, 23),
                                                  minutes=rng.randint(0, 59))
        newer = min(newer, PROVINCE_LIMIT)
        assert newer > line["updated_at"]
        updates.append(dict(line, status=rng.choices(["returned", "cancelled"], [65, 35])[0], updated_at=newer))
    updates.sort(key=lambda l: (l["updated_at"], l["order_id"], l["line_no"]))
    return updates


def _json_line(record: dict, fields: list[str]) -> str:
    out = {}
    for f in fields:
        v = record[f]
        out[f] = _iso(v) if isinstance(v, dt.datetime) else v
    return json.dumps(out, ensure_ascii=False) + "\n"


def _write_jsonl(path: Path, records: list[dict], fields: list[str], compress: bool) -> None:
    payload = "".join(_json_line(r, fields) for r in records).encode("utf-8")
    if compress:
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as gz:
            gz.write(payload)
        payload = buffer.getvalue()
    path.write_bytes(payload)


def _write_csv(path: Path, records: list[dict], fields: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    for r in records:
        writer.writerow([_iso(r[f]) if isinstance(r[f], dt.datetime) else r[f] for f in fields])
    path.write_bytes(buffer.getvalue().encode("utf-8"))


# ================================================================================================
# Entry point
# ================================================================================================


def write_demo_inbox(inbox: Path) -> dict:
    """Write the demo inbox under `inbox`; returns a summary (files written, rows)."""
    inbox = Path(inbox)
    rng = random.Random(SEED)
    model = build_model(rng)
    check_model(model)

    files: list[str] = []
    workbooks: dict[str, dict] = {}
    for period in PERIODS:
        folder = inbox / "districts" / period
        folder.mkdir(parents=True, exist_ok=True)
        for district in DISTRICTS:
            data, n_products, n_points = _Writer(model, district, period, rng).workbook_bytes()
            path = folder / LAYOUTS[district].files[period]
            path.write_bytes(data)
            rel = path.relative_to(inbox).as_posix()
            files.append(rel)
            workbooks[rel] = {"district_code": district, "period": period, "products": n_products,
                              "sales_points": n_points}

    feeds = inbox / "ecommerce"
    feeds.mkdir(parents=True, exist_ok=True)
    listing_records = [{f: getattr(l, f) for f in LISTING_FIELDS} for l in model.listings]
    _write_jsonl(feeds / CATALOGUE_FILE, listing_records, LISTING_FIELDS, compress=False)
    files.append(f"ecommerce/{CATALOGUE_FILE}")

    lines = build_order_lines(model, rng)
    by_month: dict[str, list[dict]] = {}
    for line in lines:
        by_month.setdefault(f"{line['ordered_at']:%Y-%m}", []).append(line)
    for month, records in sorted(by_month.items()):
        if month in CSV_ORDER_MONTHS:
            name = f"orders-{month}.csv"
            _write_csv(feeds / name, records, ORDER_FIELDS)
        else:
            name = f"orders-{month}.jsonl.gz"
            _write_jsonl(feeds / name, records, ORDER_FIELDS, compress=True)
        files.append(f"ecommerce/{name}")
    updates = build_order_updates(lines, rng)
    _write_jsonl(feeds / UPDATES_FILE, updates, ORDER_FIELDS, compress=False)
    files.append(f"ecommerce/{UPDATES_FILE}")

    return {
        "inbox": str(inbox),
        "files": files,
        "workbooks": workbooks,
        "district_workbooks": len(workbooks),
        "product_rows": sum(w["products"] for w in workbooks.values()),
        "listings": len(listing_records),
        "order_files": len(by_month),
        "order_lines": len(lines),
        "order_updates": len(updates),
        "expected_figures": compute_figures(model, AS_OF),
    }
