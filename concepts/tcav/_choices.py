"""The option values of TCAV (probes, significance tests, corrections, statistics), in a module
that imports nothing, so that the CLI builds its help without loading numpy or the bank."""

from __future__ import annotations

from typing import Literal

__all__ = ["CORRECTIONS", "PROBES", "STATISTICS", "TESTS", "Probe"]

#: CAV probes: the pattern (difference of class means, whitened), ridge, logistic regression, SGD.
Probe = Literal["pattern", "ridge", "logistic", "sgd"]
PROBES: tuple[str, ...] = ("pattern", "ridge", "logistic", "sgd")
#: Significance tests: the concept's prediction test, Welch's t, Mann-Whitney U.
TESTS: tuple[str, ...] = ("prediction", "welch", "mannwhitney")
#: Multiple-testing corrections: Holm (family-wise error), Benjamini-Hochberg (FDR), none.
CORRECTIONS: tuple[str, ...] = ("holm", "bh", "none")
#: Per-run statistics the test compares: the mean directional derivative of the unit CAV, or the
#: TCAV score (sign count).
STATISTICS: tuple[str, ...] = ("derivative", "sign_count")
