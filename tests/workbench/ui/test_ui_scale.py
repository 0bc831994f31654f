"""The Case explorer at scale (issue #15): filters run on the server, the browser gets one page of
the case table, and the concept builder's pickers list a bounded set of ids while still taking
any case id typed in full.

The helpers are checked on tables built here (known answers); the page with
``streamlit.testing.v1.AppTest`` on the small UI workspace, with the picker's limit lowered so
that the small data set behaves as a large one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from store import EventFilter, Store
from tests.support.ui import APP
from workbench.auth._config import ENV_ROLE, ENV_WORKSPACE
from workbench.ui import _cases
from workbench.ui._cases import CaseFilter, filter_cases, page_of, picker_options, unknown_ids
from workbench.ui._nav import PAGES

TIMEOUT = 180


def _table(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "case_id": [f"c{i}" for i in range(n)],
        "label": rng.choice(["melanoma", "nevus"], n),
        "correct": rng.random(n) < 0.7,
        "ink": rng.integers(0, 2, n),
        "ruler": rng.integers(0, 2, n),
        "skin_tone": rng.choice(["I", "II", "V"], n),
    })


# ---------------------------------------------------------------------------- helpers
def test_filter_cases_matches_a_row_by_row_filter() -> None:
    t = _table(500)
    flt = CaseFilter(classes=("melanoma",), outcome="incorrect", artifacts=("ink", "ruler"), skin_tones=("V",))
    got = filter_cases(t, flt)
    want = [r.case_id for r in t.itertuples()
            if r.label == "melanoma" and not r.correct and r.ink == 1 and r.ruler == 1 and r.skin_tone == "V"]
    assert got["case_id"].tolist() == want and 0 < len(want) < 100
    assert len(filter_cases(t, CaseFilter())) == 500
    assert filter_cases(t, CaseFilter(classes=())).empty  # no class ticked: nothing shown
    assert filter_cases(t, CaseFilter(outcome="correct"))["correct"].all()


def test_page_of_covers_every_row_once_and_clamps() -> None:
    t = _table(103)
    pages = [page_of(t, p, 25) for p in range(1, 6)]
    assert [p.n_pages for p in pages] == [5] * 5
    assert [len(p.rows) for p in pages] == [25, 25, 25, 25, 3]
    assert pd.concat([p.rows for p in pages])["case_id"].tolist() == t["case_id"].tolist()
    assert (pages[1].first, pages[1].last, pages[4].first, pages[4].last) == (26, 50, 101, 103)
    assert page_of(t, 99, 25).page == 5 and page_of(t, 0, 25).page == 1  # clamped
    assert pages[0].view_key("val") == page_of(t, 1, 25).view_key("val")  # stable
    assert len({p.view_key("val") for p in pages}) == 5
    other = filter_cases(t, CaseFilter(outcome="correct"))
    assert page_of(other, 1, 25).view_key("val") != pages[0].view_key("val")  # other cases shown
    empty = page_of(t.iloc[:0], 3, 25)
    assert (empty.page, empty.n_pages, empty.first, len(empty.rows)) == (1, 1, 0, 0)


def test_picker_lists_everything_when_small_and_a_bounded_set_when_large() -> None:
    ids = pd.Index([f"c{i}" for i in range(50)])
    opts, partial = picker_options(ids, ["c3"], ["c1", "c2"], limit=100)
    assert opts == list(ids) and not partial
    opts, partial = picker_options(ids, ["c40", "c3"], ["c1", "c3", "c2"], limit=10)
    assert partial and opts == ["c40", "c3", "c1", "c2"]
    many = [f"c{i}" for i in range(30)]
    opts, partial = picker_options(ids, many, [], limit=10)
    assert partial and opts == many  # chosen ids are never dropped
    assert unknown_ids(["c1", "zz", "c49", "c50"], ids) == ["zz", "c50"]


# ---------------------------------------------------------------------------- the page
def _cases_page(monkeypatch: pytest.MonkeyPatch, root: Path) -> AppTest:
    monkeypatch.setenv(ENV_WORKSPACE, str(root))
    monkeypatch.setenv(ENV_ROLE, "dermatologist")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    at.switch_page(PAGES["cases"].script)
    return at.run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_case_table_is_paged(ui_env: pytest.MonkeyPatch, ui_workspace: Path) -> None:
    at = _cases_page(ui_env, ui_workspace)
    _ok(at)
    at.selectbox(key="cx_page_size").set_value(25).run()
    first = at.dataframe[0].value["case_id"].tolist()
    pager = at.number_input(key="cx_page")
    assert len(first) == 25 and (pager.max or 0) >= 2
    pager.set_value(2).run()
    _ok(at)
    second = at.dataframe[0].value["case_id"].tolist()
    assert 0 < len(second) <= 25 and not set(first) & set(second)
    assert any(c.value.startswith("Cases 26–") for c in at.caption)
    # narrowing the filters past the current page goes back to page 1
    at.multiselect(key="cx_arts").set_value(["ink"]).run()
    _ok(at)
    assert at.number_input(key="cx_page").value == 1 or at.number_input(key="cx_page").max == 1
    assert all("ink" in a for a in at.dataframe[0].value["artifacts"])


def test_concept_builder_takes_typed_ids_beyond_the_listed_ones(
    ui_env: pytest.MonkeyPatch, fresh_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concepts import Workspace

    monkeypatch.setattr(_cases, "PICKER_LIMIT", 10)  # the small workspace behaves as a large one
    ds = Workspace(fresh_workspace).dataset()
    at = _cases_page(ui_env, fresh_workspace)
    _ok(at)
    at.selectbox(key="cx_page_size").set_value(25).run()
    picker = at.multiselect(key="cx_concept_cases")
    on_page = at.dataframe[0].value["case_id"].tolist()
    assert picker.options == on_page  # the page's ids, not every case id
    # ids from outside the listed ones (another split), typed in full, plus one that is no case id
    others = [c for c in ds.cases[ds.cases["split"] == "train"]["case_id"].astype(str) if c not in on_page][:6]
    at.multiselect(key="cx_concept_cases").set_value([*others, "no-such-case"]).run()
    _ok(at)
    assert any("no-such-case" in w.value.replace("\\", "") for w in at.warning)
    at.multiselect(key="cx_concept_cases").set_value(others).run()
    assert not any("Not case ids" in w.value for w in at.warning)
    at.text_input(key="cx_concept_name").input("typed_marks")
    at.button(key=f"FormSubmitter:cx_concept_form-Build concept from {len(others)} cases").click().run()
    _ok(at)
    named = Store.for_workspace(fresh_workspace).events(EventFilter(action="concept_named"))
    assert [e.concept for e in named] == ["typed_marks"]
    assert (named[0].spec or {}).get("n_positive") == len(others)


# ---------------------------------------------------------------------------- saved clusters
def test_cluster_gallery_reads_the_precomputed_clusters(fresh_workspace: Path) -> None:
    """The Confounders page's gallery reads ``results/clusters.json`` when the precompute wrote it
    for this model, data set and layer (no second clustering pass), and ignores it otherwise."""
    from concepts import Workspace
    from concepts.discovery import cluster_dataset
    from workbench.ui._concepts import _saved_clustering

    ws = Workspace(fresh_workspace)
    layer = ws.layers()[-1]
    m, ds = ws.model(), ws.dataset()
    assert _saved_clustering(ws, layer) is None  # nothing saved yet
    res = cluster_dataset(ds, m, layer, split="train", cache=ws.activation_cache)
    res.save(ws.results_dir / "clusters.json")
    ws.update_manifest(analysis={"clusters": {"model_id": m.model_id, "layer": layer}})
    got = _saved_clustering(ws, layer)
    assert got is not None
    assert np.array_equal(got.assignments, res.assignments) and got.case_ids == res.case_ids
    assert got.clusters["cluster"].tolist() == res.clusters["cluster"].tolist()
    assert _saved_clustering(ws, ws.layers()[0]) is None  # another layer: recomputed
    ws.update_manifest(analysis={"clusters": {"model_id": "another-model", "layer": layer}})
    assert _saved_clustering(ws, layer) is None  # another model: recomputed
