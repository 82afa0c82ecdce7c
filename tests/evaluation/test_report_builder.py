"""The report: Markdown next to the figures, HTML that embeds everything."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from slidemap.evaluation.metrics import ConfusionCounts, metrics_from_counts
from slidemap.plots import save_figure
from slidemap.workflows.report import build_report


def _figure(path: Path) -> Path:
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [0, 1])
    return save_figure(fig, path, dpi=40)


def _rows() -> dict[str, dict[str, float | int]]:
    rows = {}
    for name, counts in {
        "UNet": ConfusionCounts(5, 2, 3, 90),
        "SegNet": ConfusionCounts(4, 4, 4, 88),
    }.items():
        rows[name] = {**metrics_from_counts(counts), "roc_auc": 0.9, "pr_auc": 0.5}
    return rows


def test_report_md_links_figures_and_html_embeds_them(tmp_path: Path) -> None:
    figures = [
        ("ROC <curves> & more", _figure(tmp_path / "report" / "figures" / "roc.png")),
        ("Confusion matrices", _figure(tmp_path / "elsewhere" / "confusion.png")),
    ]
    md_path, html_path = build_report(
        tmp_path / "report",
        "Model comparison",
        _rows(),
        figures,
        notes=["Threshold from validation."],
    )
    md = md_path.read_text()
    assert "![Confusion matrices](../elsewhere/confusion.png)" in md
    assert "(figures/roc.png)" in md
    assert "| UNet |" in md and "Threshold from validation." in md

    page = html_path.read_text()
    assert 'src="http' not in page and "<link" not in page and "<script" not in page
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == len(figures)
    for (_, path), data in zip(figures, embedded, strict=True):
        assert base64.b64decode(data) == path.read_bytes()
    assert "ROC &lt;curves&gt; &amp; more" in page
    assert "<table>" in page and "<th>UNet</th>" in page


def test_missing_figure_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.png"):
        build_report(tmp_path, "t", _rows(), [("x", tmp_path / "nope.png")])
