"""The comparison report: ``report.md`` next to its figures, and a self-contained ``report.html``.

The Markdown refers to the figure files by paths relative to the report, for reading in a
repository or an editor. The HTML embeds every image as a base64 ``data:`` URI and carries
its own CSS, so the one file can be mailed or archived: it loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from slidemap.evaluation.table import TABLE_COLUMNS, Rows, html_table, markdown_table
from slidemap.io.atomic import write_text_atomic

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.5; }
table { border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
thead th { background: #f2f2f2; }
tbody th { text-align: left; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.95rem; color: #444; }
"""


def _data_uri(path: Path) -> str:
    """The file at ``path`` as a ``data:<mime>;base64,...`` URI."""
    mime = mimetypes.guess_type(path.name)[0]
    if mime is None or not mime.startswith("image/"):
        raise ValueError(f"{path}: not an image file this report can embed (.png, .jpg, .svg)")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


@dataclass(frozen=True)
class _Markup:
    """How one output format writes the report's few kinds of block."""

    heading: Callable[[int, str], str]
    figure: Callable[[int, str, Path], str]
    bullets: Callable[[Sequence[str]], str]


def _markdown_markup(out_dir: Path) -> _Markup:
    def figure(number: int, caption: str, path: Path) -> str:
        relative = Path(os.path.relpath(path, out_dir)).as_posix()
        return f"![{caption}]({relative})\n\n*Figure {number}. {caption}*\n"

    return _Markup(
        heading=lambda level, text: f"{'#' * level} {text}\n",
        figure=figure,
        bullets=lambda items: "".join(f"- {item}\n" for item in items),
    )


def _html_figure(number: int, caption: str, path: Path) -> str:
    return (
        f'<figure><img src="{_data_uri(path)}" alt="{html.escape(caption, quote=True)}">'
        f"<figcaption>Figure {number}. {html.escape(caption)}</figcaption></figure>"
    )


_HTML_MARKUP = _Markup(
    heading=lambda level, text: f"<h{level}>{html.escape(text)}</h{level}>",
    figure=_html_figure,
    bullets=lambda items: "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>",
)


def _blocks(
    markup: _Markup,
    title: str,
    table: str,
    figures: Sequence[tuple[str, Path]],
    notes: Sequence[str],
) -> list[str]:
    """The report's blocks in order: title, comparison table, figures, notes."""
    blocks = [markup.heading(1, title), markup.heading(2, "Comparison"), table]
    if figures:
        blocks.append(markup.heading(2, "Figures"))
        blocks.extend(
            markup.figure(number, caption, path)
            for number, (caption, path) in enumerate(figures, start=1)
        )
    if notes:
        blocks.extend([markup.heading(2, "Notes"), markup.bullets(notes)])
    return blocks


def _html_page(title: str, blocks: Sequence[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
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
        tables: ``(markdown, html)`` of a table made elsewhere (e.g. mean ± std over
            seeds), shown instead of the one of ``table_rows``.

    Returns:
        ``(md_path, html_path)``.
    """
    out_dir = Path(out_dir)
    resolved = [(caption, Path(path)) for caption, path in figures]
    missing = [str(path) for _, path in resolved if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"report figures not found: {', '.join(missing)}")
    md_table, html_text = tables or (markdown_table(table_rows, columns), html_table(table_rows, columns))
    md_blocks = _blocks(_markdown_markup(out_dir), title, md_table, resolved, notes)
    html_blocks = _blocks(_HTML_MARKUP, title, html_text, resolved, notes)
    md_path = write_text_atomic(out_dir / "report.md", "\n".join(md_blocks))
    html_path = write_text_atomic(out_dir / "report.html", _html_page(title, html_blocks))
    return md_path, html_path
