"""Extending the clinical graph from a user's taxonomy file (JSON or CSV).

A taxonomy is a list of entries, each a flat record with these fields:

=========  ===========================================================================
field      meaning
=========  ===========================================================================
type       ``criterion``, ``sub_label``, ``diagnosis``, ``artifact``, ``concept`` or
           ``relation`` (required)
name       the node to add; for ``sub_label`` its raw label; for ``relation`` the source
           node (required)
parent     ``sub_label``: its criterion (required); ``diagnosis``: the broader diagnosis
           it ``is_a`` (optional, e.g. ``non_melanoma``)
points     ``criterion``: points when present (default 1); ``sub_label``: points it scores
           (default 0)
target     ``relation``: the target node (required); ``criterion``: the diagnosis it
           indicates (default ``melanoma``)
relation   ``relation``: ``indicates``, ``counter_indicates``, ``irrelevant``, ``is_a`` or
           ``related_to`` (required)
weight     ``relation``: optional number
checklist  ``criterion``: true if every scored case must carry it (default false)
label      optional display label
=========  ===========================================================================

JSON: a list of such objects, or ``{"entries": [...]}``. CSV: a header row with these column
names (unused columns may be left out or empty). Entries may come in any order: nodes are
declared before edges are added. The whole file is validated on a copy of the graph, so a bad
file leaves the graph unchanged; errors name the entry (JSON, 0-based) or line (CSV).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd

from concepts import DataError
from graph._model import ClinicalGraph
from graph._schema import (
    NODE_KINDS,
    add_artifact,
    add_diagnosis,
    add_edge,
    add_sub_label,
    normalize_name,
    sub_label_id,
)

__all__ = ["TAXONOMY_FIELDS", "USER_RELATIONS", "TaxonomyError", "extend_graph", "read_taxonomy"]

#: Fields of a taxonomy entry.
TAXONOMY_FIELDS: tuple[str, ...] = (
    "type", "name", "parent", "points", "target", "relation", "weight", "checklist", "label",
)

#: Relations a taxonomy may add between existing or declared nodes.
USER_RELATIONS: tuple[str, ...] = ("indicates", "counter_indicates", "irrelevant", "is_a", "related_to")

_ENTRY_TYPES = (*NODE_KINDS, "relation")
_CLINICAL = ("indicates", "counter_indicates", "irrelevant")


class TaxonomyError(DataError):
    """A taxonomy file that cannot be applied (bad field, unknown node, conflicting fact)."""


def read_taxonomy(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """Read a taxonomy file into ``(where, entry)`` pairs (``where`` names entry or line).

    Raises
    ------
    TaxonomyError
        A missing or unreadable file, an unknown suffix, or not a list of records.
    """
    p = Path(path)
    if not p.is_file():
        raise TaxonomyError(f"taxonomy file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TaxonomyError(f"{p}: not valid JSON ({exc})") from exc
        if isinstance(data, dict) and "entries" in data:
            data = data["entries"]
        if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
            raise TaxonomyError(f"{p}: expected a list of objects (or {{\"entries\": [...]}})")
        return [(f"{p.name} entry {i}", dict(e)) for i, e in enumerate(data)]
    if suffix == ".csv":
        try:
            df = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise TaxonomyError(f"{p}: not a readable CSV file ({exc})") from exc
        df.columns = [str(c).strip() for c in df.columns]
        unknown = [c for c in df.columns if c not in TAXONOMY_FIELDS]
        if unknown or "type" not in df.columns or "name" not in df.columns:
            raise TaxonomyError(
                f"{p}: the header must name the columns type, name and optionally "
                f"{', '.join(TAXONOMY_FIELDS[2:])}"
                + (f"; unknown column(s) {unknown}" if unknown else "")
            )
        return [
            (f"{p.name} line {i + 2}", {k: v for k, v in rec.items() if str(v).strip() != ""})
            for i, rec in enumerate(df.to_dict(orient="records"))
        ]
    raise TaxonomyError(f"{p}: a taxonomy file must end in .json or .csv")


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _points(n: int) -> str:
    return f"{n} point" if n == 1 else f"{n} points"


def _text(where: str, e: Mapping[str, Any], key: str, required: bool = False) -> str | None:
    v = e.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "":
        if required:
            raise TaxonomyError(f"{where}: field {key!r} is required")
        return None
    if not isinstance(v, str | int | float):
        raise TaxonomyError(f"{where}: field {key!r} must be text, got {v!r}")
    return str(v).strip()


def _int(where: str, e: Mapping[str, Any], key: str, default: int) -> int:
    v = _text(where, e, key)
    if v is None:
        return default
    try:
        f = float(v)
    except ValueError:
        f = math.nan
    if not (math.isfinite(f) and f.is_integer() and f >= 0):
        raise TaxonomyError(f"{where}: {key} must be a whole number >= 0, got {v!r}")
    return int(f)


def _bool(where: str, e: Mapping[str, Any], key: str) -> bool:
    v = e.get(key)
    if isinstance(v, bool):
        return v
    t = _text(where, e, key)
    if t is None:
        return False
    if t.lower() in ("true", "1", "yes"):
        return True
    if t.lower() in ("false", "0", "no"):
        return False
    raise TaxonomyError(f"{where}: {key} must be true or false, got {t!r}")


def extend_graph(
    graph: ClinicalGraph, source: str | Path | Sequence[Mapping[str, Any]]
) -> ClinicalGraph:
    """A copy of ``graph`` extended with the entries of a taxonomy (file or records).

    Parameters
    ----------
    graph
        The graph to extend (left unchanged).
    source
        A ``.json``/``.csv`` taxonomy file, or the entries themselves (see the module
        docstring for the fields).

    Returns
    -------
    ClinicalGraph
        New nodes and edges carry ``provenance = "taxonomy:<file name>"``.

    Raises
    ------
    TaxonomyError
        An unknown entry type or relation, a missing field, a reference to a node that is
        neither in the graph nor declared in the taxonomy, a node redeclared with another
        kind or other points, or a relation that conflicts with the graph's facts.
    """
    if isinstance(source, str | Path):
        entries = read_taxonomy(source)
        origin = f"taxonomy:{Path(source).name}"
    else:
        entries = [(f"entry {i}", dict(e)) for i, e in enumerate(source)]
        origin = "taxonomy"
    parsed = _parse_entries(entries)
    builder = _GraphBuilder(graph.nx.copy(), origin)
    for entry in parsed:  # pass 1: nodes (except sub-labels, which need their criterion)
        if entry.type not in ("relation", "sub_label"):
            builder.add_node(entry)
    for entry in parsed:  # pass 2: sub-labels and edges
        builder.add_links(entry)
    return ClinicalGraph(builder.g, threshold=graph.threshold)


@dataclass(frozen=True)
class _Entry:
    """One validated taxonomy entry: where it came from, its type and its raw fields."""

    where: str
    type: str
    fields: Mapping[str, Any]


def _parse_entries(entries: Sequence[tuple[str, Mapping[str, Any]]]) -> list[_Entry]:
    """Entries with known fields and a known type, in file order."""
    parsed: list[_Entry] = []
    for where, e in entries:
        extra = [k for k in e if k not in TAXONOMY_FIELDS]
        if extra:
            raise TaxonomyError(f"{where}: unknown field(s) {extra}; fields are {', '.join(TAXONOMY_FIELDS)}")
        typ = (_text(where, e, "type", required=True) or "").lower()
        if typ not in _ENTRY_TYPES:
            raise TaxonomyError(f"{where}: unknown type {typ!r}; expected one of {', '.join(_ENTRY_TYPES)}")
        parsed.append(_Entry(where, typ, e))
    return parsed


def _relation_kinds(rel: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The node kinds a relation ``rel`` may start from and end at."""
    if rel in _CLINICAL:
        src_kinds: tuple[str, ...] = ("criterion", "sub_label", "concept")
        if rel == "irrelevant":
            src_kinds = (*src_kinds, "artifact")
        return src_kinds, ("diagnosis",)
    if rel == "is_a":
        return ("diagnosis",), ("diagnosis",)
    return tuple(NODE_KINDS), tuple(NODE_KINDS)


