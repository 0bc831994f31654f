"""Significance of TCAV scores against random counterparts, and multiple-testing correction.

For each (concept, class, layer) the R TCAV scores of the concept's CAVs (one per run) are
compared with the baseline: the mean scores of R random pseudo-concepts trained the same way
(:mod:`concepts.tcav._design`). The default test, ``prediction``, asks whether the concept's
mean score lies outside the distribution of the baseline: ``t = (mean(T) - mean(B)) / (sd(B) * sqrt(1 + 1/R))`` with ``R - 1`` degrees of freedom
(a prediction-interval t-test). It treats the concept's example set as what it is — one sample
— so a concept half a random-run SD from the random mean is not significant however many runs
are made. ``welch`` (two-sided Welch t-test on the runs, as Kim et al. 2018) and ``mannwhitney``
treat the R runs as independent evidence; runs that share one example set are not, and these
tests then call small shifts significant far more often than ``alpha`` (measured in
``tests/concepts/tcav/test_tcav_significance.py``).

What is tested is a per-run statistic of the CAV's directional derivatives (``statistic``):
``derivative`` (default), the mean directional derivative of the unit CAV over the class inputs,
or ``sign_count``, the TCAV score (share of inputs with a positive derivative). The sign count
saturates where the class-logit gradient barely varies across inputs (layers close to a linear
head): every CAV, random ones included, then scores near 0 or 1, the random pseudo-concepts'
means spread over the whole interval, and even a concept scoring 1.0 lies only ~2.5 random SDs
from their mean — too little for a Holm-corrected test over many rows, however strong the
concept. The mean derivative has no ceiling and keeps the same null: a random concept is
exchangeable with the pseudo-concepts whichever statistic is compared (measured in
``docs/concepts.md``, "Which statistic is tested").

The p-values of all concepts x classes x layers are corrected together (Holm by default,
Benjamini-Hochberg as an option). A concept counts as significant only if the corrected p is
below ``alpha``, its CAVs beat chance and the random CAVs in held-out accuracy, and the
conclusion does not flip with the probe. Significance says the class logit is sensitive to the
concept's direction at that layer — not that the model causally relies on the concept.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from concepts._errors import ConceptError, DataError
from concepts.tcav._choices import CORRECTIONS, STATISTICS, TESTS

__all__ = [
    "CorrectionError",
    "SignificanceConfig",
    "adjust_pvalues",
    "benjamini_hochberg",
    "compare_to_random",
    "direction",
    "holm",
]



@dataclass(frozen=True)
class SignificanceConfig:
    """Settings of the significance test.

    Parameters
    ----------
    alpha
        Level of the corrected test.
    test
        ``prediction`` (the concept's mean score against the distribution of random runs,
        default), ``welch`` (two-sided Welch t-test on the runs) or ``mannwhitney`` (two-sided
        Mann-Whitney U on the runs).
    correction
        ``holm`` (family-wise), ``bh`` (Benjamini-Hochberg FDR) or ``none``.
    min_accuracy
        Held-out CAV accuracy a concept must reach to beat chance.
    accuracy_margin
        How far the concept's CAV accuracy must exceed the random CAVs' mean accuracy.
    statistic
        ``derivative`` (mean directional derivative of the unit CAV, default) or ``sign_count``
        (the TCAV score; saturates near a linear head, see the module docstring).
    """

    alpha: float = 0.05
    test: str = "prediction"
    correction: str = "holm"
    min_accuracy: float = 0.6
    accuracy_margin: float = 0.05
    statistic: str = "derivative"

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ConceptError(f"unknown statistic {self.statistic!r}; choose one of {list(STATISTICS)}")
        if self.test not in TESTS:
            raise ConceptError(f"unknown test {self.test!r}; choose one of {list(TESTS)}")
        if self.correction not in CORRECTIONS:
            raise ConceptError(f"unknown correction {self.correction!r}; choose one of {list(CORRECTIONS)}")
        if not 0.0 < self.alpha < 1.0:
            raise ConceptError(f"alpha must lie in (0, 1), got {self.alpha}")


def compare_to_random(scores: np.ndarray, baseline: np.ndarray, test: str = "prediction") -> float:
    """Two-sided p-value of ``scores`` (concept CAVs) against ``baseline`` (random CAVs).

    ``prediction``: the concept's mean score as one new draw from the baseline's distribution
    (``t = (mean(a) - mean(b)) / (sd(b) sqrt(1 + 1/len(b)))``, ``len(b) - 1`` degrees of
    freedom). ``welch`` / ``mannwhitney``: the runs as two independent samples.

    Degenerate samples (no variance in either, or in the baseline for ``prediction``) give
    p = 1 when the means agree and p = 0 when they differ.
    """
    from scipy import stats  # here, not at import: the CLI starts without scipy
    a = np.asarray(scores, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ConceptError("a significance test needs at least 2 runs (set runs >= 2)")
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return 1.0 if a[0] == b[0] else 0.0
    if test not in TESTS:
        raise ConceptError(f"unknown test {test!r}; choose one of {list(TESTS)}")
    if test == "prediction":
        return _prediction_p(a, b)
    with warnings.catch_warnings():  # near-constant samples (all-0/all-1 scores) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        if test == "welch":
            p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
        else:
            p = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return 1.0 if not np.isfinite(p) else p


def _prediction_p(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import stats  # here, not at import: the CLI starts without scipy
    sd = float(np.std(b, ddof=1))
    diff = float(a.mean() - b.mean())
    if sd == 0.0:
        return 1.0 if diff == 0.0 else 0.0
    t = diff / (sd * np.sqrt(1.0 + 1.0 / len(b)))
    return float(min(1.0, 2.0 * stats.t.sf(abs(t), df=len(b) - 1)))


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    return adjust_pvalues(p, "holm")


def benjamini_hochberg(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (the numbers of ``scipy.stats.false_discovery_control``)."""
    return adjust_pvalues(p, "bh")


