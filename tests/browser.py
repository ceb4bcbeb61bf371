"""A report page opened in a real headless browser (Debian's chromium, driven by selenium through
chromium-driver): does it load, does every image resolve, is the console free of errors?"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL = ("needs a headless browser: apt-get install chromium chromium-driver (Debian; .ci/run does it) "
           "and selenium (pip install -e '.[test]')")


def _find(*names: str) -> str | None:
    return next((p for p in map(shutil.which, names) if p), None)


@pytest.fixture(scope="session")
def browser():
    """A headless chromium, or a skip that says how to install one."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip(f"selenium is not installed: {INSTALL}")
    binary = _find("chromium", "chromium-browser", "google-chrome")
    driver_bin = _find("chromedriver", "chromium-driver")
    if binary is None or driver_bin is None:
        pytest.skip(f"{'chromium' if binary is None else 'chromedriver'} not found: {INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    # --no-sandbox: CI containers run as root, where chromium's sandbox refuses to start.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", "--window-size=1280,1024"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.common.exceptions import SessionNotCreatedException

    # chromium that starts slower than chromedriver waits for it (a busy machine) gets a second try.
    for attempt in range(3):
        try:
            driver = webdriver.Chrome(options=options, service=Service(driver_bin))
            break
        except SessionNotCreatedException:
            if attempt == 2:
                raise
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@dataclass
class PageCheck:
    ready: str
    title: str
    images: list[tuple[str, bool]]  # (src as written in the page, loaded with a size)
    console_errors: list[str]

    @property
    def broken_images(self) -> list[str]:
        return [src for src, ok in self.images if not ok]


def open_page(driver, page: Path) -> PageCheck:
    driver.get_log("browser")  # drop what an earlier page left
    driver.get(page.resolve().as_uri())  # returns after the load event: images have settled
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);")
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    return PageCheck(driver.execute_script("return document.readyState;"), driver.title,
                     [(src, bool(ok)) for src, ok in images], errors)
