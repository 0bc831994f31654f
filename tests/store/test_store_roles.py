"""Roles and identity: the permission table is enforced by the store itself."""

from __future__ import annotations

import dataclasses
import getpass
import os
import pwd
from pathlib import Path
from types import SimpleNamespace

import pytest

from store import (
    PERMISSIONS,
    Action,
    Actor,
    PermissionDenied,
    Role,
    Store,
    ValidationError,
)

DERM = Actor.from_oidc("sub-derm", "dermatologist", "Dr Derm")
ENG = Actor.from_oidc("sub-eng", "engineer", "Eng")
AUD = Actor.from_oidc("sub-aud", "auditor", "Aud")


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store.duckdb")


def _count(store: Store) -> tuple[int, int, int]:
    return (store.head()[0], len(store.table("interventions")), len(store.table("models")))


def test_permission_table() -> None:
    derm, eng, aud = (PERMISSIONS[r] for r in (Role.DERMATOLOGIST, Role.ENGINEER, Role.AUDITOR))
    assert {Action.PROPOSED, Action.APPLIED, Action.REVERTED, Action.CONCEPT_NAMED} <= derm
    assert Action.MODEL_EXPORTED not in derm
    assert {Action.APPLIED, Action.MODEL_EXPORTED} <= eng
    assert not {Action.PROPOSED, Action.REVERTED, Action.CONCEPT_NAMED} & eng
    assert aud == {Action.EXPORTED}


@pytest.mark.parametrize("action", [a for a in Action if a is not Action.EXPORTED])
def test_auditor_writes_are_refused_and_write_nothing(store: Store, action: Action) -> None:
    before = _count(store)
    with pytest.raises(PermissionDenied, match="auditor"):
        store.append_event(AUD, action, spec={"op": "x"}, rationale="r", intervention_id="iv",
                           concept="c", model_id="m")
    assert _count(store) == before


def test_auditor_cannot_use_the_record_methods(store: Store) -> None:
    import pandas as pd

    calls = [
        lambda: store.register_model(AUD, "m", "arch", "a" * 64),
        lambda: store.register_dataset(AUD, "d", "h"),
        lambda: store.register_concept(AUD, "c", 1, "h"),
        lambda: store.record_cav_run(AUD, concept_id="c", model_id="m", layer="l"),
        lambda: store.record_tcav_results(
            AUD, pd.DataFrame({"concept": ["c"], "layer": ["l"], "tcav_score": [0.5]})),
        lambda: store.record_intervention(AUD, {"op": "x"}),
        lambda: store.record_effect(AUD, "iv", {"auc": 0.1}, {"auc": 0.2}),
    ]
    for call in calls:
        with pytest.raises(PermissionDenied):
            call()
    assert _count(store) == (0, 0, 0)


def test_auditor_may_export_and_that_is_recorded(store: Store, tmp_path: Path) -> None:
    store.append_event(DERM, "concept_named", concept="ruler")
    res = store.export(tmp_path / "out.jsonl", actor=AUD)
    assert res.event.action == "exported" and res.event.actor_role == "auditor"
    assert res.event.evidence is not None and res.event.evidence["file_sha256"] == res.sha256


def test_engineer_applies_but_does_not_propose_or_revert(store: Store) -> None:
    iv = store.record_intervention(DERM, {"op": "suppress"}).intervention_id
    store.append_event(ENG, "applied", intervention_id=iv, rationale="ok")
    store.append_event(ENG, "model_exported", model_id="m-patched")
    with pytest.raises(PermissionDenied, match="engineer"):
        store.record_intervention(ENG, {"op": "suppress"})
    with pytest.raises(PermissionDenied):
        store.append_event(ENG, "reverted", intervention_id=iv, rationale="no")
    assert store.head()[0] == 3


def test_dermatologist_cannot_export_patched_models(store: Store) -> None:
    with pytest.raises(PermissionDenied):
        store.append_event(DERM, "model_exported", model_id="m")


def test_actor_must_be_an_actor_object(store: Store) -> None:
    for bogus in ("alice", {"id": "alice", "role": "dermatologist"}, None):
        with pytest.raises(ValidationError, match=r"store\.Actor"):
            store.append_event(bogus, "concept_named", concept="x")  # type: ignore[arg-type]
    assert store.head()[0] == 0


def test_actor_from_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: SimpleNamespace(pw_name="carol"))
    actor = Actor.from_os_user("Engineer")
    assert actor == Actor("carol", Role.ENGINEER, "carol", "os")
    with pytest.raises(dataclasses.FrozenInstanceError):
        actor.role = Role.DERMATOLOGIST  # type: ignore[misc]


def test_os_user_ignores_the_user_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "dr-spoofed")
    monkeypatch.setenv("LOGNAME", "dr-spoofed")
    assert Actor.from_os_user("auditor").id == pwd.getpwuid(os.geteuid()).pw_name != "dr-spoofed"


def test_actor_from_os_user_without_a_user(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> str:
        raise OSError("No username set in the environment")

    def no_entry(uid: int) -> object:
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    monkeypatch.setattr(getpass, "getuser", boom)
    with pytest.raises(ValidationError, match="USER"):
        Actor.from_os_user("auditor")


def test_actor_from_oidc_and_recorded_attribution(store: Store) -> None:
    actor = Actor.from_oidc("0f3a-sub", "dermatologist", "Dr Ada Lovelace")
    ev = store.append_event(actor, "concept_named", concept="streaks")
    assert (ev.actor_id, ev.actor_role, ev.actor_name, ev.actor_source) == (
        "0f3a-sub", "dermatologist", "Dr Ada Lovelace", "oidc")
    assert Actor.from_oidc("s", "auditor").display_name == "s"


@pytest.mark.parametrize("role", ["admin", "", "root", 3])
def test_unknown_role_is_refused(role: object) -> None:
    with pytest.raises(ValidationError, match="unknown role"):
        Actor.from_oidc("s", role)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id": "", "role": "auditor", "display_name": "x", "source": "os"},
        {"id": "a\nb", "role": "auditor", "display_name": "x", "source": "os"},
        {"id": "a", "role": "auditor", "display_name": "x", "source": "ldap"},
        {"id": "a", "role": "auditor", "display_name": "x" * 300, "source": "os"},
    ],
)
def test_bad_actor_fields_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Actor(**kwargs)  # type: ignore[arg-type]


def test_actor_can() -> None:
    assert DERM.can("proposed") and not AUD.can("proposed") and AUD.can(Action.EXPORTED)
    with pytest.raises(ValidationError, match="unknown action"):
        DERM.can("deleted")
