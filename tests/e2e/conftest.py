"""Fixtures of the end-to-end browser tests: one chromium per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def chrome() -> Iterator[object]:
    """Debian's chromium driven by Playwright (skips where it is not installed)."""
    if not CHROMIUM.exists():  # pragma: no cover - `make test` installs it
        pytest.skip("Debian chromium is not installed (`make chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
