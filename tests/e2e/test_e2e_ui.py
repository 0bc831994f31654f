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

import re
import shutil
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from store import EventFilter, Store, read_export, verify_file
from tests.support.browser import (
    CHROMIUM,
    UI_TIMEOUT_MS,
    free_port,
    goto,
    new_page,
    no_exception,
    serve,
    settle,
    shot,
    title,
)
from tests.support.ui import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


if not CHROMIUM.exists():  # pragma: no cover - `make test` installs it
    pytest.skip("Debian chromium is not installed (`make chromium`)", allow_module_level=True)

from playwright.sync_api import Browser, expect  # noqa: E402

with warnings.catch_warnings():  # authlib deprecations raised by oidc-provider-mock's imports
    import authlib.deprecate  # noqa: F401 - installs an "always" filter of its own on import

    warnings.simplefilter("ignore", DeprecationWarning)
    import oidc_provider_mock
    import werkzeug.serving

expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture(scope="module")
def e2e_workspace(ui_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy: the dermatologist's test writes, the auditor's test reads it back."""
    root = tmp_path_factory.mktemp("e2e") / "ws"
    shutil.copytree(ui_workspace, root)
    return root


def test_dermatologist_masks_ink_and_saves(chrome: Browser, e2e_workspace: Path) -> None:
    page = new_page(chrome)
    with serve(e2e_workspace, ARTIFACTS / "logs" / "e2e-dermatologist.log") as url:
        page.goto(url)
        title(page, "Overview")
        expect(page.get_by_text("Accuracy, debiased test", exact=True)).to_be_visible()
        shot(page, "overview")

        for name, png in (("Concepts", "concepts"), ("Case explorer", "case_explorer")):
            goto(page, name)
            no_exception(page)
            shot(page, png)

        goto(page, "Knowledge graph")
        page.get_by_test_id("stSelectbox").filter(has_text="Evidence for node").locator("input").click()
        page.keyboard.type("ink")
        page.keyboard.press("Enter")
        settle(page)
        expect(page.get_by_role("heading", name=re.compile(r"^ink · artifact"))).to_be_visible()
        expect(page.get_by_text("expected: irrelevant", exact=False)).to_be_visible()
        shot(page, "knowledge_graph")

        goto(page, "Confounders")
        no_exception(page)
        first = page.get_by_text(re.compile(r"^1\. ink \(melanoma\)"))
        expect(first).to_be_visible()
        shot(page, "confounders")
        page.get_by_role("button", name="Mask ink").click()
        title(page, "Interventions")

        # ink is preselected with a full mask: the debiased metrics show a change
        expect(page.get_by_text("mask ink (1) at", exact=False)).to_be_visible()
        debiased = page.get_by_test_id("stMetric").filter(has_text="Accuracy").first
        expect(debiased.get_by_test_id("stMetricDelta")).to_be_visible()
        before_move = page.get_by_test_id("stMetric").all_inner_texts()

        slider = page.get_by_role("slider").first
        slider.focus()
        for _ in range(10):  # strength 1.0 -> 0.5
            slider.press("ArrowLeft")
        settle(page)
        expect(page.get_by_text("mask ink (0.5) at", exact=False)).to_be_visible()
        assert page.get_by_test_id("stMetric").all_inner_texts() != before_move
        for _ in range(10):
            slider.press("ArrowRight")
        settle(page)
        expect(page.get_by_text("mask ink (1) at", exact=False)).to_be_visible()
        shot(page, "interventions")

        page.get_by_label("Rationale (required)").fill(
            "Ink markings are clinically irrelevant; the model uses them as a melanoma shortcut."
        )
        page.get_by_role("button", name="Save intervention").click()
        settle(page)
        expect(page.get_by_text(re.compile(r"Saved mask ink .* as iv-"))).to_be_visible()
        no_exception(page)
        shot(page, "interventions_saved")

    applied = Store.for_workspace(e2e_workspace).events(EventFilter(action="applied"))
    assert len(applied) == 1 and applied[0].concept == "ink"
    assert applied[0].actor_role == "dermatologist"


def test_auditor_downloads_verified_history(chrome: Browser, e2e_workspace: Path, tmp_path: Path) -> None:
    s = Store.for_workspace(e2e_workspace)
    applied = s.events(EventFilter(action="applied"))
    if not applied:
        pytest.skip("needs the dermatologist's intervention (run the module in order)")
    iid = applied[0].intervention_id
    page = new_page(chrome)
    with serve(e2e_workspace, ARTIFACTS / "logs" / "e2e-auditor.log", role="auditor") as url:
        page.goto(url)
        title(page, "Audit")  # auditors land on the history
        expect(page.get_by_text("Chain intact")).to_be_visible()
        expect(page.get_by_text("Read-only: auditors change nothing.")).to_be_visible()
        shot(page, "audit")

        with page.expect_download() as dl:
            page.get_by_role("button", name="History as CSV").click()
        out = tmp_path / "history.csv"
        dl.value.save_as(out)

        goto(page, "Interventions")
        expect(page.get_by_text("Read-only: you can explore what-ifs")).to_be_visible()
        expect(page.get_by_role("button", name="Save intervention")).to_have_count(0)
        expect(page.get_by_role("button", name="Revert")).to_have_count(0)
        goto(page, "Confounders")
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
    server = werkzeug.serving.make_server("127.0.0.1", free_port(), app, threaded=True)
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
        port = free_port()
        secrets = tmp_path / "secrets.toml"
        secrets.write_text(
            "[auth]\n"
            f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
            'cookie_secret = "Vq3xK9bT2mZ7wR4pL8nY1cF6hJ0dS5gA-eU_iOoQzWk"\n'
            'client_id = "concept-workbench"\n'
            'client_secret = "e2e-secret"\n'
            f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n'
        )
        page = new_page(chrome)
        log = ARTIFACTS / "logs" / "e2e-oidc.log"
        with serve(root, log, auth="oidc", port=port, secrets=secrets) as url:
            page.goto(url)
            title(page, "Concept Workbench")
            shot(page, "sign_in")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("button", name="derm-7f3a").click()  # the provider's user picker
            title(page, "Overview")
            expect(page.get_by_text("Dr Dana Derm")).to_be_visible()
            goto(page, "Audit")
            with page.expect_download() as dl:
                page.get_by_role("button", name="History as JSONL").click()
            dl.value.save_as(tmp_path / "h.jsonl")

            page.get_by_role("button", name="Sign out").click()
            page.get_by_role("button", name="End session").click()  # the provider's logout page
            title(page, "Concept Workbench")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("button", name="audit-91c2").click()
            title(page, "Audit")
            expect(page.get_by_text("Alex Audit")).to_be_visible()

    exported = Store.for_workspace(root).events(EventFilter(action="exported"))
    assert exported[0].actor_id.endswith("#derm-7f3a")  # <issuer>#<subject>
    assert exported[0].actor_source == "oidc" and exported[0].actor_name == "Dr Dana Derm"
