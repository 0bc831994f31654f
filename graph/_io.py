"""Export and import of the clinical graph: node-link JSON and GraphML (lossless round trip)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

import networkx as nx

from concepts import DataError
from graph._model import ClinicalGraph
from store import atomic_path

__all__ = ["GRAPH_FORMATS", "dump_graph", "from_node_link", "read_graph", "to_node_link", "write_graph"]

#: Export formats and their file suffixes.
GRAPH_FORMATS: dict[str, tuple[str, ...]] = {"json": (".json",), "graphml": (".graphml", ".xml")}


def _with_threshold(graph: ClinicalGraph) -> nx.MultiDiGraph:
    g = graph.nx.copy()
    g.graph["threshold"] = graph.threshold
    return g


def _from_nx(g: nx.MultiDiGraph, where: str) -> ClinicalGraph:
    for k in ("node_default", "edge_default"):  # added by networkx's GraphML reader
        g.graph.pop(k, None)
    threshold = g.graph.pop("threshold", None)
    try:
        t = int(threshold) if threshold is not None else None
    except (TypeError, ValueError):
        raise DataError(f"{where}: graph attribute 'threshold' must be an integer") from None
    return ClinicalGraph(g) if t is None else ClinicalGraph(g, threshold=t)


def to_node_link(graph: ClinicalGraph) -> dict[str, Any]:
    """The graph as a node-link dict (``nodes``, ``edges`` with ``key``; JSON-serialisable)."""
    return dict(nx.node_link_data(_with_threshold(graph), edges="edges"))


def from_node_link(data: dict[str, Any], where: str = "node-link data") -> ClinicalGraph:
    """Rebuild a graph from :func:`to_node_link`'s output (validated).

    Raises
    ------
    concepts.DataError
        Not a node-link object, or a graph that breaks the schema.
    """
    if not isinstance(data, dict) or "nodes" not in data:
        raise DataError(f"{where}: not a node-link graph (an object with 'nodes' and 'edges')")
    edges = "edges" if "edges" in data or "links" not in data else "links"
    try:
        g = nx.node_link_graph({**data, "directed": True, "multigraph": True}, edges=edges)
    except (KeyError, TypeError, nx.NetworkXError) as exc:
        raise DataError(f"{where}: malformed node-link graph ({exc!r})") from exc
    return _from_nx(g, where)


def dump_graph(graph: ClinicalGraph, fmt: str) -> str:
    """The graph as text in ``fmt`` (``"json"`` or ``"graphml"``)."""
    if fmt == "json":
        return json.dumps(to_node_link(graph), indent=2, allow_nan=False) + "\n"
    if fmt == "graphml":
        buf = io.BytesIO()
        nx.write_graphml(_with_threshold(graph), buf)
        return buf.getvalue().decode("utf-8")
    raise DataError(f"unknown graph format {fmt!r}; use one of {', '.join(GRAPH_FORMATS)}")


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in GRAPH_FORMATS:
            raise DataError(f"unknown graph format {fmt!r}; use one of {', '.join(GRAPH_FORMATS)}")
        return fmt
    for name, suffixes in GRAPH_FORMATS.items():
        if path.suffix.lower() in suffixes:
            return name
    raise DataError(f"{path}: cannot tell the format from the suffix; use .json or .graphml")


def write_graph(graph: ClinicalGraph, path: str | Path, fmt: str | None = None) -> Path:
    """Write the graph to ``path`` (format from ``fmt`` or the suffix); returns the path."""
    p = Path(path)
    text = dump_graph(graph, _format_of(p, fmt))
    with atomic_path(p, private=False) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return p


def read_graph(path: str | Path, fmt: str | None = None) -> ClinicalGraph:
    """Read a graph written by :func:`write_graph` (or any graph in the same schema).

    Raises
    ------
    concepts.DataError
        A missing or unparseable file, or a graph that breaks the schema.
    """
    p = Path(path)
    kind = _format_of(p, fmt)
    if not p.is_file():
        raise DataError(f"graph file not found: {p}")
    if kind == "json":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{p}: not valid JSON ({exc})") from exc
        return from_node_link(data, where=str(p))
    try:
        g = nx.read_graphml(p, node_type=str, force_multigraph=True)
    except (ParseError, nx.NetworkXError, KeyError, ValueError) as exc:
        raise DataError(f"{p}: not a readable GraphML file ({exc})") from exc
    if not g.is_directed():
        raise DataError(f"{p}: the clinical graph is directed; this GraphML graph is not")
    return _from_nx(nx.MultiDiGraph(g), str(p))
