"""The report in a real browser: headless Chromium loads it from a loopback server, offline.

Skipped unless Chromium, chromedriver and selenium are installed (Debian:
``apt-get install -y chromium chromium-driver``; ``pip install selenium``). The full-page
screenshot goes to ``$INITLAB_SCREENSHOT_DIR`` (or the test's tmp folder) for a human to look at.
"""

from __future__ import annotations

import base64
import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep pytest's output clean
        pass


@pytest.fixture
def served_report(tmp_path: Path) -> Iterator[str]:
    """The synthetic store's report, served on 127.0.0.1 from a thread; yields its URL."""
    from test_report import NOTES, THEORY, build_store

    from initlab.report import build_report

    store = build_store(tmp_path / "sweep.sqlite")
    out = build_report(
        store,
        tmp_path / "site",
        title="Synthetic sweep: three initializers, three seeds",
        theory=THEORY,
        notes=NOTES,
        histogram_epochs=[0, 2, 4],
    ).parent
    handler = functools.partial(_QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/report.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_report_renders_in_chromium_without_errors(served_report: str, browser: object, tmp_path: Path) -> None:
    browser.get(served_report)
    assert browser.execute_script("return document.readyState") == "complete"
    assert browser.title == "Synthetic sweep: three initializers, three seeds"

    images = browser.execute_script(
        "return Array.from(document.images).map(function (img) {"
        "  var box = img.getBoundingClientRect();"
        "  return {complete: img.complete, natural: img.naturalWidth, width: box.width, height: box.height};"
        "});"
    )
    assert len(images) >= 10
    for image in images:
        assert image["complete"] and image["natural"] > 0, image
        assert image["width"] > 0 and image["height"] > 0, image

    # Nothing but the page itself came over the network (inline images are not fetched).
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; });"
    )
    assert [name for name in fetched if not name.startswith("data:")] == []

    # The runs table is collapsed, and opens.
    assert browser.execute_script("return document.querySelector('details.runs').open") is False
    browser.execute_script("document.querySelector('details.runs summary').click()")
    assert browser.execute_script(
        "return document.querySelector('details.runs table').getBoundingClientRect().height"
    ) > 0
    browser.execute_script("document.querySelector('details.runs').open = false")

    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []

    folder = Path(os.environ.get("INITLAB_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    metrics = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    path = folder / "report_full_page.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 10_000
    print(f"screenshot: {path}")

    # Every section, at a desktop's width and at 700 px: nothing overflows the page sideways
    # (wide tables scroll inside their own box), and each section is screenshot for a reader.
    from selenium.webdriver.common.by import By

    for width in (1400, 700):
        browser.set_window_size(width, 1000)
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than a {width} px window"
        sections = browser.find_elements(By.CSS_SELECTOR, "section")
        assert len(sections) >= 5
        for section in sections:
            anchor = section.get_attribute("id") or "section"
            shot_path = folder / f"report_{width}px_{anchor}.png"
            shot_path.write_bytes(base64.b64decode(section.screenshot_as_base64))
            assert shot_path.stat().st_size > 1_000
    print(f"section screenshots: {folder}")
