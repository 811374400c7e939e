"""The daily report's HTML in a real headless browser (Debian's Chromium) at 1280 px and 390 px:
screenshots for a person to look at (build/screenshots/, docs/reports.md) and a check in the page
that nothing is wider than the viewport."""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from reports import job as report_job
from tests.conftest import require_service
from tests.support.reports import add_run, at, busy_day

SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"
WIDTHS = (1280, 390)
DAY = date(2026, 4, 20)
# Runs in the page after load: the document's width against the viewport's, and any element
# that reaches past the right edge; posted to the frame's parent, which keeps it in its DOM for
# --dump-dom. (Headless Chromium's window is at least 500 px wide, so the page is measured in an
# iframe of the exact width; the screenshots themselves are taken at the exact window width.)
CHECK = """<script>
window.addEventListener('load', function () {
  var w = window.innerWidth, wide = [];
  document.querySelectorAll('body *').forEach(function (e) {
    var r = e.getBoundingClientRect();
    if (r.right > w + 0.5) wide.push(e.tagName + '.' + e.className + ' ' + Math.round(r.right));
  });
  parent.postMessage(JSON.stringify(
    {innerWidth: w, scrollWidth: document.documentElement.scrollWidth, wide: wide.slice(0, 10)}), '*');
});
</script>"""
FRAME = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="{src}" style="border:0;width:{width}px;height:900px"></iframe>
<script>window.addEventListener('message', function (m) {{
  document.body.setAttribute('data-layout', m.data); }});</script></body></html>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        require_service("Chromium (apt-get install chromium)")
    return found


def browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


@pytest.fixture
def page(db, tmp_path) -> str:
    busy_day(db, DAY)
    # A long job name and big numbers, the widest rows the page must fold.
    add_run(db, "convert_invalid_values_with_a_long_name", "failed", at(DAY, 3), 7200, 123_456_789)
    with db.connect() as conn:
        report = report_job.make_report(db, conn, DAY, tmp_path / "data")
    return report_job.page(report, "test-host").html


@pytest.mark.slow
@pytest.mark.parametrize("width", WIDTHS)
def test_the_page_fits_the_viewport_and_is_screenshotted(page, tmp_path, width):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shown = SCREENSHOTS / "daily-report.html"
    shown.write_text(page, encoding="utf-8")
    checked = tmp_path / f"check-{width}.html"
    checked.write_text(page.replace("</body>", CHECK + "</body>"), encoding="utf-8")

    frame = tmp_path / f"frame-{width}.html"
    frame.write_text(FRAME.format(src=checked.name, width=width), encoding="utf-8")
    out = browser(
        tmp_path, "--window-size=1400,1000", "--virtual-time-budget=5000", "--dump-dom", frame.as_uri()
    )
    found = re.search(r'data-layout="([^"]*)"', out.stdout)
    assert found, out.stdout[-2000:]
    layout = json.loads(html_lib.unescape(found.group(1)))
    assert layout["innerWidth"] == width
    assert layout["scrollWidth"] <= width, layout
    assert layout["wide"] == [], layout

    screenshot = SCREENSHOTS / f"daily-report-{width}.png"
    screenshot.unlink(missing_ok=True)
    browser(tmp_path, f"--window-size={width},2400", f"--screenshot={screenshot}", shown.as_uri())
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(data[16:20], "big") == width  # the PNG's width: the viewport's
