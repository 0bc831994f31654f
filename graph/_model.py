"""The clinical knowledge graph: the 7-point checklist, diagnoses and artifacts in networkx.

Nodes (attribute ``kind``):

- ``criterion``: the seven checklist criteria (``points`` 2 major / 1 minor, ``major``,
  ``checklist`` True), plus any a user adds.
- ``sub_label``: a criterion's raw derm7pt label, id ``"<criterion>:<raw label>"`` (e.g.
  ``"vascular_structures:linear irregular"``), with ``criterion``, ``raw_label``, ``points``.
- ``diagnosis``: ``melanoma``, ``non_melanoma``, ``nevus`` and derm7pt's melanoma subtypes.
- ``artifact``: the known confounding artifacts (clinically irrelevant by definition).
- ``concept``: a user-named concept (from a taxonomy file).

Edges live in a :class:`networkx.MultiDiGraph` whose edge key is the relation (attribute
``relation`` too): ``scores`` (sub-label -> criterion, ``points``), ``indicates`` (criterion ->
melanoma, ``weight`` = the criterion's points), ``counter_indicates``, ``irrelevant`` (artifact
-> every diagnosis), ``is_a`` (diagnosis -> broader diagnosis), ``complement_of`` (melanoma ->
non_melanoma), ``co_occurs`` (criterion -- criterion, learned from data, stored once in
criterion order) and ``related_to``. Every attribute is a plain str/int/float/bool, so the
graph exports losslessly to node-link JSON and GraphML.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from concepts import ARTIFACTS, ConceptError, DataError
from concepts.data import DERM7PT_LABELS, DERM7PT_MELANOMA_DIAGNOSES, SEVEN_POINT_THRESHOLD
from graph._expectation import Expectation, expected_relation
from graph._schema import (
    RELATIONS,
    add_artifact,
    add_diagnosis,
    add_edge,
    add_sub_label,
    normalize_name,
    py_scalar,
    validate_graph,
)

__all__ = ["ClinicalGraph", "Neighbor", "PathStep"]

_CRITERION_LABELS = {
    "pigment_network": "atypical pigment network",
    "blue_whitish_veil": "blue-whitish veil",
    "vascular_structures": "atypical vascular pattern",
    "pigmentation": "irregular pigmentation",
    "streaks": "irregular streaks",
    "dots_and_globules": "irregular dots/globules",
    "regression_structures": "regression structures",
}


@dataclass(frozen=True)
class Neighbor:
    """A neighbour of a node: the node, its kind, the relation and the edge's direction."""

    node: str
    kind: str
    relation: str
    direction: str  # "out" (node -> neighbour) or "in" (neighbour -> node)
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PathStep:
    """One edge of an explanation path, oriented as stored in the graph."""

    source: str
    relation: str
    target: str
    attrs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        extra = ""
        if self.relation == "scores":
            pts = int(self.attrs.get("points", 0))
            extra = f" ({pts} point{'s' if pts != 1 else ''})"
        elif self.relation in ("indicates", "counter_indicates") and "weight" in self.attrs:
            extra = f" (weight {self.attrs['weight']:g})"
        elif self.relation == "co_occurs":
            extra = f" (phi {self.attrs.get('phi', 0.0):.2f}, p {self.attrs.get('p_value', 1.0):.2g})"
        return f"{self.source} --{self.relation}{extra}--> {self.target}"


