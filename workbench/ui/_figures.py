"""Plotly figures and image overlays of the UI (pure functions: data in, figure out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = [
    "CATEGORY_COLORS",
    "GROUP_COLORS",
    "cooccurrence_heatmap",
    "graph_figure",
    "graph_layout",
    "heat_overlay",
    "metrics_compare_bar",
    "reliance_bar",
    "selected_node",
    "tcav_figure",
]

#: Alignment category -> colour (the knowledge-graph legend).
CATEGORY_COLORS: dict[str, str] = {
    "aligned": "#2e7d32",
    "confounder": "#c62828",
    "neglected": "#f9a825",
    "contradictory": "#6a1b9a",
    "unreviewed": "#607d8b",
    "not tested": "#b0bec5",
}

#: Concept group -> colour (TCAV bars).
GROUP_COLORS: dict[str, str] = {
    "criterion": "#1565c0",
    "artifact": "#c62828",
    "custom": "#00897b",
}

_FONT = {"family": "system-ui, sans-serif", "size": 13}


def _layout(height: int, title: str | None = None, **extra: Any) -> dict[str, Any]:
    """Common look as a layout dict: title top left, legend top right (never on top of each
    other). Figures are built in one ``go.Figure(data, layout)`` call: plotly validates once,
    which keeps a slider rerun cheap."""
    out: dict[str, Any] = {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 64 if title else 36, "b": 10},
        "font": _FONT,
        "plot_bgcolor": "white",
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
    }
    if title:
        out["title"] = {"text": title, "x": 0.0, "xanchor": "left", "y": 0.98, "yanchor": "top",
                        "font": {"size": 15}}
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


# --------------------------------------------------------------------------- TCAV
def tcav_figure(tcav: pd.DataFrame, *, cls: str, layer: str) -> go.Figure:
    """TCAV scores of every concept for one class and layer: bars with error bars (std over
    runs), the random-concept baseline (dashed line, band of its std), significance marks
    (``*``; ``~`` unstable).

    Expects the TCAV table columns ``concept, group, class, layer, score_mean, score_std,
    random_mean, significant, unstable`` (``random_std`` optional).
    """
    df = tcav[(tcav["class"] == cls) & (tcav["layer"] == layer)].copy()
    if df.empty:
        return go.Figure(layout=_layout(320, f"No TCAV results for {cls} at {layer}"))
    df = df.sort_values(["group", "score_mean"], ascending=[True, False])
    traces: list[dict[str, Any]] = []
    for group, g in df.groupby("group", sort=False):
        marks = [
            ("~" if bool(u) else "*") if bool(s) else ""
            for s, u in zip(g["significant"], g["unstable"], strict=True)
        ]
        traces.append({
            "type": "bar",
            "x": g["concept"].tolist(),
            "y": g["score_mean"].tolist(),
            "error_y": {"type": "data", "array": g["score_std"].fillna(0.0).tolist(), "visible": True},
            "name": str(group),
            "marker": {"color": GROUP_COLORS.get(str(group), "#546e7a")},
            "text": marks,
            "textposition": "outside",
            "customdata": np.stack(
                [g["random_mean"], g["significant"].astype(bool), g["unstable"].astype(bool)], axis=1
            ).tolist(),
            "hovertemplate": (
                "%{x}<br>TCAV %{y:.2f} ± %{error_y.array:.2f}<br>random %{customdata[0]:.2f}"
                "<br>significant %{customdata[1]} · unstable %{customdata[2]}<extra></extra>"
            ),
        })
    rnd = float(df["random_mean"].mean())
    rstd = float(df["random_std"].mean()) if "random_std" in df else 0.0
    shapes: list[dict[str, Any]] = [{
        "type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": rnd, "y1": rnd,
        "line": {"dash": "dash", "color": "#616161"},
    }]
    if rstd > 0:
        shapes.insert(0, {"type": "rect", "xref": "paper", "x0": 0, "x1": 1, "y0": rnd - rstd,
                          "y1": rnd + rstd, "fillcolor": "#9e9e9e", "opacity": 0.18, "line": {"width": 0},
                          "layer": "below"})
    layout = _layout(
        440, f"TCAV for “{cls}” at layer {layer}  (* significant, ~ unstable)",
        margin={"r": 70},
        shapes=shapes,
        annotations=[{"xref": "paper", "x": 1.0, "xanchor": "left", "y": rnd, "showarrow": False,
                      "text": f"random<br>{rnd:.2f}", "font": {"color": "#616161", "size": 12}}],
        yaxis={"range": [0, 1.12], "title": {"text": "TCAV score"}, "gridcolor": "#eeeeee"},
        xaxis={"tickangle": -35},
    )
    return go.Figure(data=traces, layout=layout)


# --------------------------------------------------------------------------- graph
_KIND_X = {"artifact": 0.0, "concept": 0.0, "sub_label": 0.0, "criterion": 1.0, "diagnosis": 2.0}
_KIND_SYMBOL = {
    "criterion": "circle",
    "artifact": "diamond",
    "concept": "star",
    "diagnosis": "square",
    "sub_label": "circle-open",
}


_KIND_TEXT = {
    "criterion": "top center",
    "artifact": "middle left",
    "concept": "middle left",
    "diagnosis": "middle right",
    "sub_label": "bottom center",
}


def graph_layout(nodes: Sequence[tuple[str, str]], edges: Sequence[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """A readable, deterministic layered layout of the clinical graph.

    Criteria in the middle column, diagnoses on the right, artifacts and custom concepts on the
    left (sub-labels, when shown, in a ring around their criterion).
    """
    pos: dict[str, tuple[float, float]] = {}
    columns: dict[float, list[str]] = {}
    subs: list[str] = []
    for n, kind in nodes:
        if kind == "sub_label":
            subs.append(n)
            continue
        columns.setdefault(_KIND_X.get(kind, 0.0), []).append(n)
    for x, names in columns.items():
        k = len(names)
        for i, n in enumerate(names):
            pos[n] = (x, 1.0 - (i + 0.5) / k if k else 0.5)
    parent = {v: u for u, v in edges if v in pos and u in subs}
    parent.update({u: v for u, v in edges if u in subs and v in pos})
    by_parent: dict[str, list[str]] = {}
    for s in subs:
        by_parent.setdefault(parent.get(s, ""), []).append(s)
    for p, kids in by_parent.items():
        px, py = pos.get(p, (0.5, 0.5))
        for i, s in enumerate(kids):
            ang = np.pi / 2 + np.pi * (i + 1) / (len(kids) + 1)
            pos[s] = (px + 0.35 * float(np.cos(ang)), py + 0.05 * float(np.sin(ang)))
    return pos


def graph_figure(
    nodes: pd.DataFrame,
    edges: pd.DataFrame,
    *,
    selected: str | None = None,
) -> go.Figure:
    """The knowledge graph as an interactive plotly network.

    Parameters
    ----------
    nodes
        ``node, kind, label, category`` (category: an alignment category or ``"not tested"``;
        diagnoses use ``"diagnosis"``).
    edges
        ``source, target, relation``.
    selected
        A node to highlight.
    """
    pos = graph_layout(
        list(zip(nodes["node"], nodes["kind"], strict=True)),
        list(zip(edges["source"], edges["target"], strict=True)),
    )
    traces = [*_edge_traces(edges, pos), *_node_traces(nodes, pos, selected)]
    layout = _layout(
        620,
        dragmode="select",
        clickmode="event+select",
        xaxis={"visible": False, "range": [-0.75, 2.75]},
        yaxis={"visible": False, "range": [-0.05, 1.05]},
        legend={"orientation": "h", "y": 0.0, "yanchor": "top", "x": 0.0, "xanchor": "left"},
        margin={"t": 20, "b": 40},
    )
    return go.Figure(data=traces, layout=layout)


#: Colour and dash of each edge relation of the knowledge graph.
_EDGE_STYLES = {
    "indicates": ("#2e7d32", "solid"),
    "counter_indicates": ("#6a1b9a", "solid"),
    "irrelevant": ("#e0e0e0", "dot"),
    "co_occurs": ("#1565c0", "dash"),
    "is_a": ("#9e9e9e", "solid"),
    "scores": ("#bdbdbd", "solid"),
}


def _edge_traces(edges: pd.DataFrame, pos: Mapping[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """One line trace per relation (sorted by name) between placed nodes."""
    traces: list[dict[str, Any]] = []
    for rel, g in edges.groupby("relation", sort=True):
        color, dash = _EDGE_STYLES.get(str(rel), ("#bdbdbd", "solid"))
        xs: list[float | None] = []
        ys: list[float | None] = []
        for s, t in zip(g["source"], g["target"], strict=True):
            if s in pos and t in pos:
                xs += [pos[s][0], pos[t][0], None]
                ys += [pos[s][1], pos[t][1], None]
        if xs:
            traces.append({
                "type": "scatter", "x": xs, "y": ys, "mode": "lines",
                "name": str(rel).replace("_", " "),
                "line": {"color": color, "width": 1.2, "dash": dash}, "hoverinfo": "skip",
                "legendgroup": "edges", "legendgrouptitle": {"text": "relations"},
            })
    return traces


def _node_traces(
    nodes: pd.DataFrame, pos: Mapping[str, tuple[float, float]], selected: str | None
) -> list[dict[str, Any]]:
    """One marker trace per alignment category (in order of appearance), ``selected`` enlarged."""
    traces: list[dict[str, Any]] = []
    for cat, g in nodes.groupby("category", sort=False):
        color = CATEGORY_COLORS.get(str(cat), "#37474f")
        g = g[g["node"].isin(list(pos))]
        traces.append({
            "type": "scatter",
            "x": [pos[n][0] for n in g["node"]],
            "y": [pos[n][1] for n in g["node"]],
            "mode": "markers+text",
            "name": str(cat),
            "text": g["label"].tolist(),
            "textposition": [_KIND_TEXT.get(k, "top center") for k in g["kind"]],
            "customdata": g["node"].tolist(),
            "marker": {
                "size": [26 if n == selected else 16 for n in g["node"]],
                "color": color,
                "symbol": [_KIND_SYMBOL.get(k, "circle") for k in g["kind"]],
                "line": {"width": [3 if n == selected else 1 for n in g["node"]], "color": "#212121"},
            },
            "hovertemplate": "%{text}<br>" + str(cat) + "<extra></extra>",
            "legendgroup": "nodes",
            "legendgrouptitle": {"text": "alignment"},
        })
    return traces


def selected_node(event: Any) -> str | None:
    """The node of the first clicked/selected point of a ``st.plotly_chart(on_select=...)``
    event on :func:`graph_figure` (its ``customdata``); None when nothing is selected."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for p in points or []:
        cd = p.get("customdata") if isinstance(p, dict) else None
        if isinstance(cd, list | tuple):
            cd = cd[0] if cd else None
        if isinstance(cd, str):
            return cd
    return None


