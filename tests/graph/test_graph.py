"""The clinical graph: structure, scoring, expectations, navigation, implied checklist."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from concepts import ARTIFACTS, CRITERIA, ConceptError, DataError
from concepts.data import DERM7PT_LABELS, DERM7PT_MELANOMA_DIAGNOSES
from concepts.importers import read_derm7pt_meta
from graph import ClinicalGraph, add_cooccurrence, checklist_scores, implied_checklist, rule_summary
from graph._schema import validate_graph

META = Path(__file__).resolve().parents[1] / "fixtures" / "derm7pt" / "meta" / "meta.csv"
G = ClinicalGraph.default()


# ---------------------------------------------------------------------- structure
def test_nodes_of_every_kind() -> None:
    assert G.criteria() == CRITERIA == G.criteria(checklist_only=True)
    assert set(G.nodes("artifact")) == set(ARTIFACTS)
    assert {"melanoma", "non_melanoma", "nevus", *DERM7PT_MELANOMA_DIAGNOSES} == set(G.nodes("diagnosis"))
    assert len(G.nodes("sub_label")) == sum(len(t) for t in DERM7PT_LABELS.values()) == 28
    validate_graph(G.nx)


def test_sub_labels_score_their_criterion() -> None:
    for crit, table in DERM7PT_LABELS.items():
        assert G.sub_labels(crit) == dict(table)
        for raw, pts in table.items():
            node = f"{crit}:{raw}"
            d = G.nx.edges[node, crit, "scores"]
            assert d["relation"] == "scores" and d["points"] == pts
            assert G.nx.nodes[node]["raw_label"] == raw


def test_criteria_indicate_melanoma_with_major_minor_weights() -> None:
    for crit in CRITERIA:
        d = G.nx.edges[crit, "melanoma", "indicates"]
        major = crit in ("pigment_network", "blue_whitish_veil", "vascular_structures")
        assert d["weight"] == (2.0 if major else 1.0)
        assert G.nx.nodes[crit]["major"] is major
        assert G.nx.nodes[crit]["points"] == (2 if major else 1)


def test_artifacts_are_irrelevant_to_every_diagnosis() -> None:
    for art in ARTIFACTS:
        targets = {v for _, v, k in G.nx.out_edges(art, keys=True) if k == "irrelevant"}
        assert targets == set(G.nodes("diagnosis"))


def test_lookup_is_lenient_and_unknown_names_fail_clearly() -> None:
    assert G.find("Blue-Whitish Veil") == "blue_whitish_veil"
    assert G.find("vascular_structures:linear_irregular") == "vascular_structures:linear irregular"
    assert G.find("no such thing") is None
    assert "ink" in G and "banana" not in G
    with pytest.raises(ConceptError, match=r"'banana' is not in the clinical graph .* known criteria"):
        G.node("banana")
    with pytest.raises(ConceptError, match="not a criterion"):
        G.sub_labels("ink")


# ---------------------------------------------------------------------- scoring
def test_fixture_scores_from_raw_labels_equal_its_score_column() -> None:
    meta = read_derm7pt_meta(META)
    computed = G.score_table(meta, source="raw")
    assert computed.tolist() == meta["seven_point_score"].astype(int).tolist()
    from_presence = G.score_table(meta, source="presence")
    assert from_presence.tolist() == computed.tolist()
    per_case = [G.score_labels({c: r[f"{c}_raw"] for c in CRITERIA}) for _, r in meta.iterrows()]
    assert per_case == computed.tolist()


def test_score_examples() -> None:
    absent = dict.fromkeys(CRITERIA, "absent")
    assert G.score_labels(absent) == 0
    worst = {c: next(k for k, v in t.items() if v) for c, t in DERM7PT_LABELS.items()}
    assert G.score_labels(worst) == 10
    assert G.score_labels({**absent, "streaks": "Irregular", "vascular_structures": "hairpin"}) == 1
    assert G.score_presence({"pigment_network": 1, "streaks": True, "pigmentation": 0}) == 3
    assert G.rule(3) and not G.rule(2)


def test_score_errors() -> None:
    absent = dict.fromkeys(CRITERIA, "absent")
    with pytest.raises(ConceptError, match="no label given for the checklist criteria"):
        G.score_labels({"streaks": "absent"})
    with pytest.raises(ConceptError, match="'wavy' is not a label of streaks"):
        G.score_labels({**absent, "streaks": "wavy"})
    with pytest.raises(ConceptError, match="not in the clinical graph"):
        G.score_labels({**absent, "colour": "blue"})
    with pytest.raises(DataError, match="must be 0/1"):
        G.score_presence({"streaks": 2})
    meta = read_derm7pt_meta(META)
    bad = meta.copy()
    bad.loc[3, "streaks_raw"] = "wavy"
    with pytest.raises(DataError, match=r"row 3, column 'streaks_raw': 'wavy' is not one of"):
        G.score_table(bad)
    with pytest.raises(DataError, match="lacks the column 'streaks'"):
        G.score_table(meta.drop(columns=["streaks"]), source="presence")
    with pytest.raises(DataError, match="source must be"):
        G.score_table(meta, source="labels")


@settings(max_examples=60, deadline=None)
@given(st.fixed_dictionaries({c: st.sampled_from(sorted(t)) for c, t in DERM7PT_LABELS.items()}))
def test_score_is_the_sum_of_label_points(labels: dict[str, str]) -> None:
    expected = sum(DERM7PT_LABELS[c][raw] for c, raw in labels.items())
    assert G.score_labels(labels) == expected
    presence = {c: int(DERM7PT_LABELS[c][raw] > 0) for c, raw in labels.items()}
    assert G.score_presence(presence) == expected


def test_checklist_scores_and_rule_summary_on_the_fixture() -> None:
    meta = read_derm7pt_meta(META)
    meta_wrong_file_score = meta.assign(seven_point_score=0)  # never copied from the file
    s = checklist_scores(meta_wrong_file_score)
    assert s["seven_point_score"].tolist() == meta["seven_point_score"].astype(int).tolist()
    assert s["melanoma"].tolist() == [1] * 6 + [0] * 10
    r = rule_summary(s["seven_point_score"], s["melanoma"])
    assert (r.tp, r.fn, r.tn, r.fp) == (5, 1, 8, 2)
    assert r.sensitivity == pytest.approx(5 / 6) and r.specificity == pytest.approx(0.8)
    assert "sensitivity 0.833, specificity 0.800" in r.describe()
    empty = rule_summary([1, 4], [0, 0])
    assert empty.sensitivity is None and empty.specificity == 0.5


# ---------------------------------------------------------------------- expectations
@pytest.mark.parametrize(
    ("concept", "cls", "relation", "sign"),
    [
        ("pigment_network", "melanoma", "indicates", 1),
        ("streaks", "Melanoma (in situ)", "indicates", 1),
        ("blue_whitish_veil", "nevus", "counter_indicates", -1),
        ("dots_and_globules", "non-melanoma", "counter_indicates", -1),
        ("streaks:irregular", "melanoma", "indicates", 1),
        ("streaks:regular", "melanoma", "unknown", None),
        ("ink", "melanoma", "irrelevant", 0),
        ("patch", "nevus", "irrelevant", 0),
        ("ruler", "some class the graph never heard of", "irrelevant", 0),
        ("pigment_network", "basal cell carcinoma", "unknown", None),
        ("cluster_12", "melanoma", "unknown", None),
        ("melanoma", "nevus", "unknown", None),
    ],
)
def test_expected_relation(concept: str, cls: str, relation: str, sign: int | None) -> None:
    e = G.expected_relation(concept, cls)
    assert (e.relation, e.sign) == (relation, sign)
    assert e.reason


def test_expectation_paths_and_weights() -> None:
    e = G.expected_relation("streaks:irregular", "nevus")
    assert e.path == ("streaks:irregular", "streaks", "melanoma", "non_melanoma", "nevus")
    assert e.weight == 1.0
    assert G.expected_relation("vascular_structures", "melanoma").weight == 2.0


# ---------------------------------------------------------------------- navigation
def test_neighbors() -> None:
    nbs = G.neighbors("streaks")
    assert {(n.node, n.relation, n.direction) for n in nbs if n.relation == "indicates"} == {
        ("melanoma", "indicates", "out")
    }
    scoring = {n.node: n.attrs["points"] for n in G.neighbors("streaks", "scores")}
    assert scoring == {"streaks:absent": 0, "streaks:regular": 0, "streaks:irregular": 1}
    assert all(n.direction == "in" and n.kind == "sub_label" for n in G.neighbors("streaks", "scores"))


def test_paths_and_explanations() -> None:
    paths = G.paths("streaks:irregular", "melanoma")
    assert [(s.source, s.relation, s.target) for s in paths[0]] == [
        ("streaks:irregular", "scores", "streaks"),
        ("streaks", "indicates", "melanoma"),
    ]
    meta = read_derm7pt_meta(META)
    g = add_cooccurrence(G, meta, source="fixture")
    lines = g.explain("pigment_network")
    assert lines[0].startswith("expected: indicates")
    assert any(line.startswith("because: pigment_network --indicates (weight 2)--> melanoma") for line in lines)
    assert "scores 2 points when 'atypical'" in lines
    assert any(line.startswith("co-occurs with dots_and_globules: phi 0.67") for line in lines)
    assert any("--co_occurs" in line for line in lines if line.startswith("path:"))
    ink = G.explain("ink", "nevus")
    assert ink == [
        "expected: irrelevant — ink is an artifact: clinically irrelevant to every diagnosis",
        "because: ink --irrelevant--> nevus",
    ]
    assert G.explain("cluster_3") == ["expected: unknown — 'cluster_3' is not in the clinical graph"]


# ---------------------------------------------------------------------- implied checklist
def test_implied_checklist_thresholds_and_expectation() -> None:
    probs = pd.DataFrame(
        {
            "pigment_network": [0.9, 0.1],
            "blue_whitish_veil": [0.2, 0.0],
            "vascular_structures": [0.1, 0.0],
            "pigmentation": [0.6, 0.0],
            "streaks": [0.5, 0.0],
            "dots_and_globules": [0.4, 1.0],
            "regression_structures": [0.0, 0.0],
            "ink": [0.99, 0.99],  # ignored
        },
        index=["a", "b"],
    )
    out = implied_checklist(probs)
    assert out.index.tolist() == ["a", "b"]
    assert out.loc["a", "pigment_network"] == 1 and out.loc["a", "streaks"] == 1
    assert out.loc["a", "dots_and_globules"] == 0
    assert out["score_thresholded"].tolist() == [4, 1]
    assert out["rule_thresholded"].tolist() == [True, False]
    assert out.loc["a", "score_expected"] == pytest.approx(2 * 0.9 + 2 * 0.2 + 2 * 0.1 + 0.6 + 0.5 + 0.4)
    assert out.loc["b", "score_expected"] == pytest.approx(0.2 + 1.0)
    assert out.loc["a", "pigmentation_prob"] == 0.6
    per = implied_checklist(probs, threshold={c: 0.35 for c in CRITERIA})
    assert per.loc["a", "dots_and_globules"] == 1


def test_p_rule_matches_enumeration() -> None:
    rng = np.random.default_rng(0)
    probs = pd.DataFrame(rng.uniform(size=(5, 7)), columns=list(CRITERIA))
    out = implied_checklist(probs)
    pts = np.array([2, 2, 2, 1, 1, 1, 1])
    for i in range(5):
        p = probs.iloc[i].to_numpy()
        total = 0.0
        for bits in itertools.product([0, 1], repeat=7):
            b = np.array(bits)
            if b @ pts >= 3:
                total += float(np.prod(np.where(b, p, 1 - p)))
        assert out["p_rule"].iloc[i] == pytest.approx(total)
    assert implied_checklist(pd.DataFrame([dict.fromkeys(CRITERIA, 1.0)]))["p_rule"].iloc[0] == pytest.approx(1.0)
    assert implied_checklist(pd.DataFrame([dict.fromkeys(CRITERIA, 0.0)]))["p_rule"].iloc[0] == 0.0


def test_implied_checklist_logits_and_errors() -> None:
    logits = pd.DataFrame([dict.fromkeys(CRITERIA, 0.0)])
    out = implied_checklist(logits, from_logits=True)
    assert out["score_expected"].iloc[0] == pytest.approx(5.0)
    assert out["score_thresholded"].iloc[0] == 10  # sigmoid(0) = 0.5 >= 0.5
    with pytest.raises(DataError, match="lack the criteria"):
        implied_checklist(logits.drop(columns=["streaks"]))
    with pytest.raises(DataError, match=r"row 0, column 'streaks': 1.5 is not a probability"):
        implied_checklist(logits.assign(streaks=1.5))
    with pytest.raises(DataError, match="not a finite number"):
        implied_checklist(logits.assign(streaks=np.nan))
    with pytest.raises(DataError, match="no presence threshold given"):
        implied_checklist(logits, threshold={"streaks": 0.5})
