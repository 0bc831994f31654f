"""The option values of TCAV (probes, significance tests, corrections, statistics), in a module
that imports nothing, so that the CLI builds its help without loading numpy or the bank."""

from __future__ import annotations

from typing import Literal

__all__ = ["CORRECTIONS", "MAX_INPUTS_PER_CLASS", "PROBES", "STATISTICS", "TESTS", "Probe"]

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

#: Class inputs kept per class by default (a seeded sample): the class gradients of every input
#: are held in memory, so an uncapped 100,000-case data set's 20,000 validation cases took 3.5 GB;
#: a TCAV score over 1,000 inputs has a standard error of at most 1.6 points.
MAX_INPUTS_PER_CLASS = 1000