# --------------------------------------------------------------------------- co-occurrence
def cooccurrence_heatmap(
    table: pd.DataFrame, *, row: str, col: str, value: str, title: str = "", zmid: float | None = None
) -> go.Figure:
    """A heatmap of ``value`` over ``row`` x ``col`` (a long table)."""
    mat = table.pivot_table(index=row, columns=col, values=value, aggfunc="first")
    z = mat.to_numpy(dtype=float)
    text = [[f"{v:.2f}" if np.isfinite(v) else "" for v in r] for r in z]
    trace = {
        "type": "heatmap",
        "z": [[v if np.isfinite(v) else None for v in r] for r in z],
        "x": [str(c) for c in mat.columns], "y": [str(r) for r in mat.index],
        "colorscale": "RdBu", "reversescale": True, "zmid": zmid, "text": text,
        "texttemplate": "%{text}",
        "hovertemplate": f"{row} %{{y}}<br>{col} %{{x}}<br>{value} %{{z:.3f}}<extra></extra>",
        "colorbar": {"title": {"text": value}},
    }
    return go.Figure(data=[trace], layout=_layout(max(260, 40 * len(mat.index) + 120), title or None))


# --------------------------------------------------------------------------- interventions
def metrics_compare_bar(before: Mapping[str, float | None], after: Mapping[str, float | None], *,
                        title: str = "") -> go.Figure:
    """Grouped bars of metrics before/after an intervention (``None`` values skipped)."""
    keys = [k for k in before if before.get(k) is not None and after.get(k) is not None]
    names = [k.replace("_", " ") for k in keys]
    traces = [
        {"type": "bar", "x": names, "y": [before[k] for k in keys], "name": "before",
         "marker": {"color": "#90a4ae"}},
        {"type": "bar", "x": names, "y": [after[k] for k in keys], "name": "after",
         "marker": {"color": "#9c3d54"}},
    ]
    layout = _layout(320, title or None, barmode="group",
                     yaxis={"range": [0, 1.05], "gridcolor": "#eeeeee"})
    return go.Figure(data=traces, layout=layout)


