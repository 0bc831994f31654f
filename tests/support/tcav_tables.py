"""A synthetic TCAV table that encodes a DermSynth-like outcome, and the alignment categories
it must get (tests/graph/test_graph_align.py, tests/workbench/cli/test_graph_cli.py)."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["EXPECTED", "LAYERS", "dermsynth_tcav", "tcav_rows"]

LAYERS = ("block10", "block15")


def tcav_rows(concept: str, group: str, effect_mel: float, significant: bool, *, unstable: bool = False,
          p: float = 1e-4, layers: tuple[str, ...] = LAYERS, classes: tuple[str, ...] = ("melanoma", "nevus"),
          ) -> list[dict[str, Any]]:
    """Rows for a two-class model: the same concept has opposite effects on the two classes."""
    out = []
    for li, layer in enumerate(layers):
        for ci, cls in enumerate(classes):
            eff = (effect_mel if ci == 0 else -effect_mel) * (1.0 - 0.1 * li)
            out.append({
                "concept": concept, "group": group, "class": cls, "layer": layer,
                "score_mean": 0.5 + eff, "score_std": 0.05, "random_mean": 0.5, "effect": eff,
                "p_value": p / 4, "p_adjusted": p if significant else max(p, 0.3),
                "cav_accuracy": 0.9, "stability": 0.6 if unstable else 0.95,
                "significant": significant, "unstable": unstable,
            })
    return out


def dermsynth_tcav() -> pd.DataFrame:
    """Ink (on suspicious lesions) and patch (on benign nevi) planted; the model uses them."""
    rows: list[dict[str, Any]] = []
    rows += tcav_rows("ink", "artifact", +0.38, True, p=1e-5)
    rows += tcav_rows("patch", "artifact", -0.31, True, p=1e-4)
    for art in ("ruler", "dark_corner", "gel_bubble"):
        rows += tcav_rows(art, "artifact", 0.02, False, p=0.7)
    rows += tcav_rows("hair", "artifact", 0.2, True, unstable=True)  # unstable: not a finding
    rows += tcav_rows("pigment_network", "criterion", +0.30, True)
    rows += tcav_rows("dots_and_globules", "criterion", +0.22, True, p=1e-3)
    rows += tcav_rows("blue_whitish_veil", "criterion", -0.25, True)  # wrong direction
    for crit in ("streaks", "vascular_structures", "regression_structures"):
        rows += tcav_rows(crit, "criterion", 0.03, False, p=0.5)
    rows += tcav_rows("pigmentation", "criterion", 0.15, True, unstable=True)
    rows += tcav_rows("cluster_3", "custom", 0.27, True)
    return pd.DataFrame(rows)


EXPECTED = {
    "ink": "confounder",
    "patch": "confounder",
    "blue_whitish_veil": "contradictory",
    "vascular_structures": "neglected",
    "pigmentation": "neglected",
    "regression_structures": "neglected",
    "streaks": "neglected",
    "cluster_3": "unreviewed",
    "pigment_network": "aligned",
    "dots_and_globules": "aligned",
    "ruler": "aligned",
    "dark_corner": "aligned",
    "gel_bubble": "aligned",
    "hair": "aligned",
}
