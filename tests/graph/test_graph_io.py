"""Export/import round trips (node-link JSON and GraphML) and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from concepts import DataError
from concepts.importers import read_derm7pt_meta
from graph import (
    ClinicalGraph,
    add_cooccurrence,
    dump_graph,
    extend_graph,
    from_node_link,
    read_graph,
    to_node_link,
    write_graph,
)

META = Path(__file__).resolve().parents[1] / "fixtures" / "derm7pt" / "meta" / "meta.csv"


def _rich_graph() -> ClinicalGraph:
    g = add_cooccurrence(ClinicalGraph.default(), read_derm7pt_meta(META), source="fixture")
    g = extend_graph(
        g,
        [
            {"type": "diagnosis", "name": "seborrheic keratosis", "parent": "non_melanoma"},
            {"type": "concept", "name": "milia_like_cysts", "label": "milia-like cysts"},
            {"type": "relation", "name": "milia_like_cysts", "relation": "indicates",
             "target": "seborrheic keratosis", "weight": 1.5},
            {"type": "sub_label", "name": "broadened", "parent": "pigment_network", "points": 2},
        ],
    )
    g.threshold = 4  # a non-default threshold must survive too
    return g


def _same(a: ClinicalGraph, b: ClinicalGraph) -> None:
    assert dict(a.nx.nodes(data=True)) == dict(b.nx.nodes(data=True))
    ea = sorted(a.nx.edges(keys=True, data=True))
    eb = sorted(b.nx.edges(keys=True, data=True))
    assert ea == eb
    for (_, _, _, da), (_, _, _, db) in zip(ea, eb, strict=True):
        for k in da:  # types too (bool stays bool, int stays int)
            assert type(da[k]) is type(db[k]), k
    for n, d in a.nx.nodes(data=True):
        for k, v in d.items():
            assert type(v) is type(b.nx.nodes[n][k]), (n, k)
    assert a.threshold == b.threshold
    assert a.nx.graph == b.nx.graph


@pytest.mark.parametrize("suffix", [".json", ".graphml"])
def test_file_round_trip_preserves_nodes_edges_and_attributes(tmp_path: Path, suffix: str) -> None:
    g = _rich_graph()
    p = write_graph(g, tmp_path / f"g{suffix}")
    back = read_graph(p)
    _same(g, back)
    # the round-tripped graph answers queries the same way
    assert back.expected_relation("milia_like_cysts", "seborrheic keratosis").relation == "indicates"
    assert back.score_labels({c: "absent" for c in back.criteria(checklist_only=True)}) == 0
    co = back.nx.edges["pigment_network", "dots_and_globules", "co_occurs"]
    # fixture: both in rows 0, 1, 14; only the network in 4; only dots in 3 -> 3, 1, 1, 11
    assert (co["n11"], co["n10"], co["n01"], co["n00"]) == (3, 1, 1, 11)
    assert co["phi"] == pytest.approx((3 * 11 - 1 * 1) / (4 * 12)) and co["n"] == 16 and co["symmetric"] is True


def test_default_graph_round_trips_through_strings() -> None:
    g = ClinicalGraph.default()
    _same(g, from_node_link(json.loads(dump_graph(g, "json"))))
    _same(g, from_node_link(to_node_link(g)))
    gml = dump_graph(g, "graphml")
    assert gml.startswith("<?xml") and "graphml" in gml


def test_node_link_shape() -> None:
    data = to_node_link(ClinicalGraph.default())
    assert data["directed"] is True and data["multigraph"] is True
    assert data["graph"]["threshold"] == 3
    node = next(n for n in data["nodes"] if n["id"] == "pigment_network")
    assert node["kind"] == "criterion" and node["points"] == 2
    edge = next(e for e in data["edges"] if e["source"] == "streaks" and e["target"] == "melanoma")
    assert edge["key"] == edge["relation"] == "indicates" and edge["weight"] == 1.0


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="graph file not found"):
        read_graph(tmp_path / "missing.json")
    with pytest.raises(DataError, match="cannot tell the format"):
        read_graph(tmp_path / "g.txt")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_graph(tmp_path / "bad.json")
    (tmp_path / "bad.graphml").write_text("<graphml><oops>")
    with pytest.raises(DataError, match="not a readable GraphML"):
        read_graph(tmp_path / "bad.graphml")
    with pytest.raises(DataError, match="not a node-link graph"):
        from_node_link({"a": 1})
    with pytest.raises(DataError, match="unknown graph format"):
        dump_graph(ClinicalGraph.default(), "dot")


def test_schema_is_validated_on_import(tmp_path: Path) -> None:
    data = to_node_link(ClinicalGraph.default())
    bad_kind = json.loads(json.dumps(data))
    bad_kind["nodes"][0]["kind"] = "planet"
    with pytest.raises(DataError, match="has kind 'planet'"):
        from_node_link(bad_kind)
    bad_rel = json.loads(json.dumps(data))
    bad_rel["edges"][0]["relation"] = bad_rel["edges"][0]["key"] = "causes"
    with pytest.raises(DataError, match="relation 'causes'"):
        from_node_link(bad_rel)
    no_points = json.loads(json.dumps(data))
    next(n for n in no_points["nodes"] if n["id"] == "streaks").pop("points")
    with pytest.raises(DataError, match="criterion node 'streaks' lacks a valid 'points'"):
        from_node_link(no_points)
    undirected = nx.Graph([("a", "b")])
    nx.write_graphml(undirected, tmp_path / "u.graphml")
    with pytest.raises(DataError, match="the clinical graph is directed"):
        read_graph(tmp_path / "u.graphml")
