"""The comparison report: ``report.md`` next to its figures, and a self-contained ``report.html``.

The Markdown refers to the figure files by paths relative to the report, for reading in a
repository or an editor. The HTML embeds every image as a base64 ``data:`` URI and carries
its own CSS, so the one file can be mailed or archived: it loads nothing from anywhere.

Blocks, in order: the title; alerts (e.g. "these data are synthetic") in a box nobody
misses; Table 1 under its caption; the figures, numbered; the runs (config, seed, slidemap
version, start time, duration); notes. In HTML, wide tables scroll sideways inside their
own box on a narrow window instead of being cut (checked in headless Chromium by
``benchmarks/report_check.py`` and a test).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import mimetypes
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from slidemap.evaluation.table import TABLE_COLUMNS, Rows, html_table, markdown_table
from slidemap.io.atomic import current_path, write_text_atomic

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.5; }
.table-scroll { overflow-x: auto; max-width: 100%; margin: 0.5rem 0 1.5rem; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
thead th { background: #f2f2f2; }
tbody th { text-align: left; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .caption { font-size: 0.95rem; color: #444; }
.alert { border-left: 0.4rem solid #c77700; background: #fff4e0; padding: 0.6rem 1rem;
         margin: 1rem 0; }
"""


def _data_uri(path: Path) -> str:
    """The file at ``path`` as a ``data:<mime>;base64,...`` URI."""
    mime = mimetypes.guess_type(path.name)[0]
    if mime is None or not mime.startswith("image/"):
        raise ValueError(f"{path}: not an image file this report can embed (.png, .jpg, .svg)")
    data = current_path(path).read_bytes()  # inside an output set, still its temporary
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


@dataclass(frozen=True)
class RunRecord:
    """One training run, as the report lists it.

    Attributes:
        name: the model's display name.
        config: the run's resolved config file (path as shown).
        seed: the training seed.
        version: the slidemap version that trained it.
        started: when training started (timezone-aware).
        seconds: wall time of the training.
        best_epoch: 1-based epoch of the best checkpoint, of ``epochs``.
        epochs: epochs run.
    """

    name: str
    config: str
    seed: int
    version: str
    started: datetime
    seconds: float
    best_epoch: int
    epochs: int

    def cells(self) -> list[str]:
        """The row of the runs table, one text per :data:`RUN_COLUMNS`."""
        return [self.name, self.config, str(self.seed), self.version,
                self.started.isoformat(timespec="seconds"), f"{self.seconds:.0f} s",
                f"{self.best_epoch} of {self.epochs}"]


RUN_COLUMNS = ("Model", "Config", "Seed", "slidemap", "Started", "Training time", "Best epoch")


@dataclass(frozen=True)
class _Markup:
    """How one output format writes the report's few kinds of block."""

    heading: Callable[[int, str], str]
    figure: Callable[[int, str, Path], str]
    bullets: Callable[[Sequence[str]], str]
    alert: Callable[[str], str]
    caption: Callable[[str, str], str]
    scroll: Callable[[str], str]
    grid: Callable[[Sequence[str], Sequence[Sequence[str]]], str]
    table: Callable[[Rows, Sequence[str]], str]


def _markdown_grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _markdown_markup(out_dir: Path) -> _Markup:
    def figure(number: int, caption: str, path: Path) -> str:
        relative = Path(os.path.relpath(path, out_dir)).as_posix()
        return f"![{caption}]({relative})\n\n*Figure {number}. {caption}*\n"

    return _Markup(
        heading=lambda level, text: f"{'#' * level} {text}\n",
        figure=figure,
        bullets=lambda items: "".join(f"- {item}\n" for item in items),
        alert=lambda text: f"> **Note.** {text}\n",
        caption=lambda label, text: f"**{label}.** {text}\n",
        scroll=lambda table: table,
        grid=_markdown_grid,
        table=markdown_table,
    )


def _html_figure(number: int, caption: str, path: Path) -> str:
    return (
        f'<figure><img src="{_data_uri(path)}" alt="{html.escape(caption, quote=True)}">'
        f"<figcaption>Figure {number}. {html.escape(caption)}</figcaption></figure>"
    )


