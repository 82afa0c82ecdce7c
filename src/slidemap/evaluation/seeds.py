"""Table 1 over several seeds: mean ± std of every metric, and block-bootstrap F1 intervals.

Rows are models, columns metrics (as :mod:`slidemap.evaluation.table`); every cell is the
mean ± sample standard deviation over the seeds, the best mean of a ranked column in bold.
An ``F1 95 % CI`` column gives the block-bootstrap interval of the seed-mean F1
(:mod:`slidemap.evaluation.bootstrap`). Markdown, CSV (mean and std columns) and JSON (every
seed's value too) are written.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slidemap.evaluation.bootstrap import BootstrapResult
from slidemap.evaluation.table import COLUMN_LABELS, RANKED_COLUMNS, TABLE_COLUMNS, TableFiles
from slidemap.io.atomic import write_text_atomic

#: model name -> one metrics dict per seed
SeedRows = Mapping[str, Sequence[Mapping[str, float | int | None]]]


def seed_statistics(rows: SeedRows, columns: Sequence[str] = TABLE_COLUMNS) -> dict[str, dict[str, dict[str, Any]]]:
    """Model -> column -> ``{"mean", "std", "values"}`` (std with ``ddof=1``, 0 for one seed;
    NaN values, e.g. ROC-AUC of a split without landslides, are left out; all NaN -> None)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for model, per_seed in rows.items():
        if not per_seed:
            raise ValueError(f"model {model!r} has no seed results")
        out[model] = {}
        for key in columns:
            values = [float(m[key]) for m in per_seed if m.get(key) is not None]
            finite = [v for v in values if not math.isnan(v)]
            array = np.asarray(finite)
            out[model][key] = {
                "mean": float(array.mean()) if finite else None,
                "std": float(array.std(ddof=1)) if len(finite) > 1 else (0.0 if finite else None),
                "values": [None if math.isnan(v) else v for v in values],
            }
    return out


def _cells(stats: dict[str, dict[str, dict[str, Any]]], columns: Sequence[str],
           intervals: BootstrapResult | None, decimals: int = 3) -> list[tuple[str, list[tuple[str, bool]]]]:
    best: dict[str, float] = {}
    for key in columns:
        means = [round(s[key]["mean"], decimals) for s in stats.values() if s[key]["mean"] is not None]
        if key in RANKED_COLUMNS and len(stats) > 1 and means:
            best[key] = max(means)
    table = []
    for model, row in stats.items():
        cells = []
        for key in columns:
            mean, std = row[key]["mean"], row[key]["std"]
            if mean is None:
                cells.append(("–", False))
                continue
            text = f"{mean:.{decimals}f} ± {std:.{decimals}f}"
            cells.append((text, best.get(key) == round(mean, decimals)))
        if intervals is not None:
            interval = intervals.f1[model]
            cells.append((f"{interval.low:.{decimals}f}–{interval.high:.{decimals}f}", False))
        table.append((model, cells))
    return table


def _header(columns: Sequence[str], intervals: BootstrapResult | None) -> list[str]:
    names = [COLUMN_LABELS.get(key, key) for key in columns]
    if intervals is not None:
        names.append(f"F1 {100 * intervals.confidence:.0f} % CI")
    return names


def seed_markdown_table(rows: SeedRows, columns: Sequence[str] = TABLE_COLUMNS,
                        intervals: BootstrapResult | None = None) -> str:
    """Markdown: mean ± std per cell, best mean per ranked column in bold, F1 interval last."""
    header = ["Model", *_header(columns, intervals)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", *("---:" for _ in header[1:])]) + "|"]
    for model, cells in _cells(seed_statistics(rows, columns), columns, intervals):
        lines.append("| " + " | ".join([model, *(f"**{t}**" if b else t for t, b in cells)]) + " |")
    return "\n".join(lines) + "\n"


def seed_html_table(rows: SeedRows, columns: Sequence[str] = TABLE_COLUMNS,
                    intervals: BootstrapResult | None = None) -> str:
    """The same table as HTML (text escaped)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _header(columns, intervals))
    body = []
    for model, cells in _cells(seed_statistics(rows, columns), columns, intervals):
        shown = "".join(f"<td><strong>{html.escape(t)}</strong></td>" if b else f"<td>{html.escape(t)}</td>"
                        for t, b in cells)
        body.append(f"<tr><th>{html.escape(model)}</th>{shown}</tr>")
    return (f"<table>\n<thead><tr><th>Model</th>{head}</tr></thead>\n<tbody>\n"
            + "\n".join(body) + "\n</tbody>\n</table>\n")


def write_seed_table(rows: SeedRows, out_dir: str | Path, intervals: BootstrapResult | None = None,
                     columns: Sequence[str] = TABLE_COLUMNS, stem: str = "table1") -> TableFiles:
    """Write ``<stem>.md``, ``.csv`` (``<key>_mean``, ``<key>_std`` columns) and ``.json``
    (statistics, every seed's value, the bootstrap intervals) atomically."""
    out_dir = Path(out_dir)
    stats = seed_statistics(rows, columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "seeds", *(f"{k}_{s}" for k in columns for s in ("mean", "std"))])
    for model, row in stats.items():
        writer.writerow([model, len(rows[model]), *(
            "" if row[k][s] is None else f"{row[k][s]:.4f}" for k in columns for s in ("mean", "std"))])
    payload = {"columns": list(columns), "seeds": {m: len(v) for m, v in rows.items()},
               "rows": stats, "bootstrap": None if intervals is None else intervals.to_dict()}
    return TableFiles(
        markdown=write_text_atomic(out_dir / f"{stem}.md", seed_markdown_table(rows, columns, intervals)),
        csv=write_text_atomic(out_dir / f"{stem}.csv", buffer.getvalue()),
        json=write_text_atomic(out_dir / f"{stem}.json", json.dumps(payload, indent=2) + "\n"),
    )
