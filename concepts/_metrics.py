"""Classification metrics on a data-set split, including group-robustness figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from concepts._dataset import Dataset

__all__ = ["ClassificationMetrics", "classification_metrics", "finite_or_none"]


@dataclass(frozen=True)
class ClassificationMetrics:
    """Metrics of predictions on a set of cases (``None`` where undefined)."""

    n: int
    accuracy: float
    balanced_accuracy: float
    sensitivity: float | None
    specificity: float | None
    auc: float | None
    worst_group_accuracy: float | None
    worst_group: str | None
    clean_accuracy: float | None
    positive_class: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def finite_or_none(v: Any) -> float | None:
    """``float(v)`` when it is a finite number, else ``None`` (JSON-safe evidence values)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


_nan_to_none = finite_or_none


def classification_metrics(
    dataset: Dataset,
    idx: np.ndarray,
    proba: np.ndarray,
    *,
    positive_class: str | None = None,
    group_artifacts: Sequence[str] = (),
    min_group_size: int = 5,
) -> ClassificationMetrics:
    """Accuracy, balanced accuracy, sensitivity/specificity/AUC of ``positive_class``
    (default: the first class, e.g. melanoma), worst-group accuracy over diagnosis x presence of
    each of ``group_artifacts`` (groups smaller than ``min_group_size`` are skipped), and
    accuracy on the cases that carry none of ``group_artifacts``.
    """
    idx = np.asarray(idx, dtype=np.int64)
    y = dataset.labels(idx)
    pred = proba.argmax(axis=1)
    pos = positive_class or dataset.classes[0]
    k = dataset.classes.index(pos)
    correct = pred == y
    acc = float(correct.mean()) if len(y) else float("nan")
    bacc = float(balanced_accuracy_score(y, pred)) if len(np.unique(y)) > 1 else acc
    is_pos, said_pos = y == k, pred == k
    sens = float(said_pos[is_pos].mean()) if is_pos.any() else float("nan")
    spec = float((~said_pos)[~is_pos].mean()) if (~is_pos).any() else float("nan")
    auc = float(roc_auc_score(is_pos, proba[:, k])) if 0 < is_pos.sum() < len(y) else float("nan")
    worst, worst_name = float("nan"), None
    clean_mask = np.ones(len(idx), dtype=bool)
    labels = dataset.cases["label"].to_numpy()[idx]
    for art in group_artifacts:
        flag = dataset.cases[art].to_numpy()[idx].astype(bool)
        clean_mask &= ~flag
        for cls in dataset.classes:
            for val in (False, True):
                g = (labels == cls) & (flag == val)
                if g.sum() >= min_group_size:
                    a = float(correct[g].mean())
                    if not np.isfinite(worst) or a < worst:
                        worst, worst_name = a, f"{cls} / {'with' if val else 'without'} {art}"
    clean = float(correct[clean_mask].mean()) if group_artifacts and clean_mask.any() else float("nan")
    return ClassificationMetrics(
        n=len(idx),
        accuracy=acc,
        balanced_accuracy=bacc,
        sensitivity=_nan_to_none(sens),
        specificity=_nan_to_none(spec),
        auc=_nan_to_none(auc),
        worst_group_accuracy=_nan_to_none(worst),
        worst_group=worst_name,
        clean_accuracy=_nan_to_none(clean),
        positive_class=pos,
    )
