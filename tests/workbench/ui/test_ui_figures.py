"""The UI's pure helpers: figures, overlays, plotly selection parsing, history tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from store import Action, Actor, Store
from workbench.ui._figures import (
    CATEGORY_COLORS,
    cooccurrence_heatmap,
    graph_figure,
    graph_layout,
    heat_overlay,
    metrics_compare_bar,
    reliance_bar,
    selected_node,
    tcav_figure,
)
from workbench.ui._history import active_interventions, history_frame, make_filter, verify_summary


def _tcav() -> pd.DataFrame:
    rows = []
    for concept, group, score, sig, unstable in (
        ("ink", "artifact", 0.9, True, False),
        ("ruler", "artifact", 0.5, False, False),
        ("streaks", "criterion", 0.7, True, True),
    ):
        rows.append({"concept": concept, "group": group, "class": "melanoma", "layer": "pool",
                     "score_mean": score, "score_std": 0.05, "random_mean": 0.5, "random_std": 0.1,
                     "significant": sig, "unstable": unstable})
    return pd.DataFrame(rows)


def test_tcav_figure_marks_and_baseline() -> None:
    fig = tcav_figure(_tcav(), cls="melanoma", layer="pool")
    bars = {t.name: t for t in fig.data}
    assert set(bars) == {"artifact", "criterion"}
    assert list(bars["artifact"].x) == ["ink", "ruler"]
    assert list(bars["artifact"].text) == ["*", ""]
    assert list(bars["criterion"].text) == ["~"]  # significant but unstable
    assert bars["artifact"].error_y.array is not None
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert lines and lines[0].y0 == pytest.approx(0.5)
    assert fig.layout.title.text.startswith("TCAV for")
    empty = tcav_figure(_tcav(), cls="nevus", layer="pool")
    assert not empty.data and "No TCAV results" in empty.layout.title.text


def test_graph_figure_layout_and_selection() -> None:
    nodes = pd.DataFrame([
        {"node": "ink", "kind": "artifact", "label": "ink", "category": "confounder"},
        {"node": "streaks", "kind": "criterion", "label": "irregular streaks", "category": "aligned"},
        {"node": "melanoma", "kind": "diagnosis", "label": "melanoma", "category": "diagnosis"},
    ])
    edges = pd.DataFrame([
        {"source": "streaks", "target": "melanoma", "relation": "indicates"},
        {"source": "ink", "target": "melanoma", "relation": "irrelevant"},
    ])
    pos = graph_layout(list(zip(nodes["node"], nodes["kind"], strict=True)), [])
    assert pos["ink"][0] < pos["streaks"][0] < pos["melanoma"][0]
    fig = graph_figure(nodes, edges, selected="ink")
    node_traces = [t for t in fig.data if t.mode == "markers+text"]
    by_name = {t.name: t for t in node_traces}
    assert by_name["confounder"].marker.color == CATEGORY_COLORS["confounder"]
    assert list(by_name["confounder"].customdata) == ["ink"]
    assert by_name["confounder"].marker.size[0] > by_name["aligned"].marker.size[0]
    assert fig.layout.clickmode == "event+select"


@pytest.mark.parametrize(
    ("event", "node"),
    [
        ({"selection": {"points": [{"customdata": "ink", "point_index": 0}]}}, "ink"),
        ({"selection": {"points": [{"customdata": ["streaks"]}]}}, "streaks"),
        ({"selection": {"points": [{"x": 1.0}]}}, None),
        ({"selection": {"points": []}}, None),
        (None, None),
        ({}, None),
    ],
)
def test_selected_node(event: object, node: str | None) -> None:
    assert selected_node(event) == node


def test_heat_overlay_resizes_and_scales() -> None:
    img = np.full((32, 32, 3), 128, np.uint8)
    out = heat_overlay(img, np.random.default_rng(0).normal(size=(4, 4)))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    signed = heat_overlay(img, np.zeros((8, 8)), signed=True)
    flat = heat_overlay(img, np.zeros((8, 8)))
    assert signed.shape == flat.shape == (32, 32, 3)


def test_bars_and_heatmap() -> None:
    fig = metrics_compare_bar({"accuracy": 0.7, "auc": None}, {"accuracy": 0.8, "auc": 0.9})
    assert [list(t.x) for t in fig.data] == [["accuracy"], ["accuracy"]]
    rel = pd.DataFrame({"artifact": ["ink", "ink"], "when": ["before", "after"], "flip rate": [0.4, 0.1]})
    fig = reliance_bar(rel, x="artifact", y="flip rate", color="when")
    assert [t.name for t in fig.data] == ["before", "after"]
    long = pd.DataFrame({"attribute": ["ink", "ink", "ruler"], "class": ["melanoma", "nevus", "melanoma"],
                         "lift": [2.0, 0.3, 1.0]})
    hm = cooccurrence_heatmap(long, row="attribute", col="class", value="lift", zmid=1.0)
    z = hm.data[0].z
    assert len(z) == 2 and z[1][1] is None  # ruler x nevus is missing, not 0


def test_history_helpers(tmp_path: Path) -> None:
    s = Store(tmp_path / "store.duckdb")
    derm = Actor.from_os_user("dermatologist")
    a = s.record_intervention(derm, {"op": "mask", "concept": "ink"}, concept="ink")
    s.append_event(derm, Action.APPLIED, intervention_id=a.intervention_id, rationale="shortcut", concept="ink")
    b = s.record_intervention(derm, {"op": "mask", "concept": "ruler"}, concept="ruler")
    s.append_event(derm, Action.APPLIED, intervention_id=b.intervention_id, rationale="r", concept="ruler")
    s.append_event(derm, Action.REVERTED, intervention_id=b.intervention_id, rationale="undo", concept="ruler")
    active = active_interventions(s)
    assert [x.intervention_id for x in active] == [a.intervention_id]
    assert active[0].concept == "ink" and active[0].rationale == "shortcut"
    assert active_interventions(s.events()) == active
    table = history_frame(s.events())
    assert list(table["seq"]) == [5, 4, 3, 2, 1]  # newest first
    assert set(table["action"]) == {"proposed", "applied", "reverted"}
    assert len(s.events(make_filter(action="reverted", concept=""))) == 1
    ok, text = verify_summary(s.verify())
    assert ok and "5 events" in text
