"""The HTML report opened in a real headless Chromium: no console errors, charts drawn, screenshot kept.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them). Under
``CI=true`` a missing browser fails the test; locally it skips with the reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ptq.cli import main

pytestmark = pytest.mark.slow  # drives a browser

FIXTURES = Path(__file__).parent / "fixtures" / "history"
ARTIFACTS = Path(__file__).parent.parent / "artifacts"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path:
        return path
    message = f"{tool} not found: install the Debian packages chromium and chromium-driver (see .ci/run)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def browser(tmp_path):
    chromium, driver_path = _need("chromium"), _need("chromedriver")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def test_report_renders_in_chromium(browser, tmp_path):
    report = tmp_path / "report.html"
    assert main(["report", str(FIXTURES), "-o", str(report)]) == 0
    browser.get(report.as_uri())
    by = pytest.importorskip("selenium.webdriver.common.by").By

    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors

    charts = browser.find_elements(by.CSS_SELECTOR, "svg.chart")
    assert len(charts) > 50
    # Drawn, not just present: every chart has a laid-out size and marks inside it.
    sizes = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg.chart')).map(s => "
        "[s.getBoundingClientRect().width, s.getBoundingClientRect().height, s.querySelectorAll('circle,path,polyline').length])"
    )
    assert all(w > 0 and h > 0 and marks > 0 for w, h, marks in sizes), sizes[:5]
    # The known events of the fixture history are marked.
    assert browser.find_elements(by.CSS_SELECTOR, "svg.chart .pt.regression")
    # (the fixture's only speedup recovery is on another CPU: the gate does not compare it, no improvement mark)
    assert "gate: regression vs" in browser.page_source  # the tooltip names the gate's verdict and its base run
    assert browser.find_elements(by.CSS_SELECTOR, "svg.chart .pt.incomparable")
    assert "not recorded" in browser.find_element(by.TAG_NAME, "body").text

    # The inline filter works (and its script ran without error).
    box = browser.find_element(by.ID, "filter")
    box.send_keys("static_int8")
    visible = [
        c.get_attribute("data-case") for c in browser.find_elements(by.CSS_SELECTOR, ".case") if c.is_displayed()
    ]
    assert visible and all("static_int8" in c for c in visible)
    keys = pytest.importorskip("selenium.webdriver.common.keys").Keys
    box.send_keys(keys.CONTROL, "a")
    box.send_keys(keys.DELETE)
    assert all(c.is_displayed() for c in browser.find_elements(by.CSS_SELECTOR, ".case"))

    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1400, min(height, 16000))
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    shutil.copy(report, ARTIFACTS / "report.html")
