"""Vectorised classification metrics of a what-if (fixed labels and groups, one call per
slider move)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from concepts.models import group_name, resolve_positive_class

__all__ = ["FastMetrics"]


class FastMetrics:
    """:func:`concepts.models._metrics.classification_metrics` for fixed labels and groups, vectorised.

    The what-if calls it on every slider move: labels, group masks and class masks are
    precomputed once, and AUC is the Mann-Whitney statistic (average ranks for ties), so a
    call is a few numpy operations instead of scikit-learn's input validation. The tests check
    that it agrees with ``classification_metrics``.
    """

    def __init__(self, labels: np.ndarray, classes: Sequence[str], groups: Mapping[str, np.ndarray],
                 min_group_size: int = 5, positive_class: str | None = None):
        self.y = np.asarray(labels, dtype=np.int64)
        self.classes = tuple(classes)
        self.k = self.classes.index(resolve_positive_class(self.classes, positive_class))
        self.is_pos = self.y == self.k
        self.n_pos = int(self.is_pos.sum())
        self.present = [c for c in range(len(self.classes)) if (self.y == c).any()]
        self.class_masks = [self.y == c for c in self.present]
        self.groups: list[tuple[str, np.ndarray]] = []
        clean = np.ones(len(self.y), dtype=bool)
        for art, flag in groups.items():
            f = np.asarray(flag).astype(bool)
            clean &= ~f
            for ci, cls_ in enumerate(self.classes):
                for val in (False, True):
                    g = (self.y == ci) & (f == val)
                    if g.sum() >= min_group_size:
                        self.groups.append((group_name(cls_, art, val), g))
        self.clean = clean if groups and clean.any() else None
        self.n_clean = int(clean.sum()) if groups else 0

    def __call__(self, proba: np.ndarray) -> dict[str, Any]:
        y, n = self.y, len(self.y)
        pred = proba.argmax(axis=1)
        correct = pred == y
        acc = float(correct.mean()) if n else None
        if len(self.present) > 1:
            bacc: float | None = float(np.mean([correct[m].mean() for m in self.class_masks]))
        else:
            bacc = acc
        said = pred == self.k
        sens = float(said[self.is_pos].mean()) if self.n_pos else None
        spec = float((~said)[~self.is_pos].mean()) if self.n_pos < n else None
        auc = None
        if 0 < self.n_pos < n:
            ranks = rankdata(proba[:, self.k])
            n_neg = n - self.n_pos
            auc = float((ranks[self.is_pos].sum() - self.n_pos * (self.n_pos + 1) / 2) / (self.n_pos * n_neg))
        worst, worst_name, worst_n = None, None, None
        g_acc: dict[str, float] = {}
        for name, g in self.groups:
            a = float(correct[g].mean())
            g_acc[name] = a
            if worst is None or a < worst:
                worst, worst_name, worst_n = a, name, int(g.sum())
        clean = float(correct[self.clean].mean()) if self.clean is not None else None
        return {
            "n": n, "accuracy": acc, "balanced_accuracy": bacc, "sensitivity": sens,
            "specificity": spec, "auc": auc, "worst_group_accuracy": worst, "worst_group": worst_name,
            "clean_accuracy": clean, "positive_class": self.classes[self.k],
            # group sizes, so that reports can give confidence intervals
            "n_pos": self.n_pos, "n_neg": n - self.n_pos, "worst_group_n": worst_n,
            "n_clean": self.n_clean,
            "class_recall": {self.classes[c]: [float(correct[m].mean()), int(m.sum())]
                             for c, m in zip(self.present, self.class_masks, strict=True)},
            "group_accuracy": g_acc, "group_n": {name: int(g.sum()) for name, g in self.groups},
        }
