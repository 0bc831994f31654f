"""Checklist scoring of tables: ground truth from raw labels, the rule's sensitivity and
specificity, and a model's implied checklist from its concept scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from concepts import DataError
from graph._model import ClinicalGraph

__all__ = ["RuleSummary", "checklist_scores", "implied_checklist", "rule_summary"]


@dataclass(frozen=True)
class RuleSummary:
    """How well the rule "score >= threshold means melanoma" separates the cases.

    ``sensitivity`` = tp / (tp + fn) and ``specificity`` = tn / (tn + fp); ``None`` when the
    cases hold no melanoma (resp. no non-melanoma).
    """

    threshold: int
    n: int
    n_melanoma: int
    tp: int
    fn: int
    tn: int
    fp: int
    sensitivity: float | None
    specificity: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        def f(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.3f}"

        return (
            f"rule score>={self.threshold}: sensitivity {f(self.sensitivity)}, specificity "
            f"{f(self.specificity)} (n={self.n}, melanoma={self.n_melanoma}, TP={self.tp} "
            f"FN={self.fn} TN={self.tn} FP={self.fp})"
        )


def rule_summary(
    scores: Sequence[int] | np.ndarray | pd.Series,
    melanoma: Sequence[bool | int] | np.ndarray | pd.Series,
    threshold: int = 3,
) -> RuleSummary:
    """Confusion counts, sensitivity and specificity of ``score >= threshold`` for melanoma."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(melanoma).astype(bool)
    if s.shape != y.shape:
        raise DataError(f"{len(s)} scores but {len(y)} melanoma labels")
    pos = s >= threshold
    tp, fn = int(np.sum(pos & y)), int(np.sum(~pos & y))
    tn, fp = int(np.sum(~pos & ~y)), int(np.sum(pos & ~y))
    return RuleSummary(
        threshold=int(threshold),
        n=len(s),
        n_melanoma=int(y.sum()),
        tp=tp,
        fn=fn,
        tn=tn,
        fp=fp,
        sensitivity=tp / (tp + fn) if tp + fn else None,
        specificity=tn / (tn + fp) if tn + fp else None,
    )


def checklist_scores(meta: pd.DataFrame, graph: ClinicalGraph | None = None) -> pd.DataFrame:
    """Ground-truth checklist of every case, computed by the graph from the raw labels.

    Parameters
    ----------
    meta
        :func:`concepts.importers.read_derm7pt_meta`'s table (``case_num``, ``label`` and the
        ``<criterion>_raw`` columns). The file's own ``seven_point_score`` is not used.
    graph
        Default :meth:`ClinicalGraph.default`.

    Returns
    -------
    pandas.DataFrame
        ``case_num``, ``seven_point_score`` (computed), ``melanoma`` (0/1 from the diagnosis),
        ``rule_positive`` (score >= the graph's threshold).
    """
    g = graph or ClinicalGraph.default()
    for col in ("case_num", "label"):
        if col not in meta.columns:
            raise DataError(f"the metadata table lacks the column {col!r}")
    score = g.score_table(meta, source="raw")
    return pd.DataFrame(
        {
            "case_num": meta["case_num"].to_numpy(),
            "seven_point_score": score.to_numpy(),
            "melanoma": (meta["label"] == "melanoma").to_numpy().astype(np.int64),
            "rule_positive": score.to_numpy() >= g.threshold,
        },
        index=meta.index,
    )


def _at_least(probs: np.ndarray, points: np.ndarray, t: int) -> np.ndarray:
    """P(sum_j points_j * Bernoulli(probs[:, j]) >= t) for each row, criteria independent."""
    n = probs.shape[0]
    top = int(points.sum())
    dist = np.zeros((n, top + 1))
    dist[:, 0] = 1.0
    for j, pts in enumerate(points):
        p = probs[:, j : j + 1]
        shifted = np.zeros_like(dist)
        shifted[:, pts:] = dist[:, : top + 1 - pts]
        dist = dist * (1 - p) + shifted * p
    return dist[:, max(t, 0):].sum(axis=1) if t <= top else np.zeros(n)


