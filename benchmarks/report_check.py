"""Render a comparison report in headless Chromium at several window widths and check it.

    python benchmarks/report_check.py runs/demo/report.html [--widths 400 1400] [--out DIR]

For each width: every image loaded; the page itself never wider than the window (nothing
cut, no page-wide sideways scrolling); every table whole inside its box, or its box
scrolls sideways and, scrolled to the end, shows the table's last column. Prints a table,
writes ``report_check.json`` and a screenshot per width (``report_<width>px.png``) into
``--out`` (default ``benchmarks/results/``). Needs Debian's ``chromium`` (or ``--browser``);
exits 1 when a check fails, 2 when no browser is found. The same check runs in
``tests/evaluation/test_report_in_browser.py`` (skipped without a browser).

The report is never modified: a copy with a measuring script appended is rendered (the
report itself has no scripts).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
WINDOW_HEIGHT_PX = 1000

#: Runs in the page after load; leaves its findings as JSON in <pre id="slidemap-check">.
_MEASURE = """
<script>
window.addEventListener("load", () => {
  const width = window.innerWidth;
  const boxes = [...document.querySelectorAll("table")].map((table) => {
    const box = table.parentElement;
    box.scrollLeft = box.scrollWidth;  // scrolled to the end: is the last column in view?
    const last = table.rows[0].cells[table.rows[0].cells.length - 1].getBoundingClientRect();
    const frame = box.getBoundingClientRect();
    return {
      scrolls: getComputedStyle(box).overflowX === "auto" && box.scrollWidth > box.clientWidth,
      fits: box.scrollWidth <= box.clientWidth,
      last_column_reachable: last.right <= frame.right + 1 && last.left >= frame.left - 1,
      table_px: Math.round(table.getBoundingClientRect().width),
      box_px: box.clientWidth,
    };
  });
  const images = [...document.images].map((img) => img.complete && img.naturalWidth > 0);
  const result = {
    window_px: width,
    page_px: document.documentElement.scrollWidth,
    page_fits: document.documentElement.scrollWidth <= width,
    images: images.length,
    images_loaded: images.filter(Boolean).length,
    tables: boxes,
  };
  const out = document.createElement("pre");
  out.id = "slidemap-check";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


def find_browser(name: str | None = None) -> str | None:
    """Path of a Chromium-family browser (``name`` first), or None."""
    for candidate in ((name,) if name else BROWSERS):
        path = shutil.which(candidate)
        if path:
            return path
    return None


def _browser_command(browser: str, profile: Path, width: int) -> list[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--no-first-run", f"--user-data-dir={profile}",
            f"--window-size={width},{WINDOW_HEIGHT_PX}", "--hide-scrollbars",
            "--virtual-time-budget=10000"]


def check_report(report: Path, width: int, browser: str, screenshot: Path | None = None) -> dict:
    """Render ``report`` at ``width`` px and return the measurements, with ``ok`` (bool) and
    ``problems`` (list of sentences)."""
    with tempfile.TemporaryDirectory(prefix="slidemap-report-check-") as tmp:
        page = Path(tmp) / "report.html"
        text = report.read_text(encoding="utf-8")
        page.write_text(text.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
        command = _browser_command(browser, Path(tmp) / "profile", width)
        dom = subprocess.run([*command, "--dump-dom", page.as_uri()], capture_output=True,
                             text=True, timeout=120, check=True).stdout
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([*command, f"--screenshot={screenshot}", report.resolve().as_uri()],
                           capture_output=True, timeout=120, check=True)
    found = re.search(r'<pre id="slidemap-check">(.*?)</pre>', dom, re.S)
    if found is None:
        raise RuntimeError(f"{report}: the browser returned no measurements at {width} px")
    result = json.loads(html.unescape(found.group(1)))
    problems = []
    if not result["page_fits"]:
        problems.append(f"the page is {result['page_px']} px wide in a {width} px window")
    if result["images_loaded"] != result["images"]:
        problems.append(f"{result['images'] - result['images_loaded']} image(s) did not load")
    for number, table in enumerate(result["tables"], start=1):
        if not (table["fits"] or table["scrolls"]):
            problems.append(f"table {number} is cut ({table['table_px']} px in {table['box_px']} px)")
        if not table["last_column_reachable"]:
            problems.append(f"table {number}: its last column cannot be scrolled into view")
    return {**result, "ok": not problems, "problems": problems}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="report.html to check")
    parser.add_argument("--widths", type=int, nargs="+", default=[400, 1400],
                        help="window widths in px (default: 400 1400)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for JSON and screenshots")
    parser.add_argument("--browser", default=None, help="browser executable (default: chromium)")
    args = parser.parse_args(argv)
    browser = find_browser(args.browser)
    if browser is None:
        print("no Chromium-family browser found (apt-get install chromium)", file=sys.stderr)
        return 2
    results = {}
    print("| window px | page px | images loaded | tables (fit / scroll) | ok |")
    print("| ---: | ---: | ---: | --- | --- |")
    for width in args.widths:
        result = check_report(args.report, width, browser, args.out / f"report_{width}px.png")
        results[str(width)] = result
        tables = ", ".join("fit" if t["fits"] else "scroll" for t in result["tables"])
        print(f"| {width} | {result['page_px']} | {result['images_loaded']}/{result['images']} | "
              f"{tables} | {'yes' if result['ok'] else '; '.join(result['problems'])} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report_check.json").write_text(json.dumps(
        {"report": str(args.report), "browser": browser, "widths": results}, indent=2) + "\n")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
