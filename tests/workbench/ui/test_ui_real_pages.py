"""Case explorer and Interventions on a workspace that is not the demo (issue #11): a folder of
test-made images with ``train/val/test`` splits, an ``ink`` column and ink masks, imported and
trained with the CLI (tests/conftest_ui_real.py).

Covers the data set's own splits, a concept built from cases picked in the Case explorer
(class-matched negatives, recorded as ``concept_named``), masking it on Interventions with flip
rates from real (transplanted) twins, saving it, and the note shown when no twin can be made.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from concepts import ConceptBank, Dataset, Workspace
from store import EventFilter, Store
from tests.support.ui import APP
from tests.support.ui_real import copy_workspace
from workbench.auth._config import ENV_ROLE, ENV_WORKSPACE
from workbench.ui._nav import PAGES

TIMEOUT = 180


def _open(mp: pytest.MonkeyPatch, root: Path, key: str, role: str = "dermatologist") -> AppTest:
    mp.setenv(ENV_WORKSPACE, str(root))
    mp.setenv(ENV_ROLE, role)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page(PAGES[key].script)
    return at.run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _texts(at: AppTest) -> str:
    """All text shown, without the markdown escapes user-facing text gets."""
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning", "error", "success")
                     for e in getattr(at, kind)).replace("\\", "")


@pytest.fixture(name="own_workspace")
def own_workspace_fixture(ui_real_workspace: Path, tmp_path: Path) -> Path:
    return copy_workspace(ui_real_workspace, tmp_path / "ws")


def test_case_explorer_uses_the_data_sets_splits(ui_env: pytest.MonkeyPatch, ui_real_workspace: Path) -> None:
    at = _open(ui_env, ui_real_workspace, "cases")
    _ok(at)
    split = at.selectbox(key="cx_split")
    assert split.options == ["test", "validation", "train"]
    table = at.dataframe[0].value
    assert len(table) == 36 and {"case_id", "label", "predicted", "artifacts"} <= set(table.columns)
    split.set_value("val").run()
    _ok(at)
    assert len(at.dataframe[0].value) == 36
    assert "Build a concept from cases" in [e.label for e in at.expander]


def test_interventions_flip_rates_from_real_twins(ui_env: pytest.MonkeyPatch, ui_real_workspace: Path) -> None:
    at = _open(ui_env, ui_real_workspace, "interventions")
    _ok(at)
    text = _texts(at)
    assert "**Test** · 36 cases" in text and "**Validation** · 36 cases" in text
    at.multiselect(key="iv_concepts").set_value(["ink"]).run()
    _ok(at)
    captions = "\n".join(c.value for c in at.caption).replace("\\", "")
    # twins made from the data: the marker transplanted from marked test cases with its mask
    # file into clean ones (add), and inpainted away from the marked ones (remove)
    assert "transplant:mask-column:ink_mask" in captions and "inpaint:" in captions
    assert "add ink:" in captions and "remove ink:" in captions
    assert "updated in" in captions
    assert "cannot be measured" not in _texts(at)


def test_no_twins_says_why(ui_real_workspace: Path) -> None:
    from concepts import Workspace
    from interventions import artifact_twins

    ws = Workspace(ui_real_workspace)
    ds = ws.dataset()
    bare = Dataset(ds.root, ds.info, ds.cases.drop(columns=["ink_mask"]), ds.images)
    twins, note = artifact_twins(ws.model(), bare, "test", "pool")
    assert twins == [] and note is not None
    assert "flips of ink cannot be measured" in note and "`ink_mask`" in note
    twins, note = artifact_twins(ws.model(), ds, "test", "pool")
    assert {t.key for t in twins} == {"ink", "ink:remove"} and note is None
    assert all(t.method.endswith("mask-column:ink_mask") for t in twins)


def test_concept_from_cases_then_mask_and_save(ui_env: pytest.MonkeyPatch, own_workspace: Path,
                                               ui_real_inked: list[str]) -> None:
    at = _open(ui_env, own_workspace, "cases")
    _ok(at)
    at.multiselect(key="cx_concept_cases").set_value(ui_real_inked).run()
    at.text_input(key="cx_concept_name").input("marker")
    at.text_input(key="cx_concept_desc").input("violet skin-marker stroke")
    at.selectbox(key="cx_concept_group").set_value("artifact")
    at.button(key=f"FormSubmitter:cx_concept_form-Build concept from {len(ui_real_inked)} cases").click().run()
    _ok(at)
    assert "Added concept 'marker' (15 cases, 15 class-matched negatives" in _texts(at)
    assert "Only 15 examples: a direction learnt from fewer than 30" in _texts(at)  # the few-cases caution

    ws = Workspace(own_workspace)
    bank = ConceptBank.load(ws.concepts_dir, datasets_dir=ws.datasets_dir)
    con = bank["marker"]
    assert sorted(con.positive.case_ids) == sorted(ui_real_inked) and con.group == "artifact"
    # negatives drawn from the other cases with the positives' class mix
    assert con.negative is not None and not set(con.negative.case_ids) & set(ui_real_inked)
    assert bank.check_balance(con) is None
    named = Store.for_workspace(own_workspace).events(EventFilter(action="concept_named"))
    assert [e.concept for e in named] == ["marker"] and named[0].actor_role == "dermatologist"
    spec = named[0].spec or {}
    assert spec["source"] == "ui-cases" and spec["concept_id"] == con.id

    at.button(key="cx_concept_open").click().run()  # opens Interventions with it preselected
    _ok(at)
    assert at.title[0].value == "Interventions"
    assert at.multiselect(key="iv_concepts").value == ["marker"]
    assert "mask marker" in _texts(at)
    at.switch_page(PAGES["interventions"].script)  # AppTest reruns the page it was told to open
    at.text_area(key="iv_rationale").input("Skin-marker ink is not a feature of the lesion.")
    at.button(key="FormSubmitter:iv_save_form-Save intervention").click().run()
    _ok(at)
    applied = Store.for_workspace(own_workspace).events(EventFilter(action="applied"))
    assert len(applied) == 1 and applied[0].concept == "marker"
    effect = applied[0].evidence or {}
    assert effect["split"] == "test"
    flips = (effect.get("reliance") or {}).get("flip_rates") or {}
    assert {"ink", "ink:remove"} <= set(flips), effect.keys()


def test_concept_builder_refuses_bad_input(ui_env: pytest.MonkeyPatch, own_workspace: Path,
                                           ui_real_inked: list[str]) -> None:
    at = _open(ui_env, own_workspace, "cases")
    at.multiselect(key="cx_concept_cases").set_value(ui_real_inked[:5]).run()
    at.text_input(key="cx_concept_name").input("ink")  # a concept of that name exists
    at.button(key="FormSubmitter:cx_concept_form-Build concept from 5 cases").click().run()
    assert not at.exception
    assert at.error and "already exists" in _texts(at)
    at.multiselect(key="cx_concept_cases").set_value(ui_real_inked[:2]).run()
    at.text_input(key="cx_concept_name").input("marker")
    at.button(key="FormSubmitter:cx_concept_form-Build concept from 2 cases").click().run()
    assert at.error and "at least 4 cases" in _texts(at)
    assert not Store.for_workspace(own_workspace).events(EventFilter(action="concept_named"))
    assert "marker" not in ConceptBank.for_workspace(Workspace(own_workspace))


@pytest.mark.parametrize("role", ["engineer", "auditor"])
def test_only_dermatologists_build_concepts(ui_env: pytest.MonkeyPatch, ui_real_workspace: Path, role: str) -> None:
    at = _open(ui_env, ui_real_workspace, "cases", role)
    _ok(at)
    assert "Build a concept from cases" not in [e.label for e in at.expander]


def test_real_twins_come_from_the_cache_once_precomputed(
    ui_real_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`train` stored the evaluation split's twin activations: the page's what-if reads them
    back without making the twin images again, equal to twins made from scratch; a damaged
    record is ignored and the twins are remade."""
    import numpy as np

    import interventions._effect_twins as effects
    from interventions import artifact_twins

    ws = Workspace(copy_workspace(ui_real_workspace, tmp_path / "ws"))
    model, ds, layer = ws.model(), ws.dataset(), ws.layers()[-1]
    fresh, note = artifact_twins(model, ds, "test", layer)  # no cache: made from the images
    real = effects.real_twins

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("twin images made again")

    monkeypatch.setattr(effects, "real_twins", refuse)
    cached, cached_note = artifact_twins(model, ds, "test", layer, cache=ws.activation_cache)
    assert cached_note == note and [t.key for t in cached] == [t.key for t in fresh] and len(fresh) == 2
    for a, b in zip(fresh, cached, strict=True):
        assert a.method == b.method and np.array_equal(a.rows, b.rows)
        np.testing.assert_allclose(a.acts, b.acts, rtol=1e-5, atol=1e-6)
    for rec in ws.activation_cache.root.rglob("twins-*.json"):
        rec.write_text("[{\"rows\": \"oops\"}]")
    monkeypatch.setattr(effects, "real_twins", real)
    again, _ = artifact_twins(model, ds, "test", layer, cache=ws.activation_cache)
    assert [t.key for t in again] == [t.key for t in fresh]