def _html_grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_HTML_MARKUP = _Markup(
    heading=lambda level, text: f"<h{level}>{html.escape(text)}</h{level}>",
    figure=_html_figure,
    bullets=lambda items: "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>",
    alert=lambda text: f'<div class="alert" role="note"><strong>Note.</strong> {html.escape(text)}</div>',
    caption=lambda label, text: (f'<p class="caption"><strong>{html.escape(label)}.</strong> '
                                 f"{html.escape(text)}</p>"),
    scroll=lambda table: f'<div class="table-scroll" role="region" tabindex="0">{table}</div>',
    grid=_html_grid,
    table=html_table,
)


@dataclass(frozen=True)
class _Content:
    """What a report says, independent of its format."""

    title: str
    rows: Rows
    columns: Sequence[str]
    caption: str
    figures: Sequence[tuple[str, Path]]
    notes: Sequence[str]
    alerts: Sequence[str]
    runs: Sequence[RunRecord]
    #: the table in this format, made elsewhere (e.g. mean ± std over seeds); None = from rows
    table_text: str | None = None


def _blocks(markup: _Markup, content: _Content) -> list[str]:
    """The report's blocks in order (see the module docstring)."""
    blocks = [markup.heading(1, content.title)]
    blocks.extend(markup.alert(text) for text in content.alerts)
    blocks.append(markup.heading(2, "Comparison"))
    if content.caption:
        blocks.append(markup.caption("Table 1", content.caption))
    table = content.table_text or markup.table(content.rows, content.columns)
    blocks.append(markup.scroll(table))
    if content.figures:
        blocks.append(markup.heading(2, "Figures"))
        blocks.extend(
            markup.figure(number, caption, path)
            for number, (caption, path) in enumerate(content.figures, start=1)
        )
    if content.runs:
        blocks.extend([markup.heading(2, "Runs"),
                       markup.scroll(markup.grid(RUN_COLUMNS, [r.cells() for r in content.runs]))])
    if content.notes:
        blocks.extend([markup.heading(2, "Notes"), markup.bullets(content.notes)])
    return blocks


def _html_page(title: str, blocks: Sequence[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(blocks)
        + "\n</body>\n</html>\n"
    )


def build_report(
    out_dir: str | Path,
    title: str,
    table_rows: Rows,
    figures: Sequence[tuple[str, str | Path]],
    notes: Sequence[str] = (),
    columns: Sequence[str] = TABLE_COLUMNS,
    *,
    caption: str = "",
    alerts: Sequence[str] = (),
    runs: Sequence[RunRecord] = (),
    tables: tuple[str, str] | None = None,
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir``, atomically.

    Args:
        out_dir: the report folder (created if needed); figure paths in the Markdown are
            relative to it.
        title: report heading.
        table_rows: model name -> metrics (the comparison table, best per column in bold).
        figures: (caption, image path) pairs in display order; the files must exist.
        notes: free-text remarks listed at the end (e.g. data, threshold selection).
        columns: metric keys shown in the table.
        caption: Table 1's caption after "Table 1." (split, pixels, what bold means:
            :func:`~slidemap.evaluation.table.table_caption`).
        alerts: remarks shown in a box under the title (e.g. synthetic data).
        runs: the training runs behind the table (config, seed, version, time).
        tables: ``(markdown, html)`` of a table made elsewhere (e.g. mean ± std over
            seeds), shown instead of the one of ``table_rows``.

    Returns:
        ``(md_path, html_path)``.
    """
    out_dir = Path(out_dir)
    resolved = [(caption, Path(path)) for caption, path in figures]
    missing = [str(path) for _, path in resolved if not current_path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"report figures not found: {', '.join(missing)}")
    content = _Content(title, table_rows, columns, caption, resolved, notes, alerts, runs)
    md_table, html_text = tables or (None, None)
    md_blocks = _blocks(_markdown_markup(out_dir), dataclasses.replace(content, table_text=md_table))
    html_blocks = _blocks(_HTML_MARKUP, dataclasses.replace(content, table_text=html_text))
    md_path = write_text_atomic(out_dir / "report.md", "\n".join(md_blocks))
    html_path = write_text_atomic(out_dir / "report.html", _html_page(title, html_blocks))
    return md_path, html_path
