"""The clinical relation the graph expects between a concept and a class.

:func:`expected_relation` applies the rules of :meth:`ClinicalGraph.expected_relation` in named
stages: resolve the concept and class nodes (artifacts and non-scoring sub-labels are decided
there), then a direct clinical edge to the class or an ``is_a`` ancestor, then an edge to the
complement of one of them (with the opposite relation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graph._schema import EXPECTATION_RELATIONS

if TYPE_CHECKING:
    from graph._model import ClinicalGraph

__all__ = ["CLINICAL_RELATIONS", "Expectation", "expected_relation"]

#: The relations that carry a clinical expectation, in the order they are looked up.
CLINICAL_RELATIONS: tuple[str, ...] = ("indicates", "counter_indicates", "irrelevant")

_FLIP = {"indicates": "counter_indicates", "counter_indicates": "indicates"}


@dataclass(frozen=True)
class Expectation:
    """The clinical relation the graph expects between a concept and a class.

    Attributes
    ----------
    concept, cls
        As asked (``node``/``class_node`` are the graph nodes they resolved to, or ``None``).
    relation
        ``"indicates"`` (expected to raise the class logit), ``"counter_indicates"`` (to lower
        it), ``"irrelevant"`` (no clinical relation: any reliance is a confounder) or
        ``"unknown"`` (the graph has no fact).
    sign
        +1, -1, 0 or ``None`` for the four relations.
    weight
        Checklist points behind an ``indicates``/``counter_indicates`` relation, if any.
    reason
        One sentence for a human.
    path
        Graph nodes from the concept to the class that support the relation.
    """

    concept: str
    cls: str
    relation: str
    sign: int | None
    weight: float | None
    reason: str
    node: str | None = None
    class_node: str | None = None
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class _EdgeTarget:
    """A clinical edge out of the concept's node: its target and relation."""

    target: str
    relation: str


@dataclass(frozen=True)
class _Query:
    """A resolved question: the concept node whose edges decide (a sub-label's criterion), the
    node asked about (the sub-label itself), the sub-label prefix of the path, the class and its
    ``is_a`` ancestors (nearest first), and the concept node's clinical edges."""

    concept: str
    cls: str
    node: str
    asked: str
    prefix: tuple[str, ...]
    ancestors: tuple[str, ...]
    edges: dict[_EdgeTarget, Mapping[str, Any]]


def expected_relation(graph: ClinicalGraph, concept: str, cls: str) -> Expectation:
    """See :meth:`ClinicalGraph.expected_relation`."""
    query = _resolve(graph, concept, cls)
    if isinstance(query, Expectation):
        return query
    return _direct(query) or _via_complement(graph, query) or Expectation(
        concept, cls, "unknown", None, None,
        f"the graph relates {query.node} to no diagnosis of {query.ancestors[0]}",
        query.asked, query.ancestors[0])


def _resolve(graph: ClinicalGraph, concept: str, cls: str) -> _Query | Expectation:
    """The resolved query, or the answer when the nodes alone decide it."""
    node = graph.find(concept)
    cls_node = graph.find(cls)
    if cls_node is not None and graph.nx.nodes[cls_node]["kind"] != "diagnosis":
        cls_node = None
    if node is None:
        return Expectation(concept, cls, "unknown", None, None,
                           f"{concept!r} is not in the clinical graph", None, cls_node)
    data = graph.nx.nodes[node]
    kind = data["kind"]
    if kind == "artifact":
        path = (node, cls_node) if cls_node else (node,)
        return Expectation(concept, cls, "irrelevant", 0, None,
                           f"{node} is an artifact: clinically irrelevant to every diagnosis",
                           node, cls_node, path)
    prefix: tuple[str, ...] = ()
    if kind == "sub_label":
        if int(data.get("points", 0)) <= 0:
            return Expectation(concept, cls, "unknown", None, None,
                               f"{node} does not score on the checklist", node, cls_node)
        prefix = (node,)
        node = str(data["criterion"])
    ancestors = graph.class_ancestors(cls)
    if not ancestors:
        return Expectation(concept, cls, "unknown", None, None,
                           f"class {cls!r} is not a diagnosis in the clinical graph",
                           prefix[0] if prefix else node, None)
    edges = {
        _EdgeTarget(v, k): d
        for _, v, k, d in graph.nx.out_edges(node, keys=True, data=True) if k in CLINICAL_RELATIONS
    }
    return _Query(concept, cls, node, prefix[0] if prefix else node, prefix, tuple(ancestors), edges)


def _chain(q: _Query, i: int) -> tuple[str, ...]:
    """The class's ancestors up to the i-th, from that ancestor down to the class."""
    return tuple(reversed(q.ancestors[: i + 1]))


def _direct(q: _Query) -> Expectation | None:
    """A clinical edge from the concept to the class or its nearest ancestor that has one."""
    for i, anc in enumerate(q.ancestors):
        for rel in CLINICAL_RELATIONS:
            d = q.edges.get(_EdgeTarget(anc, rel))
            if d is not None:
                via = f" (a kind of {anc})" if i else ""
                return Expectation(
                    q.concept, q.cls, rel, EXPECTATION_RELATIONS[rel], _weight(d),
                    f"{q.node} {rel.replace('_', ' ')} {anc}{via}",
                    q.asked, q.ancestors[0], (*q.prefix, q.node, *_chain(q, i)),
                )
    return None


def _via_complement(graph: ClinicalGraph, q: _Query) -> Expectation | None:
    """An (counter-)indicates edge to the complement of the class or an ancestor, flipped."""
    for i, anc in enumerate(q.ancestors):
        for other in _complements(graph, anc):
            for rel, opposite in _FLIP.items():
                d = q.edges.get(_EdgeTarget(other, rel))
                if d is not None:
                    via = f" (a kind of {anc})" if i else ""
                    return Expectation(
                        q.concept, q.cls, opposite, EXPECTATION_RELATIONS[opposite], _weight(d),
                        f"{q.node} {rel.replace('_', ' ')} {other}, the complement of "
                        f"{anc}{via}",
                        q.asked, q.ancestors[0],
                        (*q.prefix, q.node, other, *_chain(q, i)),
                    )
    return None


def _complements(graph: ClinicalGraph, node: str) -> Sequence[str]:
    out = [v for _, v, k in graph.nx.out_edges(node, keys=True) if k == "complement_of"]
    out += [u for u, _, k in graph.nx.in_edges(node, keys=True) if k == "complement_of"]
    return out


def _weight(d: Mapping[str, Any]) -> float | None:
    w = d.get("weight")
    return None if w is None else float(w)
