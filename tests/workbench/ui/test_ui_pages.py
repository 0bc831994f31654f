"""Every page of the Streamlit UI for every role, with ``streamlit.testing.v1.AppTest``.

Covers the role-dependent navigation, the write controls each role sees, saving and reverting
an intervention, sign-in with OIDC claims, and the error paths (no workspace, no model, store
held by another process) which must show a readable message, never a traceback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from store import Action, EventFilter, Store, verify_file
from tests.support.ui import APP
from workbench.auth._config import ENV_AUTH, ENV_ROLE, ENV_ROLES_FILE, ENV_WORKSPACE
from workbench.ui._nav import PAGES, ROLE_SECTIONS, page_keys_for

ROLES = ("dermatologist", "engineer", "auditor")
TIMEOUT = 180


def _app(monkeypatch: pytest.MonkeyPatch, root: Path, role: str = "dermatologist") -> AppTest:
    monkeypatch.setenv(ENV_WORKSPACE, str(root))
    monkeypatch.setenv(ENV_ROLE, role)
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT)


def _open(at: AppTest, key: str) -> AppTest:
    at.run()
    at.switch_page(PAGES[key].script)
    return at.run()


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def _no_crash(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


# ---------------------------------------------------------------------------- navigation
def test_pages_per_role() -> None:
    from store import Role

    for role in Role:
        keys = page_keys_for(role)
        assert sorted(keys) == sorted(PAGES), role  # every role sees every page...
    # ...but auditors land on the history, the others on the overview
    assert page_keys_for(Role.AUDITOR)[0] == "audit"
    assert page_keys_for(Role.DERMATOLOGIST)[0] == "overview"
    assert "Explore (read-only)" in ROLE_SECTIONS[Role.AUDITOR]
    assert page_keys_for(None) == []


@pytest.mark.parametrize(("role", "landing"), [("dermatologist", "Overview"), ("auditor", "Audit")])
def test_landing_page_and_identity(ui_env: pytest.MonkeyPatch, ui_workspace: Path, role: str, landing: str) -> None:
    at = _app(ui_env, ui_workspace, role).run()
    _no_crash(at)
    assert at.title[0].value == landing
    side = "\n".join(m.value for m in at.sidebar.markdown)
    assert role in side
    if role == "auditor":
        assert any("Read-only" in c.value for c in at.sidebar.caption)


# ---------------------------------------------------------------------------- every page, every role
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("key", list(PAGES))
def test_every_page_renders(ui_env: pytest.MonkeyPatch, ui_workspace: Path, key: str, role: str) -> None:
    at = _open(_app(ui_env, ui_workspace, role), key)
    _no_crash(at)
    assert at.title[0].value == PAGES[key].title
    assert not at.error, [e.value for e in at.error]


def test_overview_shows_metrics_and_findings(ui_env: pytest.MonkeyPatch, ui_workspace: Path) -> None:
    at = _open(_app(ui_env, ui_workspace), "overview")
    labels = {m.label: m.value for m in at.metric}
    assert labels["Accuracy, biased validation"].endswith("%")
    assert labels["Accuracy, debiased test"].endswith("%")
    assert "Alignment: top findings" in [s.value for s in at.subheader]
    assert "No intervention is applied" in _texts(at)


def test_concepts_page_tcav_and_layer_selector(ui_env: pytest.MonkeyPatch, ui_workspace: Path) -> None:
    at = _open(_app(ui_env, ui_workspace), "concepts")
    layer = at.selectbox(key="concepts_layer")
    assert layer.options
    table = at.dataframe[0].value
    assert {"concept", "cav_accuracy", "stability", "significant"} <= set(table.columns)
    assert "ink" in set(table["concept"])
    at.selectbox(key="concepts_class").select_index(1).run()
    _no_crash(at)


def test_knowledge_graph_node_evidence(ui_env: pytest.MonkeyPatch, ui_workspace: Path) -> None:
    at = _open(_app(ui_env, ui_workspace), "graph")
    at.selectbox(key="kg_node").set_value("ink").run()
    _no_crash(at)
    text = _texts(at)
    assert "irrelevant" in text  # the graph's expectation for an artifact
    assert at.subheader[0].value.startswith("ink")
    at.toggle(key="kg_subs").set_value(True).run()
    _no_crash(at)


# ---------------------------------------------------------------------------- interventions
def _select_ink(at: AppTest) -> AppTest:
    at.multiselect(key="iv_concepts").set_value(["ink"]).run()
    _no_crash(at)
    return at


def test_mask_slider_changes_debiased_metrics(ui_env: pytest.MonkeyPatch, ui_workspace: Path) -> None:
    at = _select_ink(_open(_app(ui_env, ui_workspace), "interventions"))
    assert at.slider(key="iv_s_mask_ink").value == 1.0
    assert any("mask ink" in c.value for c in at.caption)
    full = [m.value for m in at.metric]
    at.slider(key="iv_s_mask_ink").set_value(0.0).run()
    none = [m.value for m in at.metric]
    at.slider(key="iv_s_mask_ink").set_value(1.0).run()
    assert [m.value for m in at.metric] == full
    # strength 0 leaves the model unchanged, so the metrics show no change at all
    assert all(not m.proto.delta for m in at.metric) or none != full


@pytest.mark.parametrize(("role", "save", "note"), [
    ("dermatologist", True, ""),
    ("engineer", False, "Only a dermatologist can propose"),
    ("auditor", False, "Read-only"),
])
def test_write_controls_by_role(ui_env: pytest.MonkeyPatch, ui_workspace: Path, role: str, save: bool, note: str) -> None:
    at = _select_ink(_open(_app(ui_env, ui_workspace, role), "interventions"))
    buttons = [b.label for b in at.button]
    assert ("Save intervention" in buttons) is save
    assert note in _texts(at)
    assert not [b for b in buttons if b == "Revert"]


def test_save_requires_rationale_then_records_and_reverts(ui_env: pytest.MonkeyPatch, fresh_workspace: Path) -> None:
    at = _select_ink(_open(_app(ui_env, fresh_workspace), "interventions"))
    at.button(key="FormSubmitter:iv_save_form-Save intervention").click().run()
    assert any("rationale" in e.value.lower() for e in at.error)
    assert not Store.for_workspace(fresh_workspace).events()

    at.text_area(key="iv_rationale").input("Ink marks are clinically irrelevant.")
    at.button(key="FormSubmitter:iv_save_form-Save intervention").click().run()
    _no_crash(at)
    s = Store.for_workspace(fresh_workspace)
    applied = s.events(EventFilter(action="applied"))
    assert len(applied) == 1
    ev = applied[0]
    assert ev.rationale == "Ink marks are clinically irrelevant."
    assert ev.actor_role == "dermatologist" and ev.actor_source == "os"
    assert ev.concept == "ink" and ev.metric_deltas is not None
    assert s.events(EventFilter(action="effect_recorded"))
    assert s.verify().ok
    assert any(ev.intervention_id in e.label for e in at.expander)

    iid = str(ev.intervention_id)
    at.text_input(key=f"iv_revert_why_{iid}").input("Checked with the team: undo for now.")
    at.button(key=f"FormSubmitter:iv_revert_{iid}-Revert").click().run()
    _no_crash(at)
    assert s.events(EventFilter(action="reverted", intervention_id=iid))
    assert "No intervention is applied" in _texts(at)


def test_store_refuses_auditor_writes_even_without_ui(ui_env: pytest.MonkeyPatch, fresh_workspace: Path) -> None:
    from concepts import WorkbenchError, Workspace
    from store import Actor, PermissionDenied, StoreError
    from workbench.ui._interventions import build_spec, intervention_id, save_intervention

    ws = Workspace(fresh_workspace)
    spec = build_spec(ws, ws.layers()[-1], [("ink", "mask", 1.0)])
    assert spec is not None
    auditor = Actor.from_os_user("auditor")
    with pytest.raises((WorkbenchError, StoreError)):
        save_intervention(ws, auditor, spec, "trying anyway")
    s = Store.for_workspace(fresh_workspace)
    ev = s.record_intervention(Actor.from_os_user("dermatologist"), spec.to_json(),
                               intervention_id=intervention_id(spec), concept="ink")
    with pytest.raises(PermissionDenied):  # even a direct write to the store is refused
        s.append_event(auditor, Action.APPLIED, intervention_id=ev.intervention_id, rationale="x")
    assert not s.events(EventFilter(action="applied"))


# ---------------------------------------------------------------------------- audit
def test_audit_history_verification_and_exports(ui_env: pytest.MonkeyPatch, fresh_workspace: Path,
                                                tmp_path: Path) -> None:
    from store import Actor
    from workbench.ui._history import export_bytes

    derm = Actor.from_os_user("dermatologist")
    s = Store.for_workspace(fresh_workspace)
    ev = s.record_intervention(derm, {"op": "mask", "concept": "ink"}, concept="ink")
    s.append_event(derm, Action.APPLIED, intervention_id=ev.intervention_id, rationale="shortcut",
                   concept="ink")

    at = _open(_app(ui_env, fresh_workspace, "auditor"), "audit")
    _no_crash(at)
    assert any("Chain intact" in x.value for x in at.success)
    table = at.dataframe[0].value
    assert {"proposed", "applied"} <= set(table["action"])
    labels = [b.label for b in at.download_button]
    assert labels[:3] == ["History as CSV", "History as Parquet", "History as JSONL"]
    assert {"Intervention report", "History report"} <= set(labels)
    at.run()
    assert any("anchored outside the database" in x.value for x in at.caption)
    s.anchors_path.unlink()  # no anchor left: the page says the head is unanchored
    at.run()
    assert any("no head had been anchored" in x.value for x in at.warning)
    at.selectbox(key="audit_action").set_value("applied").run()
    assert set(at.dataframe[0].value["action"]) == {"applied"}

    auditor = Actor.from_os_user("auditor")
    for fmt in ("csv", "parquet", "jsonl"):
        out = tmp_path / f"h.{fmt}"
        out.write_bytes(export_bytes(s, auditor, fmt))
        assert verify_file(out).ok
    exported = s.events(EventFilter(action="exported"))
    assert len(exported) == 3 and {e.actor_role for e in exported} == {"auditor"}
    assert "<html" in s.report_html(str(ev.intervention_id)).lower()
    from workbench.ui._history import history_report_bytes, intervention_report_bytes

    assert b"Intervention report" in intervention_report_bytes(s, fresh_workspace, ev.intervention_id)
    assert b"history report" in history_report_bytes(s, fresh_workspace, EventFilter(actor=derm.id))


# ---------------------------------------------------------------------------- sign-in (OIDC claims)
def test_oidc_sign_in_and_roles(ui_env: pytest.MonkeyPatch, ui_workspace: Path, tmp_path: Path) -> None:
    roles = tmp_path / "roles.toml"
    roles.write_text('[subjects]\n"sub-derm" = "dermatologist"\n"sub-audit" = "auditor"\n')
    ui_env.setenv(ENV_AUTH, "oidc")
    ui_env.setenv(ENV_ROLES_FILE, str(roles))
    at = _app(ui_env, ui_workspace)
    at.secrets["auth"] = {"redirect_uri": "http://127.0.0.1:1/oauth2callback", "cookie_secret": "Vq3xK9bT2mZ7wR4pL8nY1cF6hJ0dS5gA-eU_iOoQzWk",
                          "client_id": "c", "client_secret": "s",
                          "server_metadata_url": "http://127.0.0.1:2/.well-known/openid-configuration"}
    at.user = {"is_logged_in": False}
    at.run()
    _no_crash(at)
    assert at.title[0].value == "Concept Workbench"
    assert [b.label for b in at.button] == ["Sign in"]

    at.user = {"is_logged_in": True, "iss": "https://idp.example", "sub": "sub-audit", "name": "Ada Auditor"}
    at.run()  # signed in now: the stale sign-in page forwards to the role's landing page
    assert at.title[0].value == "Audit"

    fresh = _app(ui_env, ui_workspace)
    fresh.secrets["auth"] = at.secrets["auth"]
    fresh.user = {"is_logged_in": True, "iss": "https://idp.example", "sub": "sub-audit", "name": "Ada Auditor"}
    fresh.run()
    assert fresh.title[0].value == "Audit"
    assert "Ada Auditor" in "\n".join(m.value for m in fresh.sidebar.markdown)
    assert "Sign out" in [b.label for b in fresh.sidebar.button]

    at2 = _app(ui_env, ui_workspace)
    at2.secrets["auth"] = at.secrets["auth"]
    at2.user = {"is_logged_in": True, "iss": "https://idp.example", "sub": "sub-stranger", "name": "Nobody"}
    at2.run()
    assert "no workbench role" in _texts(at2)
    assert [b.label for b in at2.button] == ["Sign out"]


# ---------------------------------------------------------------------------- error paths
@pytest.mark.parametrize("key", list(PAGES))
def test_empty_workspace_shows_how_to_build(ui_env: pytest.MonkeyPatch, tmp_path: Path, key: str) -> None:
    at = _open(_app(ui_env, tmp_path / "nothing-here"), key)
    _no_crash(at)
    errors = " ".join(e.value for e in at.error)
    assert "not a workspace" in errors
    assert "workbench demo" in " ".join(c.value for c in at.caption)


@pytest.mark.parametrize("key", ["overview", "concepts", "cases", "interventions", "fix"])
def test_missing_model(ui_env: pytest.MonkeyPatch, ui_workspace: Path, tmp_path: Path, key: str) -> None:
    root = tmp_path / "ws"
    shutil.copytree(ui_workspace, root, ignore=shutil.ignore_patterns("cache"))
    shutil.rmtree(root / "models")
    at = _open(_app(ui_env, root), key)
    _no_crash(at)
    if key != "overview":  # the overview reads the manifest only
        assert any("no model" in e.value for e in at.error), [e.value for e in at.error]


def test_store_held_by_another_writer(ui_env: pytest.MonkeyPatch, fresh_workspace: Path) -> None:
    db = fresh_workspace / "store.duckdb"
    Store(db)  # create it
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(120)",
         str(db)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        t0 = time.perf_counter()
        at = _open(_app(ui_env, fresh_workspace), "audit")
        _no_crash(at)
        assert any("busy" in e.value for e in at.error)
        assert any("Wait until it finishes" in c.value for c in at.caption)
        assert time.perf_counter() - t0 < 120
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------------------- confounders
def test_confounder_report_lists_ink_and_mask_opens_interventions(ui_env: pytest.MonkeyPatch,
                                                                  ui_workspace: Path) -> None:
    at = _open(_app(ui_env, ui_workspace), "confounders")
    report = at.dataframe[0].value
    assert report.iloc[0]["concept"] == "ink"  # the planted shortcut ranks first
    assert report.iloc[0]["class"] == "melanoma"
    at.button(key="cf_mask_ink").click().run()
    _no_crash(at)
    assert at.title[0].value == "Interventions"
    assert at.multiselect(key="iv_concepts").value == ["ink"]


def test_cluster_gallery_naming_only_for_dermatologists(ui_env: pytest.MonkeyPatch, ui_workspace: Path) -> None:
    at = _open(_app(ui_env, ui_workspace, "engineer"), "confounders")
    assert any(m.value.startswith("**Cluster") for m in at.markdown)
    assert not [t for t in at.text_input if t.label.startswith("Name this pattern")]
    at = _open(_app(ui_env, ui_workspace, "auditor"), "confounders")
    assert not [b for b in at.button if b.label.startswith("Mask")]


def test_name_cluster_runs_tcav_and_records(ui_env: pytest.MonkeyPatch, fresh_workspace: Path) -> None:
    import pandas as pd

    at = _open(_app(ui_env, fresh_workspace), "confounders")
    first = next(m.value for m in at.markdown if m.value.startswith("**Cluster"))
    cid = int(first.split()[1].strip("*"))
    at.text_input(key=f"cf_name_text_{cid}").input("pen_marks")
    at.text_input(key=f"cf_name_why_{cid}").input("purple lines at the lesion border")
    at.button(key=f"FormSubmitter:cf_name_{cid}-Name and test the concept").click().run(timeout=600)
    _no_crash(at)
    assert not at.error, [e.value for e in at.error]
    named = Store.for_workspace(fresh_workspace).events(EventFilter(action="concept_named"))
    assert [e.concept for e in named] == ["pen_marks"]
    assert named[0].spec is not None and named[0].spec["cluster"] == cid
    tcav = pd.read_parquet(fresh_workspace / "results" / "tcav.parquet")
    assert "pen_marks" in set(tcav["concept"])


# ---------------------------------------------------------------------------- cases
def test_case_explorer_filters_and_what_if(ui_env: pytest.MonkeyPatch, ui_workspace: Path) -> None:
    at = _open(_app(ui_env, ui_workspace), "cases")
    n_all = len(at.dataframe[0].value)
    at.segmented_control(key="cx_outcome").set_value("incorrect").run()
    _no_crash(at)
    table = at.dataframe[0].value
    assert 0 < len(table) < n_all
    assert not table["correct"].any()
    at.multiselect(key="cx_arts").set_value(["ink"]).run()
    assert all("ink" in a for a in at.dataframe[0].value["artifacts"])
    labels = [m.label for m in at.metric]
    assert "Ground truth score" in labels and "Model-implied score" in labels
    assert any(lbl.startswith("p(") for lbl in labels)
    assert len(at.image) >= 3  # image, concept map, attribution


def test_engineer_applies_a_proposed_spec(ui_env: pytest.MonkeyPatch, fresh_workspace: Path) -> None:
    from concepts import Workspace
    from store import Actor
    from workbench.ui._interventions import build_spec, intervention_id

    ws = Workspace(fresh_workspace)
    spec = build_spec(ws, ws.layers()[-1], [("ink", "mask", 1.0)])
    assert spec is not None
    s = Store.for_workspace(fresh_workspace)
    s.record_intervention(Actor.from_os_user("dermatologist"), spec.to_json(),
                          intervention_id=intervention_id(spec), concept="ink")
    at = _select_ink(_open(_app(ui_env, fresh_workspace, "engineer"), "interventions"))
    assert "Save intervention" in [b.label for b in at.button]
    at.text_area(key="iv_rationale").input("Deploying the dermatologists' ink fix.")
    at.button(key="FormSubmitter:iv_save_form-Save intervention").click().run()
    _no_crash(at)
    applied = s.events(EventFilter(action="applied"))
    assert [(e.actor_role, e.intervention_id) for e in applied] == [("engineer", intervention_id(spec))]
    assert not [b for b in at.button if b.label == "Revert"]  # engineers may not revert
