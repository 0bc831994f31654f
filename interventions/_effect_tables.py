"""The tables of an effect report: metrics per slice, flip-rate summary, flipped cases."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from concepts import ARTIFACTS, Dataset
from interventions._whatif import WhatIf

__all__ = ["flip_summary", "flipped_rows", "slice_rows"]

_SLICE_KEYS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity")


def slice_rows(
    wi: WhatIf, dataset: Dataset, idx: np.ndarray, p0: np.ndarray, p1: np.ndarray, min_size: int
) -> list[dict[str, Any]]:
    """Metrics before/after per slice (with/without each artifact, per skin tone) of at least
    ``min_size`` cases."""
    cases = dataset.cases
    specs: list[tuple[str, str, np.ndarray]] = []
    for art in dataset.info.artifacts or tuple(a for a in ARTIFACTS if a in cases.columns):
        if art not in cases.columns:
            continue
        flag = cases[art].to_numpy()[idx].astype(bool)
        specs += [(art, "with", flag), (art, "without", ~flag)]
    for col in ("skin_tone", "fitzpatrick", "skin_type"):
        if col in cases.columns:
            vals = cases[col].astype(str).to_numpy()[idx]
            specs += [(col, str(v), vals == v) for v in sorted(set(vals))]
            break
    out = []
    for col, val, mask in specs:
        rows = np.flatnonzero(mask)
        if len(rows) < min_size:
            continue
        mb = wi.metrics(p0, rows)
        ma = wi.metrics(p1, rows)
        row: dict[str, Any] = {"column": col, "value": val, "n": len(rows)}
        for k in _SLICE_KEYS:
            row[f"{k}_before"] = mb.get(k)
            row[f"{k}_after"] = ma.get(k)
        out.append(row)
    return out


def flip_summary(fr_b: Mapping[str, Any], fr_a: Mapping[str, Any]) -> dict[str, Any]:
    """Per twin set: flip rate before and after, its relative reduction and where it came from."""
    out = {}
    for key in fr_b:
        b, a = fr_b[key]["rate"], fr_a[key]["rate"]
        out[key] = {
            "before": b, "after": a, "n": fr_b[key]["n"], "to_class": fr_b[key]["to_class"],
            "artifact": fr_b[key].get("artifact", key), "direction": fr_b[key].get("direction", "add"),
            "method": fr_b[key].get("method") or "render",
            "reduction": (b - a) / b if b and math.isfinite(b) and b > 0 else None,
        }
    return out


def flipped_rows(
    wi: WhatIf, p0: np.ndarray, p1: np.ndarray, rows: np.ndarray, k_pos: int
) -> list[dict[str, Any]]:
    """The cases whose predicted class flipped, with the positive-class probabilities."""
    classes = wi.model.classes
    return [{
        "case_id": wi.case_ids[r],
        "label": classes[int(wi.labels[r])],
        "before": classes[int(p0[r].argmax())],
        "after": classes[int(p1[r].argmax())],
        "p_before": float(p0[r, k_pos]),
        "p_after": float(p1[r, k_pos]),
    } for r in rows]
