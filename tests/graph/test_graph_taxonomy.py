"""Extending the graph from a taxonomy file (JSON/CSV): additions and every error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from concepts import CRITERIA, ConceptError
from graph import ClinicalGraph, TaxonomyError, extend_graph
from graph._taxonomy import read_taxonomy

G = ClinicalGraph.default()

ENTRIES: list[dict[str, Any]] = [
    # order does not matter: the relation comes before the nodes it joins
    {"type": "relation", "name": "milia_like_cysts", "relation": "indicates", "target": "seborrheic keratosis"},
    {"type": "diagnosis", "name": "seborrheic keratosis", "parent": "non_melanoma"},
    {"type": "concept", "name": "milia_like_cysts", "label": "milia-like cysts"},
    {"type": "criterion", "name": "shiny_white_structures", "points": 1},
    {"type": "sub_label", "name": "present", "parent": "shiny_white_structures", "points": 1},
    {"type": "sub_label", "name": "absent", "parent": "shiny_white_structures"},
    {"type": "sub_label", "name": "Broadened", "parent": "pigment network", "points": 2},
    {"type": "artifact", "name": "surgical_pen"},
    {"type": "relation", "name": "hair", "relation": "related_to", "target": "dark_corner"},
]


def _check_extended(g: ClinicalGraph) -> None:
    assert g.kind("milia_like_cysts") == "concept"
    assert g.nx.nodes["milia_like_cysts"]["label"] == "milia-like cysts"
    assert g.expected_relation("milia_like_cysts", "seborrheic keratosis").relation == "indicates"
    assert g.expected_relation("milia_like_cysts", "melanoma").relation == "unknown"
    # a criterion indicates melanoma by default, so it counter-indicates any non-melanoma
    assert g.expected_relation("shiny_white_structures", "melanoma").relation == "indicates"
    assert g.expected_relation("streaks", "seborrheic keratosis").relation == "counter_indicates"
    assert g.sub_labels("shiny_white_structures") == {"present": 1, "absent": 0}
    assert g.sub_labels("pigment_network")["broadened"] == 2
    # new artifacts are irrelevant to every diagnosis, new diagnoses get every artifact's edge
    assert g.expected_relation("surgical_pen", "nevus").relation == "irrelevant"
    assert g.nx.has_edge("ink", "seborrheic keratosis", key="irrelevant")
    assert g.nx.has_edge("surgical_pen", "melanoma", key="irrelevant")
    assert g.nx.has_edge("hair", "dark_corner", key="related_to")
    assert g.nx.nodes["milia_like_cysts"]["provenance"].startswith("taxonomy")
    # a user criterion is optional for scoring (checklist false) and scores when given
    absent = dict.fromkeys(CRITERIA, "absent")
    assert g.score_labels(absent) == 0
    assert g.score_labels({**absent, "shiny_white_structures": "present"}) == 1
    assert g.score_labels({**absent, "pigment_network": "broadened"}) == 2


def test_extend_from_records_leaves_the_original_unchanged() -> None:
    before = G.nx.number_of_nodes(), G.nx.number_of_edges()
    g = extend_graph(G, ENTRIES)
    _check_extended(g)
    assert (G.nx.number_of_nodes(), G.nx.number_of_edges()) == before
    assert "milia_like_cysts" not in G


def test_extend_from_json_file(tmp_path: Path) -> None:
    p = tmp_path / "tax.json"
    p.write_text(json.dumps({"entries": ENTRIES}))
    _check_extended(extend_graph(G, p))
    p.write_text(json.dumps(ENTRIES))
    g = extend_graph(G, p)
    assert g.nx.nodes["surgical_pen"]["provenance"] == "taxonomy:tax.json"


def test_extend_from_csv_file(tmp_path: Path) -> None:
    cols = ["type", "name", "parent", "points", "target", "relation", "label"]
    lines = [",".join(cols)]
    for e in ENTRIES:
        lines.append(",".join(str(e.get(c, "")) for c in cols))
    p = tmp_path / "tax.csv"
    p.write_text("\n".join(lines) + "\n")
    assert len(read_taxonomy(p)) == len(ENTRIES)
    _check_extended(extend_graph(G, p))


def test_checklist_criterion_becomes_required() -> None:
    g = extend_graph(G, [
        {"type": "criterion", "name": "new_sign", "checklist": "true", "points": 2},
        {"type": "sub_label", "name": "yes", "parent": "new_sign", "points": 2},
        {"type": "sub_label", "name": "no", "parent": "new_sign"},
    ])
    assert "new_sign" in g.criteria(checklist_only=True)
    assert g.nx.nodes["new_sign"]["major"] is True
    with pytest.raises(ConceptError, match="no label given for the checklist criteria \\['new_sign'\\]"):
        g.score_labels(dict.fromkeys(CRITERIA, "absent"))


def test_reapplying_a_taxonomy_is_idempotent() -> None:
    g1 = extend_graph(G, ENTRIES)
    g2 = extend_graph(g1, ENTRIES)
    assert g1.nx.number_of_nodes() == g2.nx.number_of_nodes()
    assert g1.nx.number_of_edges() == g2.nx.number_of_edges()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "organ", "name": "x"}, r"entry 0: unknown type 'organ'"),
        ({"name": "x"}, r"entry 0: field 'type' is required"),
        ({"type": "concept"}, r"entry 0: field 'name' is required"),
        ({"type": "concept", "name": "x", "colour": "red"}, r"unknown field\(s\) \['colour'\]"),
        ({"type": "sub_label", "name": "wide", "parent": "nail_fold"},
         r"entry 0: unknown node 'nail_fold' in field 'parent' — declare it"),
        ({"type": "sub_label", "name": "wide", "parent": "ink"}, r"parent 'ink' is an artifact, expected a criterion"),
        ({"type": "sub_label", "name": "x", "parent": "streaks", "points": 2},
         r"cannot score 2 points; its criterion streaks scores 1 point"),
        ({"type": "sub_label", "name": "irregular", "parent": "streaks", "points": 0},
         r"streaks label 'irregular' already scores 1 point"),
        ({"type": "sub_label", "name": "x", "parent": "streaks", "points": "two"}, r"points must be a whole number"),
        ({"type": "relation", "name": "streaks", "relation": "indicates", "target": "lupus"},
         r"unknown node 'lupus' in field 'target'"),
        ({"type": "relation", "name": "mystery", "relation": "indicates", "target": "melanoma"},
         r"unknown node 'mystery' in field 'name'"),
        ({"type": "relation", "name": "streaks", "relation": "causes", "target": "melanoma"},
         r"relation 'causes' cannot be added"),
        ({"type": "relation", "name": "streaks", "relation": "indicates"}, r"field 'target' is required"),
        ({"type": "relation", "name": "ink", "relation": "indicates", "target": "melanoma"},
         r"'ink' is an artifact, irrelevant to every diagnosis by definition"),
        ({"type": "relation", "name": "streaks", "relation": "counter_indicates", "target": "melanoma"},
         r"streaks already indicates melanoma; it cannot also be counter indicates"),
        ({"type": "relation", "name": "streaks", "relation": "indicates", "target": "streaks"},
         r"target 'streaks' is a criterion, expected a diagnosis"),
        ({"type": "relation", "name": "nevus", "relation": "is_a", "target": "streaks"},
         r"target 'streaks' is a criterion, expected a diagnosis"),
        ({"type": "relation", "name": "streaks", "relation": "related_to", "target": "streaks"},
         r"needs two different nodes"),
        ({"type": "relation", "name": "streaks", "relation": "related_to", "target": "ink", "weight": "heavy"},
         r"weight must be a number"),
        ({"type": "concept", "name": "ink"}, r"'ink' is already an artifact; it cannot also be a concept"),
        ({"type": "criterion", "name": "streaks", "points": 2}, r"criterion 'streaks' already scores 1 point"),
        ({"type": "criterion", "name": "c", "checklist": "maybe"}, r"checklist must be true or false"),
        ({"type": "diagnosis", "name": "lupus", "parent": "streaks"}, r"parent 'streaks' is a criterion"),
    ],
)
def test_errors_name_the_entry(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(TaxonomyError, match=message):
        extend_graph(G, [entry])


def test_a_bad_file_leaves_the_graph_unchanged(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("type,name,parent\nconcept,good_one,\nsub_label,wide,nail_fold\n")
    with pytest.raises(TaxonomyError, match=r"t.csv line 3: unknown node 'nail_fold'"):
        extend_graph(G, p)
    assert "good_one" not in G


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="taxonomy file not found"):
        extend_graph(G, tmp_path / "none.json")
    (tmp_path / "t.yaml").write_text("x")
    with pytest.raises(TaxonomyError, match=r"must end in .json or .csv"):
        extend_graph(G, tmp_path / "t.yaml")
    (tmp_path / "t.json").write_text("{bad")
    with pytest.raises(TaxonomyError, match="not valid JSON"):
        extend_graph(G, tmp_path / "t.json")
    (tmp_path / "t.json").write_text('{"criteria": []}')
    with pytest.raises(TaxonomyError, match="expected a list of objects"):
        extend_graph(G, tmp_path / "t.json")
    (tmp_path / "t.csv").write_text("kind,name\nconcept,x\n")
    with pytest.raises(TaxonomyError, match=r"unknown column\(s\) \['kind'\]"):
        extend_graph(G, tmp_path / "t.csv")
