"""End-to-end browser tests: ``streamlit run`` on a free loopback port, driven by Playwright with
Debian's chromium (``/usr/bin/chromium``; no browser download).

1. A dermatologist opens the demo, finds ink marks among the confounders, masks ink, sees the
   debiased metrics change and saves the intervention with a rationale.
2. An auditor opens the history, downloads the CSV and checks it holds that intervention with a
   valid hash chain (``store.verify_file``), and sees no write controls.
3. Sign-in with OpenID Connect against a local ``oidc-provider-mock``: the signed-in subject is
   the actor the store records.

Screenshots of every page go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest_ui import ARTIFACTS, ui_workspace_fixture  # noqa: F401

from concepts import Workspace
from store import EventFilter, Store, read_export, verify_file
from workbench.cli._serve import plan_serve

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ARTIFACTS / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage"]
STARTUP_S = 120
UI_TIMEOUT_MS = 180_000

if not CHROMIUM.exists():  # pragma: no cover - `make test` installs it
    pytest.skip("Debian chromium is not installed (`make chromium`)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

with warnings.catch_warnings():  # authlib deprecations raised by oidc-provider-mock's imports
    import authlib.deprecate  # noqa: F401 - installs an "always" filter of its own on import

    warnings.simplefilter("ignore", DeprecationWarning)
    import oidc_provider_mock
    import werkzeug.serving

expect.set_options(timeout=UI_TIMEOUT_MS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(root: Path, log: Path, *, role: str = "dermatologist", auth: str = "local",
          port: int | None = None, secrets: Path | None = None) -> Iterator[str]:
    """``workbench serve`` (the same plan: command line and environment) in the background."""
    base = {**os.environ, "WORKBENCH_STORE_TIMEOUT": "20"}
    plan = plan_serve(Workspace(root), host="127.0.0.1", port=port or _free_port(), role=role,
                      auth=auth, secrets_file=secrets, base_env=base)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(plan.argv, env=plan.env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + STARTUP_S
            while True:
                try:
                    with urllib.request.urlopen(f"{plan.url}/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
            yield plan.url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def chrome() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def e2e_workspace(ui_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy: the dermatologist's test writes, the auditor's test reads it back."""
    root = tmp_path_factory.mktemp("e2e") / "ws"
    shutil.copytree(ui_workspace, root)
    return root


def _new_page(browser: Browser) -> Page:
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    return page


def _settle(page: Page) -> None:
    """Wait until the app stops running (no 'Running...' status) and spinners are gone."""
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("stSpinner")).to_have_count(0, timeout=UI_TIMEOUT_MS)
    page.wait_for_timeout(300)


def _title(page: Page, text: str) -> None:
    expect(page.get_by_role("heading", name=text, level=1)).to_be_visible()
    _settle(page)


def _goto(page: Page, name: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True).click()
    _title(page, name)


