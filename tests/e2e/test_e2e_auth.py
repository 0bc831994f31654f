"""Issue #13.3 against a real server: ``streamlit run workbench/app.py`` started directly (no
``workbench serve``, ``WORKBENCH_AUTH`` unset) refuses local mode unless it listens on loopback.

Drives Debian's chromium with Playwright (tests/e2e/conftest.py, tests/support/browser.py; marked ``e2e``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, free_port, running_app
from tests.support.ui import APP

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

if not CHROMIUM.exists():  # pragma: no cover - `make test` installs it
    pytest.skip("Debian chromium is not installed (`make chromium`)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402

expect.set_options(timeout=120_000)

ENV_DROP = ("WORKBENCH_AUTH", "WORKBENCH_ROLE", "WORKBENCH_ROLES_FILE", "WORKBENCH_SECRETS_FILE")


@contextmanager
def streamlit_run(workspace: Path, address: str | None, log: Path) -> Iterator[str]:
    """``streamlit run workbench/app.py`` as an operator might type it."""
    port = free_port()
    argv = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    if address is not None:
        argv += ["--server.address", address]
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    env["WORKBENCH_WORKSPACE"] = str(workspace)
    with running_app(argv, env, f"http://127.0.0.1:{port}", log, cwd=workspace.parent) as url:
        yield url


def _settled(page: Page) -> None:
    page.wait_for_timeout(500)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
    page.wait_for_timeout(500)


@pytest.mark.parametrize(("address", "refused"), [(None, True), ("0.0.0.0", True), ("127.0.0.1", False)])
def test_streamlit_run_refuses_local_mode_off_loopback(chrome: Browser, tmp_path: Path, address: str | None,
                                                       refused: bool) -> None:
    ws = tmp_path / "ws"  # not built: the app says so, which is enough to see who is signed in
    with streamlit_run(ws, address, tmp_path / "streamlit.log") as url:
        page = chrome.new_page()
        try:
            page.set_default_timeout(120_000)
            page.goto(url)
            if refused:
                expect(page.get_by_text("local mode refused", exact=False)).to_be_visible()
                _settled(page)
                expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)  # no page links
                assert "dermatologist" not in page.content()
                page.goto(f"{url}/audit")  # a page's URL typed directly: still refused
                expect(page.get_by_text("local mode refused", exact=False)).to_be_visible()
                _settled(page)
                assert "dermatologist" not in page.content()
            else:
                expect(page.get_by_text("dermatologist", exact=False).first).to_be_visible()
                _settled(page)
                assert "local mode refused" not in page.content()
        finally:
            page.context.close()
