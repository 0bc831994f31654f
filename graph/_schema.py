"""The clinical graph's schema: node kinds, relations, validation and the helpers that add
nodes and edges while keeping its invariants (every artifact is ``irrelevant`` to every
diagnosis; a sub-label ``scores`` its criterion; the edge key is the relation).
"""

from __future__ import annotations

import re
from typing import Any

import networkx as nx

from concepts import DataError

__all__ = [
    "EXPECTATION_RELATIONS",
    "NODE_KINDS",
    "RELATIONS",
    "add_artifact",
    "add_diagnosis",
    "add_edge",
    "add_sub_label",
    "normalize_name",
    "py_scalar",
    "sub_label_id",
    "validate_graph",
]

#: Node kinds.
NODE_KINDS: tuple[str, ...] = ("criterion", "sub_label", "diagnosis", "artifact", "concept")

#: Edge relations (the edge key in the multigraph).
RELATIONS: tuple[str, ...] = (
    "scores",
    "indicates",
    "counter_indicates",
    "irrelevant",
    "is_a",
    "complement_of",
    "co_occurs",
    "related_to",
)

#: Relations a concept can have to a class: sign +1, -1, 0, unknown.
EXPECTATION_RELATIONS: dict[str, int | None] = {
    "indicates": 1,
    "counter_indicates": -1,
    "irrelevant": 0,
    "unknown": None,
}


def py_scalar(value: Any) -> Any:
    """A numpy/pandas scalar as the plain Python value (for readable error messages)."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, str | bytes):
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


def normalize_name(name: str) -> str:
    """Lower case, blanks/hyphens/underscores collapsed to one ``_`` (for lenient look-ups)."""
    return re.sub(r"[\s_\-]+", "_", str(name).strip().lower())


def sub_label_id(criterion: str, raw_label: str) -> str:
    """Node id of a criterion's raw label: ``"<criterion>:<raw label>"``."""
    return f"{criterion}:{raw_label}"


_NODE_ATTRS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "criterion": {"points": int, "checklist": bool},
    "sub_label": {"criterion": str, "raw_label": str, "points": int},
    "diagnosis": {},
    "artifact": {},
    "concept": {},
}


def validate_graph(g: Any, where: str = "graph") -> None:
    """Check that ``g`` follows the clinical-graph schema (described in :mod:`graph._model`).

    Raises
    ------
    concepts.DataError
        Not a directed multigraph, a node without a known ``kind`` or a required attribute, an
        edge whose key is not a known relation, or a sub-label without its criterion.
    """
    if not isinstance(g, nx.MultiDiGraph):
        raise DataError(f"{where}: expected a directed multigraph, got {type(g).__name__}")
    for n, d in g.nodes(data=True):
        if not isinstance(n, str):
            raise DataError(f"{where}: node ids must be strings, got {n!r}")
        kind = d.get("kind")
        if kind not in _NODE_ATTRS:
            raise DataError(
                f"{where}: node {n!r} has kind {kind!r}; expected one of {', '.join(NODE_KINDS)}"
            )
        for attr, typ in _NODE_ATTRS[kind].items():
            v = d.get(attr)
            if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
                raise DataError(f"{where}: {kind} node {n!r} lacks a valid {attr!r} attribute")
        if kind == "sub_label" and g.nodes.get(d["criterion"], {}).get("kind") != "criterion":
            raise DataError(f"{where}: sub-label {n!r} names the unknown criterion {d['criterion']!r}")
    for u, v, k, d in g.edges(keys=True, data=True):
        if k not in RELATIONS or d.get("relation") != k:
            raise DataError(
                f"{where}: edge {u!r} -> {v!r} has relation {d.get('relation', k)!r}; expected "
                f"one of {', '.join(RELATIONS)} (as both the edge key and its 'relation')"
            )


def add_edge(g: nx.MultiDiGraph, u: str, v: str, relation: str, **attrs: Any) -> None:
    """Add (or replace) the ``relation`` edge ``u -> v``; the key is the relation."""
    if relation not in RELATIONS:
        raise DataError(f"unknown relation {relation!r}; known: {', '.join(RELATIONS)}")
    if g.has_edge(u, v, key=relation):
        g.remove_edge(u, v, key=relation)
    g.add_edge(u, v, key=relation, relation=relation, **attrs)


def add_diagnosis(g: nx.MultiDiGraph, name: str, *, label: str = "", is_a: str | None = None,
                  provenance: str = "") -> None:
    """Add a diagnosis node (and its ``is_a`` edge); every artifact gets an ``irrelevant`` edge."""
    g.add_node(name, kind="diagnosis", label=label or name, provenance=provenance)
    if is_a is not None:
        add_edge(g, name, is_a, "is_a", provenance=provenance)
    for a, k in list(g.nodes(data="kind")):
        if k == "artifact":
            add_edge(g, a, name, "irrelevant", provenance="definition")


def add_artifact(g: nx.MultiDiGraph, name: str, *, label: str = "", provenance: str = "") -> None:
    """Add an artifact node with an ``irrelevant`` edge to every diagnosis."""
    g.add_node(name, kind="artifact", label=label or name.replace("_", " "), provenance=provenance)
    for d, k in list(g.nodes(data="kind")):
        if k == "diagnosis":
            add_edge(g, name, d, "irrelevant", provenance="definition")


def add_sub_label(g: nx.MultiDiGraph, criterion: str, raw_label: str, points: int,
                  *, provenance: str = "") -> str:
    """Add a raw sub-label of ``criterion`` scoring ``points``; returns its node id."""
    n = sub_label_id(criterion, raw_label)
    g.add_node(n, kind="sub_label", criterion=criterion, raw_label=raw_label,
               label=f"{criterion.replace('_', ' ')}: {raw_label}", points=int(points),
               provenance=provenance)
    add_edge(g, n, criterion, "scores", points=int(points), provenance=provenance)
    return n
