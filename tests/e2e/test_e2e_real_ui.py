"""End-to-end in a real browser on a workspace that is not the demo (issue #11): a dermatologist
picks inked cases in the Case explorer, builds a concept from them, masks it on Interventions
(flip rates from real, transplanted twins), saves it, and the Audit page lists it.

Streamlit is started and chromium driven by tests/support/browser.py; screenshots go to
``test-artifacts/screenshots/real_*.png``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from store import EventFilter, Store
from tests.support.browser import goto, new_page, serve, settle, shot, title
from tests.support.ui import ARTIFACTS
from tests.support.ui_real import copy_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

from playwright.sync_api import Browser, Page, expect  # noqa: E402

N_CASES = 6


def _pick(page: Page, label: str, value: str) -> None:
    """Type ``value`` into the multiselect or selectbox labelled ``label`` and choose it."""
    box = page.get_by_test_id("stMultiSelect").filter(has_text=label)
    if not box.count():
        box = page.get_by_test_id("stSelectbox").filter(has_text=label)
    box.locator("input").first.click()
    page.keyboard.type(value)
    page.keyboard.press("Enter")
    settle(page)


def test_concept_from_cases_masked_saved_and_audited(chrome: Browser, ui_real_workspace: Path,
                                                     ui_real_inked: list[str], tmp_path: Path) -> None:
    root = copy_workspace(ui_real_workspace, tmp_path / "ws")
    page = new_page(chrome)
    with serve(root, ARTIFACTS / "logs" / "e2e-real.log") as url:
        page.goto(url)
        title(page, "Overview")
        goto(page, "Case explorer")
        expect(page.get_by_test_id("stException")).to_have_count(0)
        page.get_by_text("Build a concept from cases").click()
        for cid in ui_real_inked[:N_CASES]:
            _pick(page, "Cases showing the concept", cid)
        page.get_by_label("Concept name").fill("marker")
        page.get_by_label("What it shows").fill("violet skin-marker stroke")
        page.get_by_role("button", name=f"Build concept from {N_CASES} cases").click()
        settle(page)
        expect(page.get_by_text(re.compile(r"Added concept 'marker' \(6 cases, 6 class-matched"))).to_be_visible()
        shot(page, "real_case_explorer_concept")

        page.get_by_role("button", name="Mask marker on Interventions").click()
        title(page, "Interventions")
        expect(page.get_by_text("mask marker (1) at", exact=False)).to_be_visible()
        expect(page.get_by_text(re.compile(r"Twins: inpaint:.*transplant:mask-column:ink_mask"))).to_be_visible()
        shot(page, "real_interventions")
        page.get_by_label("Rationale (required)").fill("Skin-marker ink is not a feature of the lesion.")
        page.get_by_role("button", name="Save intervention").click()
        settle(page)
        expect(page.get_by_text(re.compile(r"Saved mask marker .* as iv-"))).to_be_visible()

        goto(page, "Audit")
        _pick(page, "Concept", "marker")
        expect(page.get_by_role("heading", name=re.compile(r"^History — [2-9] of \d+ events"))).to_be_visible()
        applied = Store.for_workspace(root).events(EventFilter(action="applied"))
        assert len(applied) == 1 and applied[0].concept == "marker"
        report = page.get_by_role("combobox", name="Report for intervention")
        expect(report).to_have_value(str(applied[0].intervention_id))
        shot(page, "real_audit")

    named = Store.for_workspace(root).events(EventFilter(action="concept_named"))
    assert [e.concept for e in named] == ["marker"] and named[0].actor_role == "dermatologist"
