"""The scoring stages of a TCAV analysis: scores per run, then the significance table.

:func:`score_runs` scores every CAV of a (layer, class) with one matrix product of the class
gradients and the CAVs (:func:`concepts.tcav._core.tcav_scores`). :func:`significance_table`
compares each concept's per-run statistic with the random pseudo-concepts' means, corrects the
p-values over concepts x classes x layers (per probe) and checks that the stability probe draws
the same conclusion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from concepts.bank import Concept
from concepts.tcav._cav import cav_cosine
from concepts.tcav._compute_cavs import RANDOM, TrainedCAVs
from concepts.tcav._core import TABLE_COLUMNS, TCAVScores, tcav_scores
from concepts.tcav._design import baseline_means
from concepts.tcav._plan import ClassGradients, TCAVPlan
from concepts.tcav._setup import TCAVConfig
from concepts.tcav._significance import (
    SignificanceConfig,
    adjust_pvalues,
    compare_to_random,
    direction,
)

__all__ = ["ProbeEvidence", "RunScores", "ScoreKey", "score_runs", "significance_table"]


@dataclass(frozen=True)
class ScoreKey:
    """Which per-run scores: a concept's (or the random baseline's) CAVs of one probe, at one
    layer, for the inputs of one class."""

    probe: str
    concept: str
    layer: str
    cls: str


@dataclass(frozen=True)
class RunScores:
    """The TCAV scores of every run.

    Attributes
    ----------
    by_key
        :class:`ScoreKey` -> the R runs' scores.
    table
        Long form: one row per (concept, class, layer, probe, run) with ``sign_count``,
        ``magnitude`` and ``mean_derivative``.
    """

    by_key: Mapping[ScoreKey, TCAVScores]
    table: pd.DataFrame

    def get(self, probe: str, concept: str, layer: str, cls: str) -> TCAVScores:
        """The per-run scores of ``concept``'s ``probe`` CAVs at ``layer`` for class ``cls``."""
        return self.by_key[ScoreKey(probe, concept, layer, cls)]


def score_runs(plan: TCAVPlan, gradients: ClassGradients, cavs: TrainedCAVs) -> RunScores:
    """Score every CAV of each (layer, class) with one product of gradients and CAVs."""
    by_key: dict[ScoreKey, TCAVScores] = {}
    rows: list[dict[str, Any]] = []
    names = [spec.name for spec in cavs.design.specs]
    for layer in gradients.layers:
        order = [(probe, name) for probe in plan.probes for name in names]
        vectors = np.concatenate([cavs.get(probe, name, layer).vectors for probe, name in order])
        for cls in plan.classes:
            scores = tcav_scores(gradients.of(layer, cls), vectors)
            at = 0
            for probe, name in order:
                sl = slice(at, at + len(cavs.get(probe, name, layer)))
                at = sl.stop
                part = TCAVScores(scores.sign_count[sl], scores.magnitude[sl], scores.mean_derivative[sl],
                                  scores.n_inputs)
                by_key[ScoreKey(probe, name, layer, cls)] = part
                rows.extend(_long_rows(part, name, cls, layer, probe))
    return RunScores(by_key, pd.DataFrame(rows))


def _long_rows(part: TCAVScores, concept: str, cls: str, layer: str, probe: str) -> list[dict[str, Any]]:
    return [
        {"concept": concept, "class": cls, "layer": layer, "probe": probe, "run": r + 1,
         "sign_count": float(part.sign_count[r]), "magnitude": float(part.magnitude[r]),
         "mean_derivative": float(part.mean_derivative[r])}
        for r in range(len(part.sign_count))
    ]


# --------------------------------------------------------------------------- significance
@dataclass(frozen=True)
class ProbeEvidence:
    """What one probe's CAVs say about one (concept, class, layer), before correction.

    Attributes
    ----------
    p_value
        Raw p-value of the tested statistic against the random pseudo-concepts.
    effect
        The tested statistic's effect, or 0 when the TCAV score moves the other way.
    accurate
        The concept's CAVs beat chance and the random CAVs in held-out accuracy.
    z
        How many random-pseudo-concept SDs the concept's mean lies from theirs.
    """

    p_value: float
    effect: float
    accurate: bool
    z: float


def _tested(
    concept: TCAVScores, random: TCAVScores, statistic: str, runs_per_set: int
) -> tuple[np.ndarray, np.ndarray]:
    """The concept's per-run values of the tested statistic and the random pseudo-concepts' means."""
    field = "mean_derivative" if statistic == "derivative" else "sign_count"
    return getattr(concept, field), baseline_means(getattr(random, field), runs_per_set)


def _z(T: np.ndarray, B: np.ndarray) -> float:
    """How many random-pseudo-concept SDs the concept's mean lies from theirs."""
    sd = float(np.std(B, ddof=1)) if len(B) > 1 else 0.0
    return float((T.mean() - B.mean()) / sd) if sd > 0 else float("nan")


def _agreeing_effect(tested: float, score: np.ndarray, random_means: np.ndarray) -> float:
    """The tested statistic's effect, or 0 (no direction) when the TCAV score moves the other way:
    a row is called positive/negative only when both agree, so the reported score never
    contradicts the verdict."""
    score_effect = float(score.mean() - random_means.mean())
    return tested if tested * score_effect > 0 else 0.0


