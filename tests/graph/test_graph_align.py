"""The alignment report on a synthetic TCAV table that encodes a DermSynth-like outcome."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from concepts import DataError
from graph import AlignmentFinding, ClinicalGraph, add_cooccurrence, alignment_report, extend_graph
from graph._align import ALIGNMENT_CATEGORIES, TCAV_COLUMNS
from tests.support.tcav_tables import EXPECTED, dermsynth_tcav, tcav_rows


def test_dermsynth_outcome_categories() -> None:
    report = alignment_report(dermsynth_tcav())
    got = {f.concept: f.category for f in report.findings}
    assert got == EXPECTED
    assert report.counts() == {"confounder": 2, "contradictory": 1, "neglected": 4, "unreviewed": 1, "aligned": 6}
    assert report.category("ink") == "confounder"
    with pytest.raises(DataError, match="not in the alignment report"):
        report.category("nothing")


def test_ranking_and_evidence() -> None:
    report = alignment_report(dermsynth_tcav())
    order = [f.concept for f in report.findings]
    assert [f.rank for f in report.findings] == list(range(1, len(order) + 1))
    assert order[:3] == ["ink", "patch", "blue_whitish_veil"]  # confounders by |effect|, then contradictory
    cats = [f.category for f in report.findings]
    assert cats == sorted(cats, key=ALIGNMENT_CATEGORIES.index)
    # neglected: the major criterion first
    assert order[3] == "vascular_structures"
    vasc = report.findings[3]
    assert vasc.reason.startswith("no evidence of use") and "absence of evidence" in vasc.reason
    assert "relies" not in " ".join(f.reason for f in report.findings)  # TCAV is sensitivity
    assert order[-6:-4] == ["pigment_network", "dots_and_globules"]  # aligned by |effect|
    ink = report.findings[0]
    assert ink.effect == pytest.approx(0.38) and ink.cls == "melanoma" and ink.layer == "block10"
    assert ink.p_adjusted == pytest.approx(1e-5) and ink.cav_accuracy == 0.9 and ink.stability == 0.95
    assert ink.direction == "raises melanoma"
    assert ink.expected_relation == "irrelevant"
    assert ink.expected == "melanoma: irrelevant; nevus: irrelevant"
    assert ink.n_rows == 4 and ink.n_findings == 4 and ink.n_unstable == 0
    assert "clinically irrelevant" in ink.reason and "+0.380" in ink.reason
    patch = report.findings[1]
    assert patch.cls == "nevus" and patch.direction == "raises nevus"  # ties go to the positive effect
    veil = report.findings[2]
    assert veil.expected_relation in ("indicates", "counter_indicates")
    assert veil.reason.startswith("expected to ")
    pig = next(f for f in report.findings if f.concept == "pigmentation")
    assert pig.n_findings == 0 and pig.n_unstable == 4 and "unstable" in pig.reason
    assert pig.direction == "no evidence"
    ruler = next(f for f in report.findings if f.concept == "ruler")
    assert ruler.reason.endswith("no significant, stable TCAV sensitivity to it")


def test_frame_and_json() -> None:
    report = alignment_report(dermsynth_tcav())
    df = report.to_frame()
    assert len(df) == 14 and df["concept"].is_unique
    assert df.columns[0] == "rank" and "class" in df.columns and "cls" not in df.columns
    assert df["rank"].tolist() == list(range(1, 15))
    text = json.dumps(report.to_json(), allow_nan=False)
    back = json.loads(text)
    assert back["summary"]["confounder"] == 2
    assert back["findings"][0]["concept"] == "ink" and back["findings"][0]["class"] == "melanoma"
    assert isinstance(report.findings[0], AlignmentFinding)


def test_cooccurrence_evidence_and_related_criterion() -> None:
    evidence = pd.DataFrame({
        "attribute": ["ink", "ink", "patch", "hair"],
        "class": ["melanoma", "nevus", "nevus", "melanoma"],
        "lift": [2.5, 0.4, 3.0, 1.0],
        "odds_ratio": [9.0, 0.1, 12.0, 1.0],
        "p_adjusted": [1e-8, 1e-8, 1e-6, 0.9],
    })
    rng = np.random.default_rng(1)
    pn = rng.integers(0, 2, 200)
    cases = pd.DataFrame({
        "pigment_network": pn, "streaks": np.where(rng.uniform(size=200) < 0.8, pn, 1 - pn),
        **{c: rng.integers(0, 2, 200) for c in ("blue_whitish_veil", "vascular_structures", "pigmentation",
                                                 "dots_and_globules", "regression_structures")},
    })
    g = add_cooccurrence(ClinicalGraph.default(), cases)
    report = alignment_report(dermsynth_tcav(), g, evidence)
    ink = report.findings[0]
    assert (ink.cooc_lift, ink.cooc_odds_ratio, ink.cooc_p_adjusted) == (2.5, 9.0, 1e-8)
    patch = report.findings[1]
    assert patch.cooc_lift == 3.0
    streaks = next(f for f in report.findings if f.concept == "streaks")
    assert streaks.related_criterion == "pigment_network"
    assert streaks.related_phi is not None and streaks.related_phi > 0.4
    assert next(f for f in report.findings if f.concept == "cluster_3").cooc_lift is None
    with pytest.raises(DataError, match=r"co-occurrence evidence lacks the column\(s\) \['lift'\]"):
        alignment_report(dermsynth_tcav(), cooccurrence=evidence.drop(columns=["lift"]))


def test_unknown_artifact_group_and_taxonomy_review() -> None:
    tcav = pd.DataFrame(
        tcav_rows("surgical_tape", "artifact", 0.2, True)
        + tcav_rows("milia_like_cysts", "custom", -0.2, True)
        + tcav_rows("cluster_9", "custom", 0.01, False, p=0.9)
    )
    report = alignment_report(tcav)
    assert report.category("surgical_tape") == "confounder"  # artifacts are irrelevant by group
    assert report.category("milia_like_cysts") == "unreviewed"
    assert report.category("cluster_9") == "unreviewed"
    assert "review it" in next(f for f in report.findings if f.concept == "cluster_9").reason
    g = extend_graph(ClinicalGraph.default(), [
        {"type": "concept", "name": "milia_like_cysts"},
        {"type": "relation", "name": "milia_like_cysts", "relation": "counter_indicates", "target": "melanoma"},
    ])
    assert alignment_report(tcav, g).category("milia_like_cysts") == "aligned"
    g2 = extend_graph(ClinicalGraph.default(), [
        {"type": "concept", "name": "milia_like_cysts"},
        {"type": "relation", "name": "milia_like_cysts", "relation": "irrelevant", "target": "melanoma"},
        {"type": "relation", "name": "milia_like_cysts", "relation": "irrelevant", "target": "non_melanoma"},
    ])
    assert alignment_report(tcav, g2).category("milia_like_cysts") == "confounder"


def test_mixed_directions_and_unknown_classes() -> None:
    mixed = tcav_rows("streaks", "criterion", 0.2, True, layers=("block10",)) + tcav_rows(
        "streaks", "criterion", -0.2, True, layers=("block15",)
    )
    assert alignment_report(pd.DataFrame(mixed)).category("streaks") == "contradictory"
    multi = tcav_rows("streaks", "criterion", 0.0, False, p=0.8, classes=("melanoma", "bcc")) + [
        {**r, "class": "bcc", "effect": 0.3, "significant": True, "p_adjusted": 1e-4}
        for r in tcav_rows("streaks", "criterion", 0.3, True, layers=("block15",), classes=("bcc",))
    ]
    f = alignment_report(pd.DataFrame(multi)).findings[0]
    assert f.category == "unreviewed" and f.cls == "bcc"
    assert "no expectation" in f.reason
    nevus_only = [r for r in tcav_rows("streaks", "criterion", 0.3, True) if r["class"] == "nevus"]
    assert alignment_report(pd.DataFrame(nevus_only)).category("streaks") == "aligned"  # -0.3 on nevus


def test_input_errors() -> None:
    t = dermsynth_tcav()
    with pytest.raises(DataError, match=r"lacks the column\(s\) \['p_adjusted', 'unstable'\]"):
        alignment_report(t.drop(columns=["p_adjusted", "unstable"]))
    with pytest.raises(DataError, match="TCAV results table is empty"):
        alignment_report(t.iloc[:0])
    bad = t.copy()
    bad.loc[5, "group"] = "lesion"
    with pytest.raises(DataError, match=r"TCAV row 5: group 'lesion' is not one of"):
        alignment_report(bad)
    bad = t.astype({"significant": object})
    bad.loc[2, "significant"] = None
    with pytest.raises(DataError, match=r"TCAV row 2: 'significant' is missing"):
        alignment_report(bad)
    bad = t.astype({"effect": object})
    bad.loc[1, "effect"] = "big"
    with pytest.raises(DataError, match=r"TCAV row 1: effect 'big' is not a number"):
        alignment_report(bad)
    with pytest.raises(DataError, match="must be a pandas DataFrame"):
        alignment_report(t.to_dict())  # type: ignore[arg-type]
    assert set(TCAV_COLUMNS) <= set(t.columns)