class ClinicalGraph:
    """The clinical knowledge graph and its queries.

    Build the default graph with :meth:`default`; extend it with
    :func:`graph.extend_graph` and :func:`graph.add_cooccurrence` (both return new graphs);
    export with :func:`graph.write_graph`.

    Parameters
    ----------
    g
        A :class:`networkx.MultiDiGraph` in the schema described in the module docstring
        (validated; see :func:`graph.validate_graph`).
    threshold
        Checklist score at or above which the rule suggests melanoma.
    """

    def __init__(self, g: nx.MultiDiGraph, threshold: int = SEVEN_POINT_THRESHOLD):
        validate_graph(g)
        self.nx = g
        self.threshold = int(threshold)
        self._lookup: dict[str, str] = {}
        for n in g.nodes:
            self._lookup.setdefault(normalize_name(n), n)

    # ------------------------------------------------------------------ construction
    @classmethod
    def default(cls) -> ClinicalGraph:
        """The 7-point checklist (derm7pt's labels), melanoma diagnoses and artifacts."""
        g = nx.MultiDiGraph(name="clinical-knowledge", schema="concept-workbench-graph/1")
        add_diagnosis(g, "melanoma", label="melanoma", provenance="seven-point checklist")
        add_diagnosis(g, "non_melanoma", label="any non-melanoma lesion", provenance="seven-point checklist")
        add_edge(g, "melanoma", "non_melanoma", "complement_of", provenance="definition")
        for dx in DERM7PT_MELANOMA_DIAGNOSES:
            if dx != "melanoma":
                add_diagnosis(g, dx, label=dx, is_a="melanoma", provenance="derm7pt")
        add_diagnosis(g, "nevus", label="nevus", is_a="non_melanoma", provenance="definition")
        for crit, labels in DERM7PT_LABELS.items():
            pts = max(labels.values())
            g.add_node(
                crit,
                kind="criterion",
                label=_CRITERION_LABELS.get(crit, crit.replace("_", " ")),
                points=int(pts),
                major=pts >= 2,
                checklist=True,
                provenance="seven-point checklist",
            )
            add_edge(g, crit, "melanoma", "indicates", weight=float(pts), provenance="seven-point checklist")
            for raw, p in labels.items():
                add_sub_label(g, crit, raw, int(p), provenance="derm7pt")
        for art in ARTIFACTS:
            add_artifact(g, art, provenance="known dermoscopy confounders")
        return cls(g)

    def copy(self) -> ClinicalGraph:
        """A deep copy (attributes are scalars, so ``nx.MultiDiGraph.copy`` suffices)."""
        return ClinicalGraph(self.nx.copy(), threshold=self.threshold)

    # ------------------------------------------------------------------ nodes
    def __contains__(self, node: object) -> bool:
        return isinstance(node, str) and self.find(node) is not None

    def find(self, name: str) -> str | None:
        """The node id ``name`` refers to (exact, else case/blank/underscore-insensitive)."""
        if name in self.nx:
            return name
        return self._lookup.get(normalize_name(name))

    def node(self, name: str) -> str:
        """Like :meth:`find` but raises :class:`concepts.ConceptError` for an unknown name."""
        n = self.find(name)
        if n is None:
            raise ConceptError(
                f"{name!r} is not in the clinical graph — known criteria: "
                f"{', '.join(self.criteria())}; artifacts: {', '.join(self.nodes('artifact'))}"
                "; add others with a taxonomy file (graph.extend_graph)"
            )
        return n

    def kind(self, name: str) -> str:
        """The kind of a node (see :data:`NODE_KINDS`)."""
        return str(self.nx.nodes[self.node(name)]["kind"])

    def nodes(self, kind: str | None = None) -> tuple[str, ...]:
        """Node ids, optionally of one kind, in insertion order."""
        return tuple(n for n, k in self.nx.nodes(data="kind") if kind is None or k == kind)

    def criteria(self, checklist_only: bool = False) -> tuple[str, ...]:
        """Criterion nodes (``checklist_only``: the scored 7-point criteria)."""
        return tuple(
            n
            for n, d in self.nx.nodes(data=True)
            if d["kind"] == "criterion" and (d.get("checklist", False) or not checklist_only)
        )

    def sub_labels(self, criterion: str) -> dict[str, int]:
        """Raw label -> points of one criterion."""
        c = self._criterion(criterion)
        return {
            str(self.nx.nodes[u]["raw_label"]): int(d.get("points", 0))
            for u, _, d in self.nx.in_edges(c, data=True)
            if d["relation"] == "scores"
        }

    def _criterion(self, name: str) -> str:
        c = self.node(name)
        if self.nx.nodes[c]["kind"] != "criterion":
            raise ConceptError(f"{name!r} is a {self.nx.nodes[c]['kind']}, not a criterion")
        return c

    # ------------------------------------------------------------------ scoring
    def score_labels(self, labels: Mapping[str, str]) -> int:
        """Checklist score of one case from its raw labels (criterion -> raw label).

        Every checklist criterion must be given; user-added criteria are scored when given.

        Raises
        ------
        ConceptError
            An unknown criterion, a missing checklist criterion or an unknown raw label.
        """
        given = {self._criterion(k): v for k, v in labels.items()}
        missing = [c for c in self.criteria(checklist_only=True) if c not in given]
        if missing:
            raise ConceptError(f"no label given for the checklist criteria {missing}")
        total = 0
        for c, raw in given.items():
            table = self.sub_labels(c)
            key = " ".join(str(raw).strip().lower().split())
            if key not in table:
                raise ConceptError(
                    f"{raw!r} is not a label of {c}; expected one of {list(table)}"
                )
            total += table[key]
        return total

    def score_presence(self, presence: Mapping[str, bool | int | float]) -> int:
        """Checklist score from binary criteria (criterion -> present); missing = absent."""
        total = 0
        for k, v in presence.items():
            c = self._criterion(k)
            if v not in (0, 1, True, False):
                raise DataError(f"presence of {c} must be 0/1, got {v!r}")
            total += int(self.nx.nodes[c]["points"]) * int(bool(v))
        return total

    def score_table(self, cases: pd.DataFrame, source: str = "raw") -> pd.Series:
        """Checklist score of every row of a table.

        Parameters
        ----------
        cases
            ``source="raw"``: columns ``<criterion>_raw`` (as :func:`concepts.importers.read_derm7pt_meta`
            writes); ``source="presence"``: 0/1 columns named as the criteria.
        source
            ``"raw"`` or ``"presence"``.

        Returns
        -------
        pandas.Series
            int64 scores, indexed like ``cases``, named ``seven_point_score``.

        Raises
        ------
        DataError
            A missing column, or an unknown label / non-0/1 value (naming row and column).
        """
        if source not in ("raw", "presence"):
            raise DataError(f"source must be 'raw' or 'presence', got {source!r}")
        total = np.zeros(len(cases), dtype=np.int64)
        for c in self.criteria(checklist_only=True):
            col = f"{c}_raw" if source == "raw" else c
            if col not in cases.columns:
                raise DataError(f"the cases table lacks the column {col!r}")
            values = cases[col]
            if source == "raw":
                table = self.sub_labels(c)
                keys = values.map(lambda v: " ".join(str(v).strip().lower().split()))
                bad = ~keys.isin(list(table))
                pts = keys.map(lambda k, t=table: t.get(k, 0))
            else:
                bad = ~values.isin([0, 1])
                pts = values.where(~bad, 0).astype(np.int64) * int(self.nx.nodes[c]["points"])
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"row {i}, column {col!r}: {py_scalar(values.iloc[i])!r} is not "
                    + (f"one of {list(self.sub_labels(c))}" if source == "raw" else "0/1")
                )
            total += pts.to_numpy(dtype=np.int64)
        return pd.Series(total, index=cases.index, name="seven_point_score")

    def rule(self, score: int | float) -> bool:
        """The checklist rule: score >= :attr:`threshold` suggests melanoma."""
        return bool(score >= self.threshold)

    # ------------------------------------------------------------------ expectations
    def class_ancestors(self, cls: str) -> list[str]:
        """The class node and its ``is_a`` ancestors, nearest first (empty if unknown)."""
        start = self.find(cls)
        if start is None or self.nx.nodes[start]["kind"] != "diagnosis":
            return []
        out = [start]
        for node in out:
            for _, parent, rel in self.nx.out_edges(node, keys=True):
                if rel == "is_a" and parent not in out:
                    out.append(parent)
        return out

    def expected_relation(self, concept: str, cls: str) -> Expectation:
        """The clinical relation expected between any concept and any class.

        Rules, in order: an artifact is ``irrelevant`` to every class; a scoring sub-label
        inherits its criterion's relation (a non-scoring one is ``unknown``); otherwise a direct
        ``indicates``/``counter_indicates``/``irrelevant`` edge from the concept to the class or
        to one of its ``is_a`` ancestors decides; an ``indicates`` edge to the class's
        complement (melanoma vs non_melanoma) gives ``counter_indicates`` (and vice versa);
        anything else is ``unknown``.
        """
        return expected_relation(self, concept, cls)

    # ------------------------------------------------------------------ navigation
    def neighbors(self, name: str, relation: str | None = None) -> list[Neighbor]:
        """Every neighbour of a node (both edge directions), optionally of one relation."""
        n = self.node(name)
        out: list[Neighbor] = []
        for _, v, k, d in self.nx.out_edges(n, keys=True, data=True):
            if relation is None or k == relation:
                out.append(Neighbor(v, self.nx.nodes[v]["kind"], k, "out", dict(d)))
        for u, _, k, d in self.nx.in_edges(n, keys=True, data=True):
            if relation is None or k == relation:
                out.append(Neighbor(u, self.nx.nodes[u]["kind"], k, "in", dict(d)))
        return out

    def paths(self, source: str, target: str, cutoff: int = 3,
              relations: Iterable[str] | None = None) -> list[list[PathStep]]:
        """Simple paths between two nodes, ignoring edge direction, shortest first.

        Parameters
        ----------
        source, target
            Node names.
        cutoff
            Longest path (edges).
        relations
            Only follow these relations (default: all but ``complement_of``).
        """
        s, t = self.node(source), self.node(target)
        rels = set(relations) if relations is not None else set(RELATIONS) - {"complement_of"}
        und = nx.Graph()
        und.add_nodes_from(self.nx.nodes)
        for u, v, k in self.nx.edges(keys=True):
            if k in rels:
                und.add_edge(u, v)
        found: list[list[PathStep]] = []
        for nodes in nx.all_simple_paths(und, s, t, cutoff=cutoff):
            found.append([self._step(a, b, rels) for a, b in itertools.pairwise(nodes)])
        found.sort(key=lambda p: (len(p), [(st.source, st.target) for st in p]))
        return found

    def _step(self, a: str, b: str, rels: set[str]) -> PathStep:
        for u, v in ((a, b), (b, a)):
            if self.nx.has_edge(u, v):
                for k, d in self.nx[u][v].items():
                    if k in rels:
                        return PathStep(u, k, v, dict(d))
        raise AssertionError("unreachable: path edge vanished")  # pragma: no cover

    def explain(self, concept: str, cls: str = "melanoma", max_paths: int = 5) -> list[str]:
        """Why a concept matters for a class, as sentences (the UI's "why" panel).

        The expected relation and the path behind it first, then the scoring labels (for a
        criterion), then the strongest co-occurring criteria (if co-occurrence edges were
        learned), then up to ``max_paths`` further paths through clinical relations
        (``scores``, ``indicates``, ``counter_indicates``, ``is_a``, ``co_occurs``,
        ``related_to``).
        """
        exp = self.expected_relation(concept, cls)
        lines = [f"expected: {exp.relation} — {exp.reason}"]
        if exp.node is None:
            return lines
        every = set(RELATIONS)
        if len(exp.path) > 1:
            steps = [self._step(a, b, every) for a, b in itertools.pairwise(exp.path)]
            lines.append("because: " + "; ".join(st.describe() for st in steps))
        node = exp.node
        kind = self.nx.nodes[node]["kind"]
        if kind == "criterion":
            scoring = {k: v for k, v in self.sub_labels(node).items() if v > 0}
            pts = int(self.nx.nodes[node]["points"])
            if scoring:
                lines.append(
                    f"scores {pts} point{'s' if pts != 1 else ''} when "
                    + " or ".join(repr(k) for k in scoring)
                )
            co = sorted(
                (nb for nb in self.neighbors(node, "co_occurs") if nb.attrs.get("testable", True)),
                key=lambda nb: -abs(float(nb.attrs.get("phi", 0.0))),
            )
            for nb in co[:3]:
                lines.append(
                    f"co-occurs with {nb.node}: phi {nb.attrs.get('phi', 0.0):.2f}, "
                    f"p {nb.attrs.get('p_value', 1.0):.2g} (n={nb.attrs.get('n', 0)})"
                )
        if exp.class_node is not None and exp.relation != "irrelevant":
            clinical = every - {"irrelevant", "complement_of"}
            others = [
                p for p in self.paths(node, exp.class_node, cutoff=3, relations=clinical)
                if _path_nodes(node, p) != exp.path
            ]
            lines.extend("path: " + "; ".join(st.describe() for st in p) for p in others[:max_paths])
        return lines

    # ------------------------------------------------------------------ misc
    def summary(self) -> dict[str, int]:
        """Node counts per kind and edge counts per relation."""
        out: dict[str, int] = {}
        for _, k in self.nx.nodes(data="kind"):
            out[f"nodes.{k}"] = out.get(f"nodes.{k}", 0) + 1
        for _, _, k in self.nx.edges(keys=True):
            out[f"edges.{k}"] = out.get(f"edges.{k}", 0) + 1
        return out

    def __repr__(self) -> str:
        return (
            f"ClinicalGraph({self.nx.number_of_nodes()} nodes, {self.nx.number_of_edges()} edges,"
            f" threshold={self.threshold})"
        )


def _path_nodes(start: str, steps: list[PathStep]) -> tuple[str, ...]:
    nodes = [start]
    for st in steps:
        nodes.append(st.target if st.source == nodes[-1] else st.source)
    return tuple(nodes)