class CorrectionError(ConceptError, DataError):
    """An unknown multiple-testing correction.

    Both a :class:`ConceptError` (what the TCAV callers catch) and a :class:`DataError` (what the
    co-occurrence and cluster callers catch), so one check serves both.
    """


def adjust_pvalues(p: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Correct a family of p-values for the number of tests.

    The one p-value adjustment of the project: TCAV (:mod:`concepts.tcav`) and the co-occurrence
    tables and clusters (:mod:`concepts.discovery`) both use it.

    Parameters
    ----------
    p
        Raw p-values in ``[0, 1]``.
    method
        ``"holm"`` (Holm-Bonferroni step-down, family-wise error), ``"bh"`` (Benjamini-Hochberg,
        false discovery rate; the same numbers as ``scipy.stats.false_discovery_control``) or
        ``"none"`` (a copy). See :data:`CORRECTIONS`.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values (float64) in the input order, monotone in the raw ones, capped at 1.

    Raises
    ------
    CorrectionError
        An unknown ``method``.
    """
    if method not in CORRECTIONS:
        raise CorrectionError(f"unknown correction {method!r}; choose one of {list(CORRECTIONS)}")
    pv = np.asarray(p, dtype=np.float64)
    m = len(pv)
    if m == 0 or method == "none":
        return pv.copy()
    order = np.argsort(pv, kind="stable")
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * pv[order])
    else:
        if m == 1:
            return pv.copy()
        ranked = pv[order] * (m / np.arange(1, m + 1, dtype=np.float64))
        adj = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def direction(significant: bool, effect: float) -> str:
    """``positive`` / ``negative`` for significant results, else ``none``."""
    if not significant or not np.isfinite(effect) or effect == 0:
        return "none"
    return "positive" if effect > 0 else "negative"
