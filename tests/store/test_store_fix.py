"""The ``fix_recorded`` action: who may record a test-time fix, what it must carry, and that a
fix is reviewed and exported but never applied to the workspace's model."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import (
    PERMISSIONS,
    Action,
    Actor,
    Event,
    EventFilter,
    PermissionDenied,
    Role,
    Store,
    ValidationError,
    read_export,
    verify_file,
)

DERM = Actor.from_oidc("sub-derm", "dermatologist", "Dr Derm")
ENG = Actor.from_oidc("sub-eng", "engineer", "Eng")
AUD = Actor.from_oidc("sub-aud", "auditor", "Aud")

SPEC = {"model_id": "m1", "layer": "pool", "edits": [
    {"concept": "ink", "operation": "mask", "strength": 0.8},
    {"concept": "streaks", "operation": "amplify", "strength": 1.5}]}
EVIDENCE = {
    "description": "mask ink (0.8), amplify streaks (1.5) at pool",
    "layer": "pool",
    "few_shot": {"k": 2, "cases": [{"case_id": "a", "label": "nevus", "sha256": "0" * 64}]},
    "evaluated_on": "held_out",
    "before": {"n": 40, "accuracy": 0.6, "balanced_accuracy": 0.55},
    "after": {"n": 40, "accuracy": 0.7, "balanced_accuracy": 0.68},
    "edits": [{"concept": "ink", "operation": "mask", "stability": 1.0, "gain_points": 6.0,
               "gain_interval": [1.0, 12.0]}],
}


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store.duckdb")


def _fix(store: Store, actor: Actor = ENG, **kw: object) -> Event:
    args: dict[str, object] = {"rationale": "Ink marks nevi at the new clinic.", "model_id": "m1",
                               "evidence": EVIDENCE, "metric_deltas": {"balanced_accuracy": 0.13},
                               "concept": "ink,streaks", "dataset_hash": "shots-abc"}
    args.update(kw)
    return store.record_fix(actor, SPEC, **args)  # type: ignore[arg-type]


def test_engineers_and_dermatologists_record_fixes_auditors_do_not(store: Store) -> None:
    assert Action.FIX_RECORDED in PERMISSIONS[Role.ENGINEER]
    assert Action.FIX_RECORDED in PERMISSIONS[Role.DERMATOLOGIST]
    assert Action.FIX_RECORDED not in PERMISSIONS[Role.AUDITOR]
    ev = _fix(store)
    assert ev.action == "fix_recorded" and ev.actor_role == "engineer"
    assert str(ev.intervention_id).startswith("fix-")
    assert ev.spec == SPEC and (ev.evidence or {})["few_shot"]["k"] == 2
    assert _fix(store, DERM).actor_role == "dermatologist"
    with pytest.raises(PermissionDenied, match="auditor"):
        _fix(store, AUD)
    assert len(store.events(EventFilter(action="fix_recorded"))) == 2
    rows = store.table("interventions")
    assert len(rows) == 2 and set(rows["intervention_id"]) == {
        e.intervention_id for e in store.events(EventFilter(action="fix_recorded"))}
    assert store.verify().ok


@pytest.mark.parametrize(("kw", "match"), [
    ({"rationale": "  "}, "rationale"),
    ({"rationale": None}, "rationale"),
    ({"model_id": None}, "model_id"),
])
def test_a_fix_needs_rationale_and_model(store: Store, kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        _fix(store, ENG, **kw)
    with pytest.raises(ValidationError, match="spec"):
        store.append_event(ENG, "fix_recorded", rationale="why", model_id="m1")
    assert store.head()[0] == 0 and len(store.table("interventions")) == 0


def test_the_same_fix_id_is_refused_twice(store: Store) -> None:
    _fix(store, intervention_id="fix-1")
    with pytest.raises(ValidationError, match="already recorded as 'fix-1'"):
        _fix(store, intervention_id="fix-1")
    assert store.head()[0] == 1


def test_a_fix_is_reviewed_and_exported_never_applied(store: Store) -> None:
    iid = str(_fix(store).intervention_id)
    for actor, action in ((ENG, Action.APPLIED), (DERM, Action.APPLIED), (DERM, Action.REVERTED)):
        with pytest.raises(ValidationError, match="test-time fix"):
            store.append_event(actor, action, intervention_id=iid, rationale="deploy it")
    assert store.append_event(DERM, Action.APPROVED, intervention_id=iid, rationale="reviewed").seq == 2
    exp = store.append_event(ENG, Action.MODEL_EXPORTED, intervention_id=iid, model_id="m1",
                             evidence={"patched_id": "p1"})
    assert exp.action == "model_exported"
    # a proposal is applied as before
    prop = store.record_intervention(DERM, SPEC, rationale="ink is a shortcut")
    assert store.append_event(ENG, Action.APPLIED, intervention_id=prop.intervention_id,
                              rationale="approved").action == "applied"
    assert store.verify().ok


def test_fix_in_export_and_reports(store: Store, tmp_path: Path) -> None:
    iid = str(_fix(store).intervention_id)
    out = tmp_path / "h.jsonl"
    store.export(out, actor=AUD)
    assert verify_file(out).ok
    rows = [r for r in read_export(out) if r["action"] == "fix_recorded"]
    assert len(rows) == 1 and rows[0]["intervention_id"] == iid
    html = store.report_html(iid)
    assert "test-time fix" in html and "fix_recorded" in html
    assert "Ink marks nevi at the new clinic." in html
    assert "68%" in html and "55%" in html  # the held-out before/after of the evidence
    assert "Leave-one-out stability" in html and "+6.0 [+1.0, +12.0]" in html
    hist = store.history_report_html()
    assert iid in hist and "fix_recorded" in hist
    assert store.intervention_history(iid).spec == SPEC