def _verdict(row: dict[str, Any], alpha: float, alt: str | None, acc_ok: bool) -> str:
    if not acc_ok:
        v = f"CAV not better than chance/random (accuracy {row['cav_accuracy']:.2f})"
    elif row["unstable"]:
        v = f"unstable: conclusion flips with the {alt} probe"
    elif row["significant"]:
        v = (f"{'positive' if row['effect'] > 0 else 'negative'} logit sensitivity "
             f"(TCAV {row['score_mean']:.2f} vs random {row['random_mean']:.2f}; "
             f"{row['statistic']} {row['test_z']:+.1f} random SDs)")
    else:
        v = "not significant"
    if row["confounded"]:
        v += "; example set confounded with the label"
    return v


def _probe_evidence(
    concept: TCAVScores, random: TCAVScores, accuracy: float, random_accuracy: float, sig: SignificanceConfig,
    runs_per_set: int,
) -> ProbeEvidence:
    T, B = _tested(concept, random, sig.statistic, runs_per_set)
    effect = _agreeing_effect(float(T.mean() - B.mean()), concept.sign_count,
                              baseline_means(random.sign_count, runs_per_set))
    accurate = accuracy >= sig.min_accuracy and accuracy >= random_accuracy + sig.accuracy_margin
    return ProbeEvidence(compare_to_random(T, B, sig.test), effect, accurate, _z(T, B))


def significance_table(
    plan: TCAVPlan, layers: Sequence[str], cavs: TrainedCAVs, scores: RunScores, config: TCAVConfig,
    confounded: Mapping[str, bool],
) -> pd.DataFrame:
    """One row per (concept, class, layer) with the probe's verdict; see :data:`TABLE_COLUMNS`.

    The p-values of each probe are corrected together over all rows (``sig.correction``); a row
    is significant when its corrected p is below ``sig.alpha``, its CAVs are accurate, and the
    stability probe (if any) reaches the same direction. ``confounded``: concept name -> its
    example set is confounded with the label.
    """
    sig = config.significance
    runs_per_set = cavs.design.runs_per_set
    evidence: dict[str, list[ProbeEvidence]] = {probe: [] for probe in plan.probes}
    rows: list[dict[str, Any]] = []
    for layer in layers:
        for cls in plan.classes:
            for con in plan.concepts:
                for probe in plan.probes:
                    evidence[probe].append(_probe_evidence(
                        scores.get(probe, con.name, layer, cls), scores.get(probe, RANDOM, layer, cls),
                        float(cavs.get(probe, con.name, layer).accuracies.mean()),
                        float(cavs.get(probe, RANDOM, layer).accuracies.mean()), sig, runs_per_set))
                rows.append(_row(plan, con, cls, layer, cavs, scores, config, evidence[plan.probe][-1].z,
                                 confounded[con.name]))
    adjusted = {probe: adjust_pvalues(np.array([e.p_value for e in evidence[probe]]), sig.correction)
                for probe in plan.probes}
    for i, row in enumerate(rows):
        _conclude(row, plan, {probe: evidence[probe][i] for probe in plan.probes},
                  {probe: float(adjusted[probe][i]) for probe in plan.probes}, sig.alpha)
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def _row(
    plan: TCAVPlan, con: Concept, cls: str, layer: str, cavs: TrainedCAVs, scores: RunScores,
    config: TCAVConfig, test_z: float, confounded: bool,
) -> dict[str, Any]:
    """The row's descriptive columns (everything but the corrected test and the verdict)."""
    probe, alt, runs_per_set = plan.probe, plan.stability_probe, cavs.design.runs_per_set
    cav_set = cavs.get(probe, con.name, layer)
    concept = scores.get(probe, con.name, layer, cls)
    random = scores.get(probe, RANDOM, layer, cls)
    random_means = baseline_means(random.sign_count, runs_per_set)
    return {
        "concept": con.name, "concept_id": con.id, "group": con.group, "class": cls,
        "layer": layer, "probe": probe, "runs": config.runs,
        "score_mean": float(concept.sign_count.mean()), "score_std": float(concept.sign_count.std(ddof=1)),
        "random_mean": float(random_means.mean()), "random_std": float(random_means.std(ddof=1)),
        "effect": float(concept.sign_count.mean() - random_means.mean()),
        "magnitude_mean": float(concept.magnitude.mean()),
        "derivative_mean": float(concept.mean_derivative.mean()),
        "random_derivative_mean": float(baseline_means(random.mean_derivative, runs_per_set).mean()),
        "statistic": config.significance.statistic,
        "test_z": test_z,
        "cav_accuracy": float(cav_set.accuracies.mean()),
        "random_accuracy": float(cavs.get(probe, RANDOM, layer).accuracies.mean()),
        "stability": float(cav_set.stability),
        "stability_probe": alt or "",
        "probe_cosine": cav_cosine(cav_set.mean_cav(), cavs.get(alt, con.name, layer).mean_cav())
        if alt else float("nan"),
        "confounded": confounded,
    }


def _conclude(
    row: dict[str, Any], plan: TCAVPlan, evidence: Mapping[str, ProbeEvidence], adjusted: Mapping[str, float],
    alpha: float,
) -> None:
    """Fill in the row's corrected test, stability check and verdict."""
    probe, alt = plan.probe, plan.stability_probe
    dirs = {pr: direction(bool(adjusted[pr] < alpha and evidence[pr].accurate), evidence[pr].effect)
            for pr in plan.probes}
    row["p_value"] = float(evidence[probe].p_value)
    row["p_adjusted"] = float(adjusted[probe])
    row["stability_p_adjusted"] = float(adjusted[alt]) if alt else float("nan")
    row["stability_effect"] = float(evidence[alt].effect) if alt else float("nan")
    row["unstable"] = bool(alt is not None and dirs[alt] != dirs[probe])
    row["significant"] = bool(dirs[probe] != "none" and not row["unstable"])
    row["verdict"] = _verdict(row, alpha, alt, evidence[probe].accurate)
