"""End-to-end in Chromium: an engineer picks a few labelled images of a new clinic (the
ink-on-nevi DermSynth clinic of ``tests/support/clinic.py``, shared with
``tests/workbench/ui/test_ui_fix.py``), gets the proposed fix, saves it with a rationale, and the
Audit page lists the ``fix_recorded`` event.

Uses the server and browser helpers of ``tests/support/browser.py``; the screenshot goes to
``test-artifacts/screenshots/fix.png``.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from store import EventFilter, Store
from tests.support.browser import (
    UI_TIMEOUT_MS,
    goto,
    new_page,
    no_exception,
    serve,
    settle,
    shot,
    title,
)
from tests.support.clinic import CLINIC_SPEC, build_clinic, proposing_draw
from tests.support.ui import ARTIFACTS
from tests.support.workspaces import WorkspaceFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def e2e_clinic(workspace_factory: WorkspaceFactory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return workspace_factory.copy(CLINIC_SPEC, build_clinic(workspace_factory), tmp_path_factory.mktemp("e2e_fix") / "ws")


def _choose(page: Page, label: str, value: str) -> None:
    box = page.get_by_test_id("stSelectbox").filter(has_text=label).locator("input")
    box.click()
    page.keyboard.type(value)
    page.keyboard.press("Enter")
    settle(page)


def _clinic_zip(root: Path, out: Path, per_class: int = 6) -> Path:
    """A zip of PNGs of the clinic's val split with a labels.csv, as an engineer would upload."""
    from concepts import Workspace

    ds = Workspace(root).dataset("clinic")
    idx = ds.indices("val")
    labels = ds.labels(idx)
    rows = ["file,label"]
    with zipfile.ZipFile(out, "w") as zf:
        for c, name in enumerate(ds.classes):
            for i in idx[labels == c][:per_class]:
                buf = io.BytesIO()
                Image.fromarray(np.asarray(ds.images[i])).save(buf, "PNG")
                zf.writestr(f"images/case{i}.png", buf.getvalue())
                rows.append(f"images/case{i}.png,{name}")
        zf.writestr("labels.csv", "\n".join(rows) + "\n")
    return out


def test_engineer_fixes_a_new_clinic_and_the_audit_shows_it(chrome: Browser, e2e_clinic: Path,
                                                             tmp_path: Path) -> None:
    seed = proposing_draw(e2e_clinic)
    upload = _clinic_zip(e2e_clinic, tmp_path / "clinic.zip")
    page = new_page(chrome)
    with serve(e2e_clinic, ARTIFACTS / "logs" / "e2e-fix.log", role="engineer") as url:
        page.goto(url)
        title(page, "Overview")
        goto(page, "Test-time fix")
        no_exception(page)

        # an upload (zip of images + labels.csv) goes through the same proposal
        page.get_by_text("Upload", exact=True).click()
        settle(page)
        page.locator("input[type=file]").set_input_files(str(upload))
        settle(page)
        expect(page.get_by_test_id("stDataFrame").or_(page.get_by_test_id("stDataFrameResizable")).first).to_be_visible()
        page.get_by_role("button", name="Propose a fix").click()
        settle(page)
        no_exception(page)
        expect(page.get_by_text(re.compile(r"^(Proposed: |Nothing proposed)"))).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(page.get_by_text(re.compile(r"The 8 shots \(upload; 4 more images held out\)"))).to_be_visible()

        page.get_by_text("From a workspace data set", exact=True).click()
        settle(page)
        _choose(page, "Data set of the new clinic", "clinic")
        _choose(page, "Split", "train")
        seed_box = page.get_by_label("Draw (seed)")
        seed_box.fill(str(seed))
        seed_box.press("Enter")
        settle(page)
        page.get_by_role("button", name="Propose a fix").click()
        settle(page)
        # the shots of this pick (not the upload's, still on screen while the run starts)
        expect(page.get_by_text(re.compile(r"The 8 shots \(data set clinic, split train; \d+ more"))).to_be_visible(
            timeout=UI_TIMEOUT_MS)  # the search takes seconds (a leave-one-out rerun per direction method)
        settle(page)
        no_exception(page)
        expect(page.get_by_text(re.compile(r"^Proposed: "))).to_be_visible()
        expect(page.get_by_text("3 · Before and after")).to_be_visible()
        expect(page.get_by_text("Balanced accuracy, held-out")).to_be_visible()
        settle(page)
        shot(page, "fix", height=1900)

        page.get_by_label("Rationale (required)").fill(
            "At the new clinic nevi are marked with ink; the model reads ink as melanoma.")
        page.get_by_role("button", name="Save fix").click()
        settle(page)
        expect(page.get_by_text(re.compile(r"Saved .* as fix-[0-9a-f]{12}"))).to_be_visible()
        no_exception(page)

        goto(page, "Audit")
        expect(page.get_by_text("Chain intact")).to_be_visible()
        _choose(page, "Action", "fix_recorded")
        expect(page.get_by_role("heading", name=re.compile(r"^History — 1 of \d+ events"))).to_be_visible()
        shot(page, "audit_fix")

    fixes = Store.for_workspace(e2e_clinic).events(EventFilter(action="fix_recorded"))
    assert len(fixes) == 1 and fixes[0].actor_role == "engineer"
    assert "ink" in str(fixes[0].rationale)
