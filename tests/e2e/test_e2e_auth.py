"""Issue #13.3 against a real server: ``streamlit run workbench/app.py`` started directly (no
``workbench serve``, ``WORKBENCH_AUTH`` unset) refuses local mode unless it listens on loopback.

Drives Debian's chromium with Playwright like ``tests/test_e2e_ui.py`` (marked ``e2e``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest_ui import APP

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():  # pragma: no cover - `make test` installs it
    pytest.skip("Debian chromium is not installed (`make chromium`)", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

expect.set_options(timeout=120_000)

ENV_DROP = ("WORKBENCH_AUTH", "WORKBENCH_ROLE", "WORKBENCH_ROLES_FILE", "WORKBENCH_SECRETS_FILE")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def streamlit_run(workspace: Path, address: str | None, log: Path) -> Iterator[str]:
    """``streamlit run workbench/app.py`` as an operator might type it."""
    port = _free_port()
    argv = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    if address is not None:
        argv += ["--server.address", address]
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    env["WORKBENCH_WORKSPACE"] = str(workspace)
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workspace.parent)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(log.read_text()[-2000:]) from None
                    time.sleep(0.3)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _settled(page: Page) -> None:
    page.wait_for_timeout(500)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
    page.wait_for_timeout(500)


@pytest.mark.parametrize(("address", "refused"), [(None, True), ("0.0.0.0", True), ("127.0.0.1", False)])
def test_streamlit_run_refuses_local_mode_off_loopback(tmp_path: Path, address: str | None, refused: bool) -> None:
    ws = tmp_path / "ws"  # not built: the app says so, which is enough to see who is signed in
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            with streamlit_run(ws, address, tmp_path / "streamlit.log") as url:
                page = browser.new_page()
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
            browser.close()
