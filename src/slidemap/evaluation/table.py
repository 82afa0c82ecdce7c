"""The model comparison table (the paper's Table 1) as Markdown, CSV, JSON and HTML.

Rows are models, columns are metrics (keys of ``metrics.json``). Markdown and HTML show 3
decimals with the best value of each ranked column in bold (all values that tie when
rounded); CSV keeps 4 decimals; JSON keeps the full float64 values of every key of every row.
An undefined value (NaN, e.g. ROC-AUC of a split without landslides) is "–" in Markdown and
HTML, an empty cell in CSV and ``null`` in JSON.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from slidemap.evaluation.metrics import AUC_KEYS, SCORE_KEYS
from slidemap.io.atomic import write_text_atomic

TABLE_COLUMNS: tuple[str, ...] = (
    "accuracy",
    "iou",
    "dice",
    "precision",
    "recall",
    "specificity",
    "balanced_accuracy",
    "mcc",
    "roc_auc",
    "pr_auc",
    "threshold",
)
"""Default columns: the paper's Table 1 plus precision, recall, the AUCs and the threshold.
``f1`` is left out because it equals ``dice``."""

COLUMN_LABELS: dict[str, str] = {
    "accuracy": "Accuracy",
    "iou": "IoU",
    "dice": "Dice",
    "f1": "F1",
    "precision": "Precision",
    "recall": "Recall",
    "specificity": "Specificity",
    "balanced_accuracy": "Balanced accuracy",
    "mcc": "MCC",
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "threshold": "Threshold",
    "n_pixels": "Pixels",
    "tp": "TP",
    "fp": "FP",
    "fn": "FN",
    "tn": "TN",
}

RANKED_COLUMNS = frozenset((*SCORE_KEYS, *AUC_KEYS))
"""Columns where higher is better, so the best value is marked."""

DISPLAY_DECIMALS = 3
CSV_DECIMALS = 4
_MISSING = "–"


class TableFiles(NamedTuple):
    """Paths written by :func:`write_table`."""

    markdown: Path
    csv: Path
    json: Path


class Cell(NamedTuple):
    """One displayed table cell."""

    text: str
    best: bool


Rows = Mapping[str, Mapping[str, float | int | None]]
"""Model name -> metric key -> value (numpy scalars are accepted)."""


def _plain(value: object) -> int | float | None:
    """``value`` as a Python int or float; None when missing (None or NaN)."""
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return None if math.isnan(value) else float(value)
    if value is None:
        return None
    raise TypeError(f"table values must be numbers, got {value!r}")


def _normalised(rows: Rows, columns: Sequence[str]) -> dict[str, dict[str, int | float | None]]:
    """Rows with plain Python values; checks that every row has every column."""
    if not rows:
        raise ValueError("the comparison table needs at least one model row")
    for model, row in rows.items():
        missing = [key for key in columns if key not in row]
        if missing:
            raise ValueError(f"table row {model!r} lacks {missing}; it has {sorted(row)}")
    return {
        model: {key: _plain(value) for key, value in row.items()} for model, row in rows.items()
    }


def _format(value: int | float | None, decimals: int) -> str:
    """``value`` with ``decimals`` decimals (ints as they are); "" when missing."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.{decimals}f}"


def table_cells(
    rows: Rows,
    columns: Sequence[str] = TABLE_COLUMNS,
    decimals: int = DISPLAY_DECIMALS,
) -> list[list[Cell]]:
    """Display cells, one list per model in ``rows`` order, one cell per column.

    A cell of a ranked column (:data:`RANKED_COLUMNS`) is ``best`` when its rounded value
    equals the column's highest rounded value, so what looks equal is marked equally.
    """
    plain = _normalised(rows, columns)
    texts = {
        model: [_format(row[key], decimals) for key in columns] for model, row in plain.items()
    }
    best_text: dict[str, str] = {}
    for j, key in enumerate(columns):
        shown = [(float(t[j]), t[j]) for t in texts.values() if t[j]]
        if key in RANKED_COLUMNS and len(rows) > 1 and shown:
            best_text[key] = max(shown)[1]
    return [
        [
            Cell(text or _MISSING, bool(text) and best_text.get(key) == text)
            for key, text in zip(columns, model_texts, strict=True)
        ]
        for model_texts in texts.values()
    ]


