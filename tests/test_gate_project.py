"""The GX project in expectations/ is versioned: it must say what flows/gate_project.py defines."""
import json

from flows.config import EXPECTATIONS_DIR
from flows.gate_project import all_suites, write_project


def _suite_rules(root):
    out = {}
    for path in sorted((root / "expectations").glob("*.json")):
        suite = json.loads(path.read_text(encoding="utf-8"))
        out[suite["name"]] = sorted(
            (e["type"], json.dumps(e["kwargs"], sort_keys=True), json.dumps(e.get("meta"), sort_keys=True),
             e.get("severity", "critical"))
            for e in suite["expectations"])
    return out


def test_committed_suites_match_their_definitions(tmp_path):
    write_project(tmp_path / "gx")
    assert _suite_rules(EXPECTATIONS_DIR) == _suite_rules(tmp_path / "gx")
    assert set(_suite_rules(EXPECTATIONS_DIR)) == set(all_suites())
    checkpoints = {p.stem for p in (EXPECTATIONS_DIR / "checkpoints").glob("*.json")}
    assert checkpoints == set(all_suites())


def test_every_submission_rule_speaks_vietnamese_and_says_how_to_fix():
    for name in ("district_products", "district_sales_points"):
        for exp in all_suites()[name]():
            assert exp.meta["rule"] and exp.meta["message_vi"] and exp.meta["fix_vi"], exp
