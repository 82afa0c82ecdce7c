"""Table 1 files: Markdown with the best values in bold, CSV and JSON that parse back."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from slidemap.evaluation.metrics import ConfusionCounts, metrics_from_counts
from slidemap.evaluation.table import TABLE_COLUMNS, html_table, markdown_table, write_table


def _rows() -> dict[str, dict[str, float | int]]:
    rows = {}
    for model, counts in {
        "DP-FCN": ConfusionCounts(tp=62760, fp=74793, fn=43489, tn=4_700_000),
        "UNet": ConfusionCounts(tp=87683, fp=50000, fn=23584, tn=4_800_000),
        "UNet-CBAM": ConfusionCounts(tp=93206, fp=44347, fn=24159, tn=4_800_000),
    }.items():
        row = metrics_from_counts(counts, threshold=0.5)
        row.update(roc_auc=0.95 + len(rows) / 100, pr_auc=0.6 + len(rows) / 10)
        rows[model] = row
    return rows


def test_files_are_written_and_round_trip(tmp_path: Path) -> None:
    rows = _rows()
    files = write_table(rows, tmp_path / "out")
    assert [p.name for p in files] == ["table1.md", "table1.csv", "table1.json"]
    with files.csv.open(newline="") as fh:
        parsed = list(csv.DictReader(fh))
    assert [r["model"] for r in parsed] == list(rows)
    for record in parsed:
        for key in TABLE_COLUMNS:
            assert float(record[key]) == pytest.approx(rows[record["model"]][key], abs=5e-5)
    data = json.loads(files.json.read_text())
    assert data["columns"] == list(TABLE_COLUMNS)
    assert data["rows"] == rows  # every key, full precision
    assert not list((tmp_path / "out").glob(".slidemap-tmp-*"))


def test_markdown_bolds_the_best_value_of_each_ranked_column() -> None:
    rows = _rows()
    text = markdown_table(rows)
    lines = text.splitlines()
    assert lines[0].startswith("| Model | Accuracy | IoU | Dice |")
    cbam = next(line for line in lines if line.startswith("| UNet-CBAM"))
    best_iou = max(r["iou"] for r in rows.values())
    assert f"**{best_iou:.3f}**" in cbam
    assert f"**{rows['UNet-CBAM']['mcc']:.3f}**" in cbam
    assert "**0.500**" not in text  # the threshold is not ranked
    dpfcn = next(line for line in lines if line.startswith("| DP-FCN"))
    assert "**" not in dpfcn  # worst in every column


def test_ties_after_rounding_are_all_bold_and_nan_is_a_dash() -> None:
    rows = {
        "a": {"iou": 0.70001, "mcc": math.nan},
        "b": {"iou": np.float64(0.70004), "mcc": 0.2},
    }
    text = markdown_table(rows, columns=("iou", "mcc"))
    assert text.count("**0.700**") == 2
    assert "| a | **0.700** | – |" in text
    assert "<td>–</td>" in html_table(rows, columns=("iou", "mcc"))


def test_nan_is_empty_in_csv_and_null_in_json(tmp_path: Path) -> None:
    files = write_table(
        {"m": {"iou": 0.5, "roc_auc": math.nan}}, tmp_path, columns=("iou", "roc_auc")
    )
    assert files.csv.read_text().splitlines()[1] == "m,0.5000,"
    assert json.loads(files.json.read_text())["rows"]["m"]["roc_auc"] is None


def test_missing_column_names_the_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'UNet' lacks"):
        write_table({"UNet": {"iou": 0.5}}, tmp_path)