def _shot(page: Page, name: str, height: int = 1700) -> None:
    """A screenshot of the whole page (Streamlit scrolls inside its main block, so the viewport
    is made taller for the shot)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1440, "height": height})
    page.wait_for_timeout(1200)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size({"width": 1440, "height": 1000})


def _no_exception(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_dermatologist_masks_ink_and_saves(chrome: Browser, e2e_workspace: Path) -> None:
    page = _new_page(chrome)
    with serve(e2e_workspace, ARTIFACTS / "logs" / "e2e-dermatologist.log") as url:
        page.goto(url)
        _title(page, "Overview")
        expect(page.get_by_text("Accuracy, debiased test", exact=True)).to_be_visible()
        _shot(page, "overview")

        for name, shot in (("Concepts", "concepts"), ("Case explorer", "case_explorer")):
            _goto(page, name)
            _no_exception(page)
            _shot(page, shot)

        _goto(page, "Knowledge graph")
        page.get_by_test_id("stSelectbox").filter(has_text="Evidence for node").locator("input").click()
        page.keyboard.type("ink")
        page.keyboard.press("Enter")
        _settle(page)
        expect(page.get_by_role("heading", name=re.compile(r"^ink · artifact"))).to_be_visible()
        expect(page.get_by_text("expected: irrelevant", exact=False)).to_be_visible()
        _shot(page, "knowledge_graph")

        _goto(page, "Confounders")
        _no_exception(page)
        first = page.get_by_text(re.compile(r"^1\. ink \(melanoma\)"))
        expect(first).to_be_visible()
        _shot(page, "confounders")
        page.get_by_role("button", name="Mask ink").click()
        _title(page, "Interventions")

        # ink is preselected with a full mask: the debiased metrics show a change
        expect(page.get_by_text("mask ink (1) at", exact=False)).to_be_visible()
        debiased = page.get_by_test_id("stMetric").filter(has_text="Accuracy").first
        expect(debiased.get_by_test_id("stMetricDelta")).to_be_visible()
        before_move = page.get_by_test_id("stMetric").all_inner_texts()

        slider = page.get_by_role("slider").first
        slider.focus()
        for _ in range(10):  # strength 1.0 -> 0.5
            slider.press("ArrowLeft")
        _settle(page)
        expect(page.get_by_text("mask ink (0.5) at", exact=False)).to_be_visible()
        assert page.get_by_test_id("stMetric").all_inner_texts() != before_move
        for _ in range(10):
            slider.press("ArrowRight")
        _settle(page)
        expect(page.get_by_text("mask ink (1) at", exact=False)).to_be_visible()
        _shot(page, "interventions")

        page.get_by_label("Rationale (required)").fill(
            "Ink markings are clinically irrelevant; the model uses them as a melanoma shortcut."
        )
        page.get_by_role("button", name="Save intervention").click()
        _settle(page)
        expect(page.get_by_text(re.compile(r"Saved mask ink .* as iv-"))).to_be_visible()
        _no_exception(page)
        _shot(page, "interventions_saved")

    applied = Store.for_workspace(e2e_workspace).events(EventFilter(action="applied"))
    assert len(applied) == 1 and applied[0].concept == "ink"
    assert applied[0].actor_role == "dermatologist"


def test_auditor_downloads_verified_history(chrome: Browser, e2e_workspace: Path, tmp_path: Path) -> None:
    s = Store.for_workspace(e2e_workspace)
    applied = s.events(EventFilter(action="applied"))
    if not applied:
        pytest.skip("needs the dermatologist's intervention (run the module in order)")
    iid = applied[0].intervention_id
    page = _new_page(chrome)
    with serve(e2e_workspace, ARTIFACTS / "logs" / "e2e-auditor.log", role="auditor") as url:
        page.goto(url)
        _title(page, "Audit")  # auditors land on the history
        expect(page.get_by_text("Chain intact")).to_be_visible()
        expect(page.get_by_text("Read-only: auditors change nothing.")).to_be_visible()
        _shot(page, "audit")

        with page.expect_download() as dl:
            page.get_by_role("button", name="History as CSV").click()
        out = tmp_path / "history.csv"
        dl.value.save_as(out)

        _goto(page, "Interventions")
        expect(page.get_by_text("Read-only: you can explore what-ifs")).to_be_visible()
        expect(page.get_by_role("button", name="Save intervention")).to_have_count(0)
        expect(page.get_by_role("button", name="Revert")).to_have_count(0)
        _goto(page, "Confounders")
        expect(page.get_by_role("button", name="Mask ink")).to_have_count(0)

    result = verify_file(out)
    assert result.ok, result.reason
    rows = read_export(out)
    mine = [r for r in rows if r["intervention_id"] == iid]
    assert {r["action"] for r in mine} >= {"proposed", "applied", "effect_recorded"}
    assert any(r["action"] == "applied" and "ink" in str(r["rationale"]).lower() for r in mine)
    exported = s.events(EventFilter(action="exported"))
    assert exported and exported[-1].actor_role == "auditor"


# ---------------------------------------------------------------------------- OIDC sign-in
@contextmanager
def oidc_provider(users: dict[str, dict[str, object]]) -> Iterator[str]:
    """``oidc-provider-mock`` on 127.0.0.1 (a free port) in a background thread."""
    app = oidc_provider_mock.app(
        user_claims=[oidc_provider_mock.User(sub=sub, claims=claims) for sub, claims in users.items()],
        require_nonce=True,
    )
    server = werkzeug.serving.make_server("127.0.0.1", _free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def test_oidc_sign_in_records_subject(chrome: Browser, ui_workspace: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(ui_workspace, root)
    users = {
        "derm-7f3a": {"name": "Dr Dana Derm", "email": "dana@clinic.example", "email_verified": True},
        "audit-91c2": {"name": "Alex Audit", "email": "alex@audit.example", "email_verified": True},
    }
    (root / "roles.toml").write_text(
        '[subjects]\n"derm-7f3a" = "dermatologist"\n[emails]\n"alex@audit.example" = "auditor"\n'
    )
    with oidc_provider(users) as issuer:
        port = _free_port()
        secrets = tmp_path / "secrets.toml"
        secrets.write_text(
            "[auth]\n"
            f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
            'cookie_secret = "Vq3xK9bT2mZ7wR4pL8nY1cF6hJ0dS5gA-eU_iOoQzWk"\n'
            'client_id = "concept-workbench"\n'
            'client_secret = "e2e-secret"\n'
            f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n'
        )
        page = _new_page(chrome)
        log = ARTIFACTS / "logs" / "e2e-oidc.log"
        with serve(root, log, auth="oidc", port=port, secrets=secrets) as url:
            page.goto(url)
            _title(page, "Concept Workbench")
            _shot(page, "sign_in")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("button", name="derm-7f3a").click()  # the provider's user picker
            _title(page, "Overview")
            expect(page.get_by_text("Dr Dana Derm")).to_be_visible()
            _goto(page, "Audit")
            with page.expect_download() as dl:
                page.get_by_role("button", name="History as JSONL").click()
            dl.value.save_as(tmp_path / "h.jsonl")

            page.get_by_role("button", name="Sign out").click()
            page.get_by_role("button", name="End session").click()  # the provider's logout page
            _title(page, "Concept Workbench")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("button", name="audit-91c2").click()
            _title(page, "Audit")
            expect(page.get_by_text("Alex Audit")).to_be_visible()

    exported = Store.for_workspace(root).events(EventFilter(action="exported"))
    assert exported[0].actor_id.endswith("#derm-7f3a")  # <issuer>#<subject>
    assert exported[0].actor_source == "oidc" and exported[0].actor_name == "Dr Dana Derm"
