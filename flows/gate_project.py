"""The Great Expectations project in `expectations/`: suites and checkpoints as files.

The files under `expectations/` are the versioned truth the night reads. This module is how a
maintainer (re)writes them after changing a rule here: `python -m flows.gate_project`.
A test checks that the committed files match these definitions.

Every expectation carries `meta`: `rule` (stable name used in `failed_rules`), `message_vi`
(what the district officer reads), `fix_vi` (how to fix it) and `column_vi` (the column label).
Level = GX `severity`: critical blocks the submission, warning is reported only.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe

from flows.config import EXPECTATIONS_DIR, Settings

DATASOURCE = "ocop_frames"
CRITICAL, WARNING = "critical", "warning"
STARS = [3, 4, 5]
PRODUCT_GROUPS = ["I", "II", "III", "IV", "V", "VI"]
OWNER_TYPES = ["doanh_nghiep", "hop_tac_xa", "to_hop_tac", "ho_kinh_doanh"]
SALES_POINT_KINDS = ["nha_nuoc_ho_tro", "xa_hoi_hoa"]


def _meta(rule: str, column_vi: str, message: str, fix: str, source_column: str | None = None) -> dict:
    meta = {"rule": rule, "column_vi": column_vi, "message_vi": message, "fix_vi": fix}
    if source_column:  # a computed check column: show the district the value of this column
        meta["source_column"] = source_column
    return meta


def _required(column: str, label: str) -> gxe.Expectation:
    return gxe.ExpectColumnValuesToNotBeNull(
        column=column, severity=CRITICAL,
        meta=_meta(f"{column}_required", label, f"Thiếu {label}.", f"Điền {label} cho dòng này."))


def _is_true(column: str, source: str, rule: str, label: str, message: str, fix: str, severity: str = CRITICAL):
    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[True], severity=severity,
                                           meta=_meta(rule, label, message, fix, source))


def district_products_expectations() -> list[gxe.Expectation]:
    return [
        _required("ma_san_pham", "Mã sản phẩm"),
        _required("ten_san_pham", "Tên sản phẩm"),
        _required("hang_sao", "Hạng sao"),
        _required("diem", "Điểm"),
        _required("ngay_cong_nhan", "Ngày công nhận"),
        _required("ten_chu_the", "Tên chủ thể"),
        _required("loai_hinh_chu_the", "Loại hình chủ thể"),
        _is_true("code_unique_in_submission", "ma_san_pham", "ma_san_pham_unique", "Mã sản phẩm",
                 "Mã sản phẩm bị trùng trong cùng báo cáo.", "Mỗi sản phẩm chỉ ghi một dòng với một mã riêng."),
        _is_true("code_not_claimed", "ma_san_pham", "ma_san_pham_claimed", "Mã sản phẩm",
                 "Mã sản phẩm đã thuộc báo cáo được chấp nhận của huyện khác.",
                 "Kiểm tra lại mã do tỉnh cấp; mỗi mã chỉ thuộc một huyện."),
        gxe.ExpectColumnValuesToBeInSet(
            column="hang_sao", value_set=STARS, severity=CRITICAL,
            meta=_meta("hang_sao_in_set", "Hạng sao", "Hạng sao phải là 3, 4 hoặc 5.", "Ghi 3, 4 hoặc 5.")),
        _is_true("score_in_band", "diem", "diem_in_star_band", "Điểm",
                 "Điểm không khớp hạng sao (3 sao: 50–69, 4 sao: 70–89, 5 sao: 90–100).",
                 "Kiểm tra lại điểm và hạng sao theo quyết định công nhận."),
        gxe.ExpectColumnValuesToBeInSet(
            column="nhom_san_pham", value_set=PRODUCT_GROUPS, severity=CRITICAL,
            meta=_meta("nhom_san_pham_in_set", "Nhóm sản phẩm", "Nhóm sản phẩm không thuộc 6 nhóm OCOP.",
                       "Ghi một trong 6 nhóm của Quyết định 148/QĐ-TTg.")),
        gxe.ExpectColumnValuesToBeInSet(
            column="loai_hinh_chu_the", value_set=OWNER_TYPES, severity=CRITICAL,
            meta=_meta("loai_hinh_chu_the_in_set", "Loại hình chủ thể", "Loại hình chủ thể không hợp lệ.",
                       "Ghi DN, HTX, THT, Hộ kinh doanh hoặc Cơ sở.")),
        _is_true("recognised_in_period", "ngay_cong_nhan", "ngay_cong_nhan_after_period", "Ngày công nhận",
                 "Ngày công nhận sau ngày cuối kỳ báo cáo.", "Sửa ngày công nhận hoặc báo cáo ở kỳ sau."),
        _is_true("expiry_valid", "ngay_het_han", "ngay_het_han_invalid", "Ngày hết hạn",
                 "Ngày hết hạn phải sau ngày công nhận và không quá 36 tháng.",
                 "Ngày hết hạn = ngày công nhận + 36 tháng (theo quyết định)."),
        _is_true("tax_number_valid", "ma_so_thue", "ma_so_thue_format", "Mã số thuế",
                 "Mã số thuế phải gồm 10 chữ số hoặc dạng 10 số-3 số.", "Ví dụ 4300123456 hoặc 4300123456-001."),
        # warnings
        _is_true("owner_consistent", "ten_chu_the", "chu_the_inconsistent", "Tên chủ thể",
                 "Cùng một chủ thể (mã số thuế) được ghi khác tên hoặc khác loại hình ở các dòng.",
                 "Thống nhất tên và loại hình chủ thể.", WARNING),
        _is_true("listing_flag_matches", "len_san_tmdt", "len_san_tmdt_mismatch", "Lên sàn TMĐT",
                 "Cột 'Lên sàn TMĐT' không khớp danh mục của sàn thương mại điện tử tỉnh.",
                 "Kiểm tra sản phẩm đã/chưa có gian hàng trên sàn.", WARNING),
        _is_true("not_expiring_soon", "ngay_het_han", "expiring_within_90_days", "Ngày hết hạn",
                 "Giấy chứng nhận sắp hết hạn (trong 90 ngày).", "Chuẩn bị hồ sơ đánh giá lại.", WARNING),
        gxe.ExpectColumnValuesToNotBeNull(
            column="xa_phuong", severity=WARNING,
            meta=_meta("xa_phuong_missing", "Xã/phường", "Thiếu xã/phường.", "Điền xã/phường của chủ thể.")),
    ]


def district_sales_points_expectations() -> list[gxe.Expectation]:
    return [
        _required("ten_diem_ban", "Tên điểm bán"),
        _required("ngay_hoat_dong", "Ngày hoạt động"),
        _required("hinh_thuc", "Hình thức"),
        gxe.ExpectColumnValuesToBeInSet(
            column="hinh_thuc", value_set=SALES_POINT_KINDS, severity=CRITICAL,
            meta=_meta("hinh_thuc_diem_ban_in_set", "Hình thức", "Hình thức điểm bán không hợp lệ.",
                       "Ghi 'Nhà nước hỗ trợ' hoặc 'Xã hội hóa'.")),
    ]


def _unique_not_null(columns: list[str], rule: str) -> list[gxe.Expectation]:
    out: list[gxe.Expectation] = [
        gxe.ExpectCompoundColumnsToBeUnique(column_list=columns, meta={"rule": rule + "_unique"})
        if len(columns) > 1 else gxe.ExpectColumnValuesToBeUnique(column=columns[0], meta={"rule": rule + "_unique"})
    ]
    out += [gxe.ExpectColumnValuesToNotBeNull(column=c, meta={"rule": f"{rule}_{c}_not_null"}) for c in columns]
    return out


def _all_true(column: str, rule: str) -> gxe.Expectation:
    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[True], meta={"rule": rule})


MART_SUITES: dict[str, list] = {
    "marts_kpi_province_snapshot": lambda: _unique_not_null(["as_of_date"], "kpi_province_key") + [
        _all_true("stars_sum_ok", "kpi_province_stars_sum"),
        _all_true("owners_sum_ok", "kpi_province_owner_types_sum"),
        _all_true("sales_points_sum_ok", "kpi_province_sales_points_sum"),
        _all_true("matches_districts", "kpi_province_equals_district_sum"),
        gxe.ExpectColumnValuesToBeBetween(column="valid_products", min_value=0, meta={"rule": "kpi_non_negative"}),
    ],
    "marts_kpi_district_snapshot": lambda: _unique_not_null(["as_of_date", "district_code"], "kpi_district_key"),
    "marts_fct_order_line": lambda: _unique_not_null(["order_id", "line_no"], "order_line_key") + [
        _all_true("product_known_or_flagged", "order_line_product_known_or_flagged"),
        gxe.ExpectColumnValuesToBeBetween(column="qty", min_value=0, meta={"rule": "order_line_qty_non_negative"}),
        gxe.ExpectColumnValuesToBeBetween(column="revenue_vnd", min_value=0,
                                          meta={"rule": "order_line_revenue_non_negative"}),
    ],
    "marts_fct_certification": lambda: _unique_not_null(["certificate_id"], "certification_key") + [
        _all_true("product_known", "certification_product_known"),
    ],
    "marts_dim_product": lambda: _unique_not_null(["ma_san_pham"], "product_key") + [
        _all_true("district_known", "product_district_known"),
    ],
    "marts_dim_owner": lambda: _unique_not_null(["owner_key"], "owner_key"),
}

SUBMISSION_SUITES = {
    "district_products": district_products_expectations,
    "district_sales_points": district_sales_points_expectations,
}


def all_suites() -> dict:
    return {**SUBMISSION_SUITES, **MART_SUITES}


_YML = """\
# Great Expectations project of the OCOP warehouse (GX 1.x, file context).
# Suites and checkpoints are versioned files; rewrite them with `python -m flows.gate_project`.
# Results and Data Docs go under the warehouse folder of the run (OCOP_GX_* set by flows.gate).
config_version: 4
config_variables_file_path: uncommitted/config_variables.yml
plugins_directory: plugins/
stores:
  expectations_store:
    class_name: ExpectationsStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: expectations/
  validation_results_store:
    class_name: ValidationResultsStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: ${OCOP_GX_RESULTS_DIR}
  checkpoint_store:
    class_name: CheckpointStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      suppress_store_backend_id: true
      base_directory: checkpoints/
  validation_definition_store:
    class_name: ValidationDefinitionStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: validation_definitions/