def reliance_bar(reliance: pd.DataFrame, *, x: str, y: str, color: str | None = None,
                 title: str = "") -> go.Figure:
    """A bar chart of a reliance table (e.g. artifact -> flip rate, before/after)."""
    palette = {"before": "#90a4ae", "after": "#9c3d54"}
    traces: list[dict[str, Any]] = []
    if color and color in reliance:
        for key, g in reliance.groupby(color, sort=False):
            tr: dict[str, Any] = {"type": "bar", "x": g[x].tolist(), "y": g[y].tolist(), "name": str(key)}
            if str(key) in palette:
                tr["marker"] = {"color": palette[str(key)]}
            traces.append(tr)
    else:
        traces.append({"type": "bar", "x": reliance[x].tolist(), "y": reliance[y].tolist(),
                       "marker": {"color": "#9c3d54"}})
    layout = _layout(320, title or None, barmode="group",
                     yaxis={"gridcolor": "#eeeeee", "title": {"text": y}})
    return go.Figure(data=traces, layout=layout)


# --------------------------------------------------------------------------- images
def _colormap(v: np.ndarray) -> np.ndarray:
    """A perceptual-ish blue->yellow->red map of values in [0, 1] to float RGB."""
    stops = np.array([[0.05, 0.1, 0.55], [0.1, 0.6, 0.9], [0.95, 0.9, 0.2], [0.85, 0.1, 0.1]])
    x = np.clip(v, 0, 1) * (len(stops) - 1)
    i = np.minimum(x.astype(int), len(stops) - 2)
    f = (x - i)[..., None]
    return stops[i] * (1 - f) + stops[i + 1] * f  # type: ignore[no-any-return]


def heat_overlay(image: np.ndarray, heat: np.ndarray, *, alpha: float = 0.45,
                 signed: bool = False) -> np.ndarray:
    """Overlay a heat map (any size, resized to the image) on a uint8 RGB image.

    ``signed``: values are centred at 0 and scaled by the largest |value| (attributions);
    otherwise min-max scaled (concept maps). Returns uint8 RGB.
    """
    img = np.asarray(image, dtype=np.float32) / 255.0
    h = np.asarray(heat, dtype=np.float32)
    if h.ndim == 3:
        h = h.mean(axis=-1) if h.shape[-1] in (1, 3) else h.mean(axis=0)
    if h.shape != img.shape[:2]:
        from PIL import Image

        h = np.asarray(
            Image.fromarray(h.astype(np.float32), mode="F").resize(
                (img.shape[1], img.shape[0]), Image.Resampling.BILINEAR
            )
        )
    if signed:
        m = float(np.abs(h).max()) or 1.0
        v = 0.5 + 0.5 * h / m
    else:
        lo, hi = float(h.min()), float(h.max())
        v = (h - lo) / (hi - lo) if hi > lo else np.zeros_like(h)
    out = (1 - alpha) * img + alpha * _colormap(v)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)
