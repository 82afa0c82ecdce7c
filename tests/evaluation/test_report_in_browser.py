"""The report in a real browser (headless Chromium; skipped without one): images load, the
page is never wider than the window, a wide Table 1 scrolls inside its box on a narrow window
and its last column can be scrolled into view; on a wide window it fits."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from slidemap.evaluation.metrics import ConfusionCounts, metrics_from_counts
from slidemap.evaluation.table import table_caption
from slidemap.plots import save_figure
from slidemap.workflows.report import build_report

CHECK_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "report_check.py"


def _load_check():
    spec = importlib.util.spec_from_file_location("report_check", CHECK_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report_check = _load_check()
BROWSER = report_check.find_browser()
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    figure = Figure(figsize=(9, 4))
    figure.add_subplot().plot([0, 1], [0, 1])
    rows = {name: {**metrics_from_counts(ConfusionCounts(*counts)), "roc_auc": 0.9, "pr_auc": 0.5}
            for name, counts in (("UNet", (5, 2, 3, 90)), ("UNet-CBAM", (6, 1, 2, 91)))}
    _, html_path = build_report(out, "Browser check", rows,
                                [("A figure", save_figure(figure, out / "figure.png", dpi=50))],
                                caption=table_caption(rows, "test"))
    return html_path


def test_on_a_narrow_window_table1_scrolls_and_its_last_column_is_reachable(report: Path) -> None:
    result = report_check.check_report(report, 500, BROWSER)
    assert result["ok"], result["problems"]
    assert result["window_px"] <= 520 and result["page_fits"]
    (table,) = result["tables"]
    assert table["scrolls"] and table["last_column_reachable"] and table["table_px"] > table["box_px"]
    assert result["images"] == result["images_loaded"] == 1


def test_on_a_wide_window_table1_fits(report: Path, tmp_path: Path) -> None:
    screenshot = tmp_path / "wide.png"
    result = report_check.check_report(report, 1400, BROWSER, screenshot)
    assert result["ok"], result["problems"]
    assert result["tables"][0]["fits"] and screenshot.stat().st_size > 10_000


def test_the_check_catches_a_table_that_is_cut(report: Path, tmp_path: Path) -> None:
    """Without the scrolling box the same table makes the page wider than the window."""
    broken = tmp_path / "report.html"
    broken.write_text(report.read_text().replace("overflow-x: auto", "overflow-x: visible"))
    result = report_check.check_report(broken, 500, BROWSER)
    assert not result["ok"] and any("px wide" in p or "cut" in p for p in result["problems"])
