"""What the end-to-end browser tests share besides fixtures: Debian's chromium, the one Streamlit
start-up helper (:func:`running_app`, behind ``workbench serve``'s plan in :func:`serve` and a
bare ``streamlit run`` in tests/e2e/test_e2e_auth.py) and the Playwright page helpers.

The ``chrome`` fixture (one browser per test module) is in tests/e2e/conftest.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from concepts import Workspace
from tests.support.ui import ARTIFACTS
from workbench.cli._serve import plan_serve

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "SHOTS", "STARTUP_S", "UI_TIMEOUT_MS", "free_port", "goto", "new_page",
           "no_exception", "running_app", "serve", "settle", "shot", "title"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage"]
SHOTS = ARTIFACTS / "screenshots"
STARTUP_S = 120
UI_TIMEOUT_MS = 180_000
# every `expect` of the browser tests waits as long as the UI may take on a busy 2-core machine
# (playwright's default of 5 s made a test file run alone fail under load)
expect.set_options(timeout=UI_TIMEOUT_MS)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_app(argv: list[str], env: Mapping[str, str], url: str, log: Path, *,
                cwd: Path | None = None) -> Iterator[str]:
    """Start a Streamlit server (``argv``) in the background, wait until ``url`` answers its
    health check, yield ``url``; stop the server on exit. Its output goes to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        try:
            deadline = time.monotonic() + STARTUP_S
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def serve(root: Path, log: Path, *, role: str = "dermatologist", auth: str = "local",
          port: int | None = None, secrets: Path | None = None) -> Iterator[str]:
    """``workbench serve`` (the same plan: command line and environment) in the background."""
    base = {**os.environ, "WORKBENCH_STORE_TIMEOUT": "20"}
    plan = plan_serve(Workspace(root), host="127.0.0.1", port=port or free_port(), role=role,
                      auth=auth, secrets_file=secrets, base_env=base)
    with running_app(plan.argv, plan.env, plan.url, log) as url:
        yield url


def new_page(browser: Browser) -> Page:
    """A page in a fresh context (1440 x 1000, downloads accepted, the UI timeout)."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    return page


def settle(page: Page) -> None:
    """Wait until the app stops running (no 'Running...' status) and spinners are gone."""
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("stSpinner")).to_have_count(0, timeout=UI_TIMEOUT_MS)
    page.wait_for_timeout(300)


def title(page: Page, text: str) -> None:
    """Wait for the page heading ``text``, then for the app to settle."""
    expect(page.get_by_role("heading", name=text, level=1)).to_be_visible()
    settle(page)


def goto(page: Page, name: str) -> None:
    """Open the page ``name`` from the sidebar navigation."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True).click()
    title(page, name)


def shot(page: Page, name: str, height: int = 1700) -> None:
    """A screenshot of the whole page (Streamlit scrolls inside its main block, so the viewport
    is made taller for the shot)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1440, "height": height})
    page.wait_for_timeout(1200)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size({"width": 1440, "height": 1000})


def no_exception(page: Page) -> None:
    """No Streamlit exception box on the page."""
    expect(page.get_by_test_id("stException")).to_have_count(0)
