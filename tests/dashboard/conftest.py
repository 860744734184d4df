"""Fixtures for the dashboard tier: Debian's chromium driven by Playwright, against a
real local farm (the system tier's ``start_farm``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from tests.system.conftest import start_farm  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
LAPTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """One headless chromium for the whole run (Debian's package: nothing is downloaded)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: `make browser` installs it")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser) -> Iterator[Callable[[], Page]]:
    """Open pages in fresh browser contexts (no cookies or storage: one identity each) at
    laptop size; a JavaScript error in any of them fails the test."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def open_new() -> Page:
        context = browser.new_context(viewport=LAPTOP, accept_downloads=True)
        context.set_default_timeout(15_000)
        contexts.append(context)
        new_page = context.new_page()
        new_page.on("pageerror", lambda error: errors.append(str(error)))
        return new_page

    yield open_new
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
def page(open_page) -> Page:
    """A page in a fresh browser context."""
    return open_page()