expectations_store_name: expectations_store
validation_results_store_name: validation_results_store
checkpoint_store_name: checkpoint_store
data_docs_sites:
  ocop_site:
    class_name: SiteBuilder
    show_how_to_buttons: false
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: ${OCOP_GX_DOCS_DIR}
    site_index_builder:
      class_name: DefaultSiteIndexBuilder
      # the newest validations only (about two weeks of nights): the index would otherwise read
      # every result ever stored, a cost that grows night after night
      validation_results_limit: 120
analytics_enabled: false
progress_bars:
  globally: false
  metric_calculations: false
"""


def write_project(root: Path = EXPECTATIONS_DIR) -> None:
    """(Re)write the GX project files: datasource, suites, validation definitions, checkpoints."""
    import tempfile

    for sub in ("expectations", "checkpoints", "validation_definitions"):
        shutil.rmtree(root / sub, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / "great_expectations.yml").write_text(_YML, encoding="utf-8")
    scratch = tempfile.mkdtemp()
    Settings(inbox=Path(scratch), warehouse=Path(scratch)).apply_gx_environment()  # results and docs: nowhere kept
    context = gx.get_context(mode="file", context_root_dir=str(root))
    source = context.data_sources.add_or_update_pandas(DATASOURCE)
    for name, build in all_suites().items():
        suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=build()))
        asset = source.add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe("night")
        vd = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        index = ["submission_id", "row_number"] if name in SUBMISSION_SUITES else []
        context.checkpoints.add(gx.Checkpoint(
            name=name, validation_definitions=[vd],
            # no UpdateDataDocsAction: flows/gate.py builds the Data Docs once per gate, for all its results
            actions=[],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": index}
            if index else {"result_format": "SUMMARY"},
        ))
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    write_project()
    print(f"GX project written to {EXPECTATIONS_DIR}")
