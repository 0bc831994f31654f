"""Statistics of 2 x 2 tables shared by the co-occurrence tables, the clusters and the report.

- odds ratio ``a d / (b c)`` with a 95% Wald (Woolf) interval on the log scale; when a cell is 0
  every cell gets +0.5 first (the Haldane-Anscombe correction);
- test of independence: Pearson's chi-square (1 degree of freedom, no continuity correction)
  when every expected count is at least ``min_expected``, else Fisher's exact test (two-sided);
- multiple-testing corrections: Holm (step-down, family-wise error) or Benjamini-Hochberg (FDR),
  by the project's one :func:`concepts.tcav.adjust_pvalues` (re-exported here).
"""

from __future__ import annotations

import math
from typing import Literal

from scipy import stats

from concepts._errors import DataError
from concepts.tcav import CORRECTIONS

__all__ = [
    "Correction",
    "check_correction",
    "odds_ratio_ci",
    "two_by_two_test",
]

Correction = Literal["holm", "bh", "none"]

_Z95 = float(stats.norm.ppf(0.975))
def odds_ratio_ci(a: float, b: float, c: float, d: float) -> tuple[float, float, float, bool]:
    """Odds ratio ``a d / (b c)`` of a 2 x 2 table with its 95% Wald interval.

    Parameters
    ----------
    a, b, c, d
        Cell counts ``[[a, b], [c, d]]``.

    Returns
    -------
    tuple
        ``(odds_ratio, ci_low, ci_high, haldane)``; ``haldane`` is True when a cell was 0 and
        0.5 was added to every cell (Haldane-Anscombe correction).
    """
    haldane = min(a, b, c, d) == 0
    if haldane:
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
    log_or = math.log(a) + math.log(d) - math.log(b) - math.log(c)
    se = math.sqrt(1.0 / a + 1.0 / b + 1.0 / c + 1.0 / d)
    return math.exp(log_or), math.exp(log_or - _Z95 * se), math.exp(log_or + _Z95 * se), haldane


def two_by_two_test(a: int, b: int, c: int, d: int, min_expected: float = 5.0) -> tuple[str, float]:
    """Test of independence of a 2 x 2 table: chi-square, or Fisher's exact test when small.

    Parameters
    ----------
    a, b, c, d
        Cell counts ``[[a, b], [c, d]]`` (every margin positive).
    min_expected
        Fisher's exact test (two-sided) is used when an expected count is below this.

    Returns
    -------
    tuple
        ``("chi2" | "fisher", p_value)``.
    """
    n = a + b + c + d
    r1, r2, c1, c2 = a + b, c + d, a + c, b + d
    if min(r1, r2) * min(c1, c2) / n < min_expected:
        res = stats.fisher_exact([[a, b], [c, d]], alternative="two-sided")
        return "fisher", float(min(1.0, res.pvalue))
    chi2 = n * float(a * d - b * c) ** 2 / (float(r1) * r2 * c1 * c2)
    return "chi2", float(stats.chi2.sf(chi2, 1))


def check_correction(method: str) -> None:
    """Raise :class:`DataError` unless ``method`` is one of :data:`CORRECTIONS`."""
    if method not in CORRECTIONS:
        raise DataError(f"unknown correction {method!r}: use one of {list(CORRECTIONS)}")