def _weight_attrs(where: str, e: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """Edge attributes of a relation entry: provenance and the optional finite weight."""
    attrs: dict[str, Any] = {"provenance": origin}
    w = _text(where, e, "weight")
    if w is not None:
        try:
            attrs["weight"] = float(w)
        except ValueError:
            raise TaxonomyError(f"{where}: weight must be a number, got {w!r}") from None
        if not math.isfinite(attrs["weight"]):
            raise TaxonomyError(f"{where}: weight must be finite, got {w!r}")
    return attrs


class _GraphBuilder:
    """Applies taxonomy entries to a working copy ``g`` of the graph (names matched loosely)."""

    def __init__(self, g: nx.MultiDiGraph, origin: str) -> None:
        self.g = g
        self.origin = origin
        self.lookup: dict[str, str] = {}
        for n in g.nodes:
            self.lookup.setdefault(normalize_name(n), n)

    def find(self, name: str) -> str | None:
        return name if name in self.g else self.lookup.get(normalize_name(name))

    def declare(self, name: str) -> None:
        self.lookup.setdefault(normalize_name(name), name)

    def ref(self, where: str, name: str, field: str, kinds: tuple[str, ...]) -> str:
        """The existing or declared node ``name`` of one of ``kinds`` (else a TaxonomyError)."""
        g = self.g
        node = self.find(name)
        if node is None:
            known = [n for n, k in g.nodes(data="kind") if k in kinds]
            raise TaxonomyError(
                f"{where}: unknown node {name!r} in field {field!r} — declare it in the taxonomy "
                f"or use a known {'/'.join(kinds)}: {', '.join(known[:20])}"
            )
        if g.nodes[node]["kind"] not in kinds:
            raise TaxonomyError(
                f"{where}: {field} {name!r} is {_a(g.nodes[node]['kind'])}, expected {_a('/'.join(kinds))}"
            )
        return node

    # ---------------------------------------------------------------- pass 1: nodes
    def add_node(self, entry: _Entry) -> None:
        """Declare a criterion, diagnosis, artifact or concept (or relabel an existing one)."""
        g, where, typ, e = self.g, entry.where, entry.type, entry.fields
        name = _text(where, e, "name", required=True) or ""
        label = _text(where, e, "label")
        node = self.find(name)
        if node is not None:
            have = g.nodes[node]["kind"]
            if have != typ:
                raise TaxonomyError(f"{where}: {name!r} is already {_a(have)}; it cannot also be {_a(typ)}")
            if typ == "criterion" and "points" in e and _int(where, e, "points", 1) != g.nodes[node]["points"]:
                raise TaxonomyError(
                    f"{where}: criterion {node!r} already scores {_points(g.nodes[node]['points'])}"
                )
            if label:
                g.nodes[node]["label"] = label
            return
        origin = self.origin
        if typ == "criterion":
            pts = _int(where, e, "points", 1)
            g.add_node(name, kind="criterion", label=label or name.replace("_", " "), points=pts,
                       major=pts >= 2, checklist=_bool(where, e, "checklist"), provenance=origin)
        elif typ == "diagnosis":
            add_diagnosis(g, name, label=label or name, provenance=origin)
        elif typ == "artifact":
            add_artifact(g, name, label=label or "", provenance=origin)
        else:
            g.add_node(name, kind="concept", label=label or name.replace("_", " "), provenance=origin)
        self.declare(name)

    # ---------------------------------------------------------------- pass 2: sub-labels and edges
    def add_links(self, entry: _Entry) -> None:
        """Add what an entry links: a sub-label, a diagnosis parent, a criterion target, a relation."""
        name = _text(entry.where, entry.fields, "name", required=True) or ""
        if entry.type == "sub_label":
            self._sub_label(entry, name)
        elif entry.type == "diagnosis":
            parent = _text(entry.where, entry.fields, "parent")
            if parent is not None:
                p = self.ref(entry.where, parent, "parent", ("diagnosis",))
                add_edge(self.g, self.find(name) or name, p, "is_a", provenance=self.origin)
        elif entry.type == "criterion":
            g, node = self.g, self.find(name) or name
            tgt = self.ref(entry.where, _text(entry.where, entry.fields, "target") or "melanoma", "target",
                           ("diagnosis",))
            if not any(k in _CLINICAL for k in g[node].get(tgt, {})):
                add_edge(g, node, tgt, "indicates", weight=float(g.nodes[node]["points"]),
                         provenance=self.origin)
        elif entry.type == "relation":
            self._relation(entry, name)

    def _sub_label(self, entry: _Entry, name: str) -> None:
        g, where, e = self.g, entry.where, entry.fields
        crit = self.ref(where, _text(where, e, "parent", required=True) or "", "parent", ("criterion",))
        raw = " ".join(name.lower().split())
        pts = _int(where, e, "points", 0)
        nid = sub_label_id(crit, raw)
        if nid in g:
            if int(g.nodes[nid]["points"]) != pts:
                raise TaxonomyError(
                    f"{where}: {crit} label {raw!r} already scores {_points(g.nodes[nid]['points'])}"
                )
            return
        if pts > int(g.nodes[crit]["points"]):
            raise TaxonomyError(
                f"{where}: label {raw!r} cannot score {_points(pts)}; its criterion {crit} "
                f"scores {_points(g.nodes[crit]['points'])}"
            )
        add_sub_label(g, crit, raw, pts, provenance=self.origin)
        self.declare(nid)

    def _relation(self, entry: _Entry, name: str) -> None:
        g, where, e = self.g, entry.where, entry.fields
        rel = (_text(where, e, "relation", required=True) or "").lower()
        if rel not in USER_RELATIONS:
            raise TaxonomyError(
                f"{where}: relation {rel!r} cannot be added from a taxonomy; use one of "
                f"{', '.join(USER_RELATIONS)} (sub-labels score through type sub_label, "
                "co-occurrence is learned from data)"
            )
        src_kinds, tgt_kinds = _relation_kinds(rel)
        src = self.ref(where, name, "name", tuple(NODE_KINDS))
        if rel in ("indicates", "counter_indicates") and g.nodes[src]["kind"] == "artifact":
            raise TaxonomyError(
                f"{where}: {src!r} is an artifact, irrelevant to every diagnosis by "
                "definition — declare a concept instead if it carries clinical meaning"
            )
        src = self.ref(where, name, "name", src_kinds)
        tgt = self.ref(where, _text(where, e, "target", required=True) or "", "target", tgt_kinds)
        if src == tgt:
            raise TaxonomyError(f"{where}: a relation needs two different nodes, got {src!r} twice")
        if rel in _CLINICAL:
            clash = [k for k in g[src].get(tgt, {}) if k in _CLINICAL and k != rel]
            if clash:
                raise TaxonomyError(
                    f"{where}: {src} already {clash[0].replace('_', ' ')} {tgt}; it cannot "
                    f"also be {rel.replace('_', ' ')}"
                )
        add_edge(g, src, tgt, rel, **_weight_attrs(where, e, self.origin))