def table_caption(rows: Rows, split: str, n_patches: int | None = None) -> str:
    """Table 1's caption: the split, how many pixels every score counts, what bold means.

    Raises:
        ValueError: the rows were not scored on the same number of pixels.
    """
    counts = {_plain(row.get("n_pixels")) for row in rows.values()}
    if len(counts) != 1 or None in counts:
        raise ValueError(f"Table 1 rows must share one n_pixels, got {sorted(map(str, counts))}")
    (n_pixels,) = counts
    patches = f" in {n_patches} patches" if n_patches is not None else ""
    return (
        f"Every model on the {split} split: each metric from one confusion matrix over all "
        f"{n_pixels:,} labelled pixels{patches}, at the threshold the model chose on the "
        "validation split. Bold: the best value of each metric column (every value equal to "
        f"it once rounded to {DISPLAY_DECIMALS} decimals); the threshold is not ranked."
    )


def markdown_table(rows: Rows, columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """GitHub-flavoured Markdown table, best per ranked column in ``**bold**``."""
    header = ["Model", *(COLUMN_LABELS.get(key, key) for key in columns)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", *("---:" for _ in columns)]) + "|",
    ]
    for model, cells in zip(rows, table_cells(rows, columns), strict=True):
        shown = [f"**{c.text}**" if c.best else c.text for c in cells]
        lines.append("| " + " | ".join([model, *shown]) + " |")
    return "\n".join(lines) + "\n"


def html_table(rows: Rows, columns: Sequence[str] = TABLE_COLUMNS) -> str:
    """HTML ``<table>``, best per ranked column in ``<strong>``; text is escaped."""
    head = "".join(f"<th>{html.escape(COLUMN_LABELS.get(key, key))}</th>" for key in columns)
    body = []
    for model, cells in zip(rows, table_cells(rows, columns), strict=True):
        shown = "".join(
            f"<td><strong>{c.text}</strong></td>" if c.best else f"<td>{c.text}</td>" for c in cells
        )
        body.append(f"<tr><th>{html.escape(model)}</th>{shown}</tr>")
    return (
        f"<table>\n<thead><tr><th>Model</th>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n</table>\n"
    )


def _csv_text(rows: Rows, columns: Sequence[str]) -> str:
    plain = _normalised(rows, columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", *columns])
    for model, row in plain.items():
        writer.writerow([model, *(_format(row[key], CSV_DECIMALS) for key in columns)])
    return buffer.getvalue()


def _json_text(rows: Rows, columns: Sequence[str]) -> str:
    plain = _normalised(rows, columns)
    return json.dumps({"columns": list(columns), "rows": plain}, indent=2, allow_nan=False) + "\n"


def write_table(
    rows: Rows,
    out_dir: str | Path,
    columns: Sequence[str] = TABLE_COLUMNS,
    stem: str = "table1",
) -> TableFiles:
    """Write ``<stem>.md``, ``<stem>.csv`` and ``<stem>.json`` into ``out_dir``, atomically.

    Args:
        rows: model name -> metrics dict (e.g. :func:`~slidemap.evaluation.curves.compute_metrics`),
            in the order the rows should appear.
        out_dir: folder, created if needed.
        columns: metric keys to show, in order; every row must have them.
        stem: file name without suffix.

    Returns:
        The three paths.
    """
    out_dir = Path(out_dir)
    return TableFiles(
        markdown=write_text_atomic(out_dir / f"{stem}.md", markdown_table(rows, columns)),
        csv=write_text_atomic(out_dir / f"{stem}.csv", _csv_text(rows, columns)),
        json=write_text_atomic(out_dir / f"{stem}.json", _json_text(rows, columns)),
    )