def implied_checklist(
    concept_scores: pd.DataFrame,
    graph: ClinicalGraph | None = None,
    threshold: float | Mapping[str, float] = 0.5,
    *,
    from_logits: bool = False,
) -> pd.DataFrame:
    """The checklist a model implies, from its per-case concept scores.

    Parameters
    ----------
    concept_scores
        One row per case and one column per checklist criterion (named as the graph's
        criteria; other columns are ignored) holding the model's probability that the
        criterion is present.
    graph
        Default :meth:`ClinicalGraph.default`.
    threshold
        Presence threshold on the probability: one value or one per criterion.
    from_logits
        The columns hold logits / signed distances to a CAV hyperplane; a sigmoid turns them
        into probabilities (and ``threshold`` still applies to the probability).

    Returns
    -------
    pandas.DataFrame
        Indexed like ``concept_scores``: per criterion ``c`` the 0/1 thresholded presence
        ``c`` and the probability ``c_prob``; then ``score_thresholded`` (checklist score of
        the thresholded criteria), ``rule_thresholded`` (it is >= the rule's threshold),
        ``score_expected`` (sum of points x probability, the expected score) and ``p_rule``
        (probability that the score reaches the rule's threshold, criteria taken as
        independent). Join it to :func:`checklist_scores` to show it beside the ground truth.

    Raises
    ------
    DataError
        A missing criterion column, a non-finite value, or a probability outside [0, 1].
    """
    g = graph or ClinicalGraph.default()
    crits = g.criteria(checklist_only=True)
    by_node = _criterion_columns(g, crits, concept_scores)
    probs = _criterion_probs(concept_scores, crits, by_node, from_logits)
    thr = _thresholds(g, crits, threshold)
    points = np.array([int(g.nx.nodes[c]["points"]) for c in crits], dtype=np.int64)
    present = (probs >= thr).astype(np.int64)
    out: dict[str, Any] = {}
    for j, c in enumerate(crits):
        out[c] = present[:, j]
        out[f"{c}_prob"] = probs[:, j]
    score_t = present @ points
    out["score_thresholded"] = score_t
    out["rule_thresholded"] = score_t >= g.threshold
    out["score_expected"] = probs @ points
    out["p_rule"] = _at_least(probs, points, g.threshold)
    return pd.DataFrame(out, index=concept_scores.index)


def _criterion_columns(g: ClinicalGraph, crits: Sequence[str], scores: pd.DataFrame) -> dict[str, str]:
    """Criterion node -> the first column of ``scores`` naming it (every criterion needed)."""
    by_node: dict[str, str] = {}
    for col in scores.columns:
        node = g.find(str(col))
        if node is not None and node in crits and node not in by_node:
            by_node[node] = str(col)
    missing = [c for c in crits if c not in by_node]
    if missing:
        raise DataError(
            f"the concept scores lack the criteria {missing} — score every checklist criterion "
            "(columns named as the criteria)"
        )
    return by_node


def _criterion_probs(
    scores: pd.DataFrame, crits: Sequence[str], by_node: Mapping[str, str], from_logits: bool
) -> np.ndarray:
    """``(N, len(crits))`` presence probabilities (finite; in [0, 1] or sigmoid of logits)."""
    probs = np.empty((len(scores), len(crits)))
    for j, c in enumerate(crits):
        v = pd.to_numeric(scores[by_node[c]], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(v)):
            i = int(np.flatnonzero(~np.isfinite(v))[0])
            raise DataError(f"row {i}, column {by_node[c]!r}: not a finite number")
        if from_logits:
            v = 1.0 / (1.0 + np.exp(-v))
        elif np.any((v < 0) | (v > 1)):
            i = int(np.flatnonzero((v < 0) | (v > 1))[0])
            raise DataError(
                f"row {i}, column {by_node[c]!r}: {float(v[i])!r} is not a probability in [0, 1] — pass "
                "from_logits=True for logits or signed distances"
            )
        probs[:, j] = v
    return probs


def _thresholds(g: ClinicalGraph, crits: Sequence[str], threshold: float | Mapping[str, float]) -> np.ndarray:
    """One presence threshold per criterion."""
    if isinstance(threshold, Mapping):
        th = {g.node(k): float(v) for k, v in threshold.items()}
        lacking = [c for c in crits if c not in th]
        if lacking:
            raise DataError(f"no presence threshold given for {lacking}")
        return np.array([th[c] for c in crits])
    return np.full(len(crits), float(threshold))
