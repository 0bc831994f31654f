"""Bad input: stored verbatim where valid, refused with a clear message where not, never half-written."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import Actor, Store, StoreError, ValidationError, replace_nonfinite
from store._fields import MAX_RATIONALE_BYTES
from store._refs import RefInsert

DERM = Actor.from_oidc("sub-derm", "dermatologist", "Dr Derm")
ENG = Actor.from_oidc("sub-eng", "engineer", "Eng")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(tmp_path_factory.mktemp("inputs") / "store.duckdb")
    with s.session():  # one connection for the many small appends of this module
        yield s


@pytest.fixture(scope="module")
def iv(store: Store) -> str:
    iid = store.record_intervention(DERM, {"op": "suppress", "concept": "ruler"}).intervention_id
    assert iid is not None
    return iid


def _state(store: Store) -> tuple[int, int, int, int]:
    return (store.head()[0], len(store.table("interventions")), len(store.table("models")),
            len(store.table("tcav_results")))


def _refused(store: Store, match: str, fn: Any, *args: Any, **kwargs: Any) -> None:
    before = _state(store)
    with pytest.raises(ValidationError, match=match):
        fn(*args, **kwargs)
    assert _state(store) == before


# ---------------------------------------------------------------- rationale
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_any_valid_text_is_stored_verbatim(store: Store, iv: str, text: str) -> None:
    if not text.strip():
        text = text + "x"
    ev = store.append_event(DERM, "applied", intervention_id=iv, rationale=text)
    assert ev.rationale == text
    assert store.events()[-1].rationale == text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.text(max_size=20), surrogate=st.integers(0xD800, 0xDFFF), suffix=st.text(max_size=20))
def test_lone_surrogates_are_refused(store: Store, iv: str, prefix: str, surrogate: int,
                                     suffix: str) -> None:
    text = prefix + chr(surrogate) + suffix
    _refused(store, "surrogate", store.append_event, DERM, "applied", intervention_id=iv,
             rationale=text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=200))
def test_bytes_rationale_must_be_utf8(store: Store, iv: str, data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        _refused(store, "not valid UTF-8", store.append_event, DERM, "applied",
                 intervention_id=iv, rationale=data)
        return
    if not text.strip():
        return
    assert store.append_event(DERM, "applied", intervention_id=iv, rationale=data).rationale == text


def test_sql_looking_strings_are_stored_verbatim(store: Store) -> None:
    nasty = "'); DROP TABLE events; --"
    iv = store.record_intervention(DERM, {"op": nasty, nasty: [nasty]}, intervention_id=nasty,
                                   rationale=nasty, concept="x' OR '1'='1")
    ev = store.append_event(ENG, "applied", intervention_id=nasty, rationale=nasty,
                            model_id="m'; DELETE FROM models; --")
    assert (iv.intervention_id, iv.rationale, iv.spec) == (nasty, nasty, {"op": nasty, nasty: [nasty]})
    assert ev.model_id == "m'; DELETE FROM models; --"
    hist = store.intervention_history(nasty)
    assert [e.action for e in hist.events] == ["proposed", "applied"]
    assert store.verify().ok


def test_rationale_size_limit(store: Store, iv: str) -> None:
    ok = "é" * (MAX_RATIONALE_BYTES // 2)  # exactly 64 KiB of UTF-8
    assert store.append_event(DERM, "applied", intervention_id=iv, rationale=ok).rationale == ok
    _refused(store, r"65,537 bytes.*limit is 65,536", store.append_event, DERM, "applied",
             intervention_id=iv, rationale=ok + "x")


@pytest.mark.parametrize("rationale", [None, "", "  \n\t"])
def test_apply_and_revert_need_a_rationale(store: Store, iv: str, rationale: str | None) -> None:
    for action in ("applied", "reverted"):
        _refused(store, "rationale is required", store.append_event, DERM, action,
                 intervention_id=iv, rationale=rationale)


def test_rationale_must_be_text(store: Store, iv: str) -> None:
    _refused(store, "must be a str", store.append_event, DERM, "applied", intervention_id=iv,
             rationale=42)


# ---------------------------------------------------------------- JSON fields
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -math.inf, np.float64("nan")])
def test_nonfinite_numbers_are_refused_with_their_path(store: Store, iv: str, bad: float) -> None:
    _refused(store, r"evidence\.stats\.p_adj", store.append_event, DERM, "applied",
             intervention_id=iv, rationale="r", evidence={"stats": {"p_adj": bad}})
    _refused(store, r"metric_deltas\.auc\[1\]", store.append_event, DERM, "applied",
             intervention_id=iv, rationale="r", metric_deltas={"auc": [0.1, bad]})


def test_replace_nonfinite_then_store(store: Store, iv: str) -> None:
    clean, paths = replace_nonfinite({"p": float("nan"), "n": [1.5, float("inf")], "k": 3})
    assert clean == {"p": None, "n": [1.5, None], "k": 3} and paths == ["$.p", "$.n[1]"]
    ev = store.append_event(DERM, "applied", intervention_id=iv, rationale="r",
                            evidence={**clean, "nonfinite_as_null": paths})
    assert ev.evidence == {**clean, "nonfinite_as_null": paths}


def test_numpy_values_are_normalised(store: Store, iv: str) -> None:
    ev = store.append_event(DERM, "applied", intervention_id=iv, rationale="r", evidence={
        "n": np.int64(7), "x": np.float32(0.5), "ok": np.bool_(True), "v": (1, 2)})
    assert ev.evidence == {"n": 7, "x": 0.5, "ok": True, "v": [1, 2]}


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (["not", "an", "object"], "JSON object"),
        (42, "JSON object"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"p": NaN}', "NaN is not valid JSON"),
        ({"s": {1, 2}}, "not JSON-serialisable"),
        ({1: "int key"}, "keys must be str"),
        ({"f": object()}, "not JSON-serialisable"),
        ({"bad": "\udc80"}, "surrogate"),
    ],
)
def test_invalid_specs_are_refused(store: Store, spec: Any, match: str) -> None:
    _refused(store, match, store.record_intervention, DERM, spec)


def test_spec_as_json_text_is_accepted(store: Store) -> None:
    ev = store.record_intervention(DERM, '{"op": "suppress", "alpha": 0.5}')
    assert ev.spec == {"op": "suppress", "alpha": 0.5}


def test_deep_and_huge_json_is_refused(store: Store) -> None:
    deep: Any = "x"
    for _ in range(100):
        deep = {"d": deep}
    _refused(store, "deeper than", store.record_intervention, DERM, {"op": deep})
    _refused(store, "limit is 1,048,576", store.record_intervention, DERM,
             {"blob": "x" * (1 << 20)})


# ---------------------------------------------------------------- other fields
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"concept": ""}, "blank"),
        ({"concept": "a\x00b"}, "control characters"),
        ({"concept": "x" * 257}, "limit is 256"),
        ({"concept": 5}, "must be a str"),
        ({"concept": "c", "weights_sha_before": "abc"}, "sha256 hex digest"),
        ({"concept": "c", "model_id": "m\n"}, "control characters"),
    ],
)
def test_bad_identifiers_are_refused(store: Store, kwargs: dict[str, Any], match: str) -> None:
    _refused(store, match, store.append_event, DERM, "concept_named", **kwargs)


def test_unknown_action_is_refused(store: Store) -> None:
    _refused(store, "unknown action 'deleted'", store.append_event, DERM, "deleted")


def test_action_specific_requirements(store: Store) -> None:
    _refused(store, "needs the intervention_id", store.append_event, ENG, "applied", rationale="r")
    _refused(store, "unknown intervention 'nope'", store.append_event, ENG, "applied",
             intervention_id="nope", rationale="r")
    _refused(store, "needs the concept", store.append_event, DERM, "concept_named")
    _refused(store, "needs the intervention spec", store.append_event, DERM, "proposed")
    _refused(store, "register_model", store.append_event, ENG, "model_registered", model_id="m")


def test_proposing_an_existing_id_is_refused(store: Store) -> None:
    store.record_intervention(DERM, {"op": "a"}, intervention_id="iv-dup")
    _refused(store, "already proposed", store.record_intervention, DERM, {"op": "b"},
             intervention_id="iv-dup")


# ---------------------------------------------------------------- reference tables
def test_register_model_is_idempotent_and_append_only(store: Store) -> None:
    first = store.register_model(ENG, "m-idem", "tiny_cnn", "A" * 64)
    assert first.weights_sha_after == "a" * 64  # stored lowercase
    again = store.register_model(ENG, "m-idem", "tiny_cnn", "a" * 64)
    assert again.seq == first.seq
    _refused(store, "already registered", store.register_model, ENG, "m-idem", "tiny_cnn",
             "b" * 64)


def test_tcav_results_with_nan(store: Store) -> None:
    df = pd.DataFrame({"concept": ["a", "b"], "layer": ["l", "l"], "class": ["mel", None],
                       "tcav_score": [0.5, 0.6], "p_adj": [0.01, np.nan], "std": [0.1, 0.2]})
    _refused(store, r"tcav_results\[1\]\.p_adj.*nan_as_null", store.record_tcav_results, DERM, df)
    ev = store.record_tcav_results(DERM, df, nan_as_null=True)
    assert ev.evidence == {"nonfinite_as_null": ["tcav_results[1].p_adj"]}
    rows = store.table("tcav_results").query("event_seq == @ev.seq")
    assert rows["target"].iloc[0] == "mel" and pd.isna(rows["target"].iloc[1])
    assert rows["extra"].tolist() == ['{"std":0.1}', '{"std":0.2}']
    assert store.verify().ok


@pytest.mark.parametrize(
    ("df", "match"),
    [
        (pd.DataFrame({"concept": ["a"], "layer": ["l"]}), "lacks the columns"),
        (pd.DataFrame({"concept": [], "layer": [], "tcav_score": []}), "empty"),
        (pd.DataFrame({"concept": ["a"], "layer": ["l"], "tcav_score": ["high"]}), "number"),
        ([{"concept": "a"}], "DataFrame"),
    ],
)
def test_bad_tcav_tables_are_refused(store: Store, df: Any, match: str) -> None:
    _refused(store, match, store.record_tcav_results, DERM, df)


def test_effect_records_deltas(store: Store, iv: str) -> None:
    ev = store.record_effect(ENG, iv, {"auc": 0.80, "acc": 0.70, "n": "x"},
                             {"auc": 0.85, "acc": 0.69}, reliance={"ruler": 0.12})
    assert ev.metric_deltas is not None
    assert ev.metric_deltas["auc"] == pytest.approx(0.05)
    assert set(ev.metric_deltas) == {"auc", "acc"}
    _refused(store, "unknown intervention", store.record_effect, ENG, "nope", {"a": 1}, {"a": 2})


def test_a_failure_mid_transaction_leaves_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The event row is inserted, then its reference rows fail: the whole event is rolled back."""
    before = _state(store)

    def boom(self: RefInsert, con: Any, seq: int) -> None:
        con.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(RefInsert, "insert", boom)
    with pytest.raises(StoreError, match="nothing written"):
        store.register_model(ENG, "m-fail", "arch", "c" * 64)
    monkeypatch.undo()
    assert _state(store) == before
    assert store.verify().ok
    assert store.register_model(ENG, "m-fail", "arch", "c" * 64).seq == before[0] + 1
