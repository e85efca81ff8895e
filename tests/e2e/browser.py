"""Headless Chromium for the browser tests, and npm packages they load from a lockfile.

Debian's /usr/bin/chromium driven by Playwright (never `playwright install`). A test that needs
the browser skips on a machine without it, and fails where KILDE_TEST__REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium stalls on a machine with no internet.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _need(missing: str) -> None:
    if os.environ.get("KILDE_TEST__REQUIRE_BROWSER") == "1":
        pytest.fail(f"The browser test is required here (KILDE_TEST__REQUIRE_BROWSER=1): "
                    f"{missing}.")
    pytest.skip(missing)


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium (a Playwright Browser)."""
    if not Path(CHROMIUM).exists():
        _need(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def app_page(browser: Any, url: str, *, timeout_ms: int = 20_000) -> Iterator[Any]:
    """A fresh page (Norwegian locale, Oslo time) on the web app at `url`, once it says it is
    ready; on leaving, the page must have logged no error and thrown nothing."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nb-NO",
                                  timezone_id="Europe/Oslo")
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    try:
        yield page
    finally:
        context.close()
    assert problems == []


def npm_installed(directory: Path, package: str) -> Path:
    """`directory`'s node_modules/`package`, installed with `npm ci` from its committed
    lockfile when missing."""
    target = directory / "node_modules" / package
    if not target.is_dir():
        npm = shutil.which("npm")
        if npm is None:
            _need(f"npm is needed to install {package} for this test")
        done = subprocess.run([npm or "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                              cwd=directory, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"npm ci failed in {directory}: {done.stderr.strip()[-300:]}")
    return target
