"""The report: Markdown next to the figures, HTML that embeds everything."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from slidemap.evaluation.metrics import ConfusionCounts, metrics_from_counts
from slidemap.evaluation.table import COLUMN_LABELS, RANKED_COLUMNS, TABLE_COLUMNS, table_caption
from slidemap.plots import save_figure
from slidemap.workflows.report import RunRecord, build_report


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


def test_report_tables_show_every_value_and_bold_the_best(tmp_path: Path, html_table) -> None:
    rows = _rows()
    md_path, html_path = build_report(tmp_path, "t", rows, [])
    table = html_table(html_path.read_text())
    assert list(table) == ["UNet", "SegNet"]
    markdown = {line.split(" | ")[0].strip("| "): line.strip("|").split(" | ")[1:]
                for line in md_path.read_text().splitlines() if line.startswith(("| UNet", "| SegNet"))}
    for model, row in rows.items():
        assert list(table[model]) == [COLUMN_LABELS[key] for key in TABLE_COLUMNS]
        for key, cell_md in zip(TABLE_COLUMNS, markdown[model], strict=True):
            text, bold = table[model][COLUMN_LABELS[key]]
            assert text == f"{row[key]:.3f}", (model, key)
            values = [other[key] for other in rows.values()]
            # UNet (5, 2, 3, 90) beats SegNet (4, 4, 4, 88) on every ranked score; equal
            # AUCs are both best; the threshold is not ranked
            best = key in RANKED_COLUMNS and round(row[key], 3) == round(max(values), 3)
            assert bold == best, (model, key)
            assert cell_md.strip() == (f"**{text}**" if best else text), (model, key)
    assert table["UNet"]["IoU"] == ("0.500", True)  # 5 / (5 + 2 + 3)
    assert table["SegNet"]["Precision"] == ("0.500", False)  # 4 / (4 + 4)


def test_missing_figure_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.png"):
        build_report(tmp_path, "t", _rows(), [("x", tmp_path / "nope.png")])


def _runs() -> list[RunRecord]:
    started = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    return [RunRecord("UNet", "runs/unet/config.yaml", 3, "9.8.7", started, 61.4, 5, 6),
            RunRecord("SegNet", "runs/segnet/config.yaml", 3, "9.8.7", started, 42.0, 6, 6)]


def test_report_captions_table1_warns_about_synthetic_data_and_lists_the_runs(tmp_path: Path) -> None:
    rows = _rows()
    caption = table_caption(rows, "test", n_patches=1)
    md_path, html_path = build_report(
        tmp_path, "Model comparison", rows, [("ROC", _figure(tmp_path / "roc.png"))],
        caption=caption, alerts=["These data are synthetic."], runs=_runs())
    for text in (md_path.read_text(), html_path.read_text()):
        assert text.index("These data are synthetic.") < text.index("Table 1") < text.index("UNet")
        assert "test split" in caption and "100 labelled pixels in 1 patches" in caption
        assert "Bold: the best value" in caption and caption[:40] in text
        for cell in ("runs/unet/config.yaml", "9.8.7", "2025-03-04T05:06:07+00:00", "61 s", "5 of 6"):
            assert cell in text
    page = html_path.read_text()
    assert '<div class="alert" role="note">' in page
    assert page.count('<div class="table-scroll"') == 2  # Table 1 and the runs table
    assert ".table-scroll { overflow-x: auto;" in page


def test_table_caption_refuses_rows_scored_on_different_pixels() -> None:
    rows = _rows()
    rows["SegNet"] = {**rows["SegNet"], "n_pixels": 99}
    with pytest.raises(ValueError, match="n_pixels"):
        table_caption(rows, "test")
