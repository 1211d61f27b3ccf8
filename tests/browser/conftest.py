"""Browser tests: the dashboard in Debian's headless Chromium, driven by Playwright, against the whole
local stack (the ``local_stack`` fixture: API + sandbox + dashboard on a loopback port).

Without Chromium (``/usr/bin/chromium``, or ``CHROMIUM_PATH``) or Playwright the tests are skipped with
the reason; under ``CI=true`` a missing prerequisite fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1360, "height": 900}
PHONE = {"width": 390, "height": 844}  # a common phone, in CSS pixels
DESKTOP = {"width": 1280, "height": 800}
# Generous bound for auto-waiting expectations on a loaded 2-core CI machine; never a timing assertion.
EXPECT_TIMEOUT_MS = 20_000
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "docs" / "screenshots"


def in_ci() -> bool:
    """True when running in CI, where a missing prerequisite is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing_prerequisite(reason: str) -> None:
    """Skip with ``reason`` (fail under CI)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: browser tests must run)", pytrace=False)
    pytest.skip(reason)


def cjk_font_installed() -> bool:
    """True when fontconfig knows a Traditional Chinese font (else Chinese renders as boxes)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return False
    result = subprocess.run(
        [fc_list, ":lang=zh-tw", "family"], capture_output=True, text=True, check=False, timeout=60
    )
    return bool(result.stdout.strip())


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the session."""
    if not CHROMIUM.exists():
        missing_prerequisite(f"{CHROMIUM} is missing: apt-get install -y chromium fonts-noto-cjk")
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        missing_prerequisite("playwright is not installed: make venv (it is in the dev extra)")
    from playwright.sync_api import expect  # noqa: PLC0415

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context (empty localStorage, English locale) and page.

    JavaScript errors on any page fail the test: the dashboard must never throw.
    """
    context = chromium.new_context(viewport=VIEWPORT, locale="en-US", timezone_id="Asia/Taipei")
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not page_errors, f"JavaScript errors in the page: {page_errors}"


@pytest.fixture
def open_page(chromium: Any) -> Iterator[Callable[..., Any]]:
    """A factory of fresh pages at a given viewport (``PHONE`` pages are mobile and touch, as on a phone).

    JavaScript errors on any of them fail the test, as with ``browser_page``.
    """
    contexts: list[Any] = []
    page_errors: list[str] = []

    def make(viewport: dict[str, int] = VIEWPORT) -> Any:
        phone = viewport["width"] <= PHONE["width"]
        context = chromium.new_context(
            viewport=viewport, locale="en-US", timezone_id="Asia/Taipei", is_mobile=phone, has_touch=phone
        )
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        return page

    try:
        yield make
    finally:
        for context in contexts:
            context.close()
    assert not page_errors, f"JavaScript errors in the page: {page_errors}"


@pytest.fixture
def seeder(local_stack: str) -> Any:
    """Makes users and transactions over HTTP (see seed.py)."""
    from tests.browser.seed import Seeder  # noqa: PLC0415

    return Seeder(local_stack.rstrip("/"))


@pytest.fixture
def dashboard(browser_page: Any, local_stack: str) -> Any:
    """The dashboard page object on the local stack."""
    from tests.browser.dashboard_ui import Dashboard  # noqa: PLC0415

    return Dashboard(page=browser_page, base_url=local_stack.rstrip("/"))


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: docs/screenshots when UPDATE_SCREENSHOTS=1, else a temporary folder."""
    if os.environ.get("UPDATE_SCREENSHOTS", "") == "1":
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        return SCREENSHOT_DIR
    return tmp_path
