"""Classification metrics on a data-set split, including group-robustness figures.

The groups come from the data set's own annotations: diagnosis x presence of each annotated
artifact column (``info.artifacts``, else the columns named like :data:`concepts.ARTIFACTS`; a
DermSynth data set with planted confounders uses those). Clean accuracy is the accuracy on the cases that carry none of
them. The positive class (sensitivity, specificity, AUC) is explicit: by default ``melanoma`` where
the data set has it, else the first class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from concepts._errors import DataError
from concepts.data import ARTIFACTS, Dataset
from store import finite_or_none

__all__ = [
    "ClassificationMetrics",
    "annotated_artifacts",
    "classification_metrics",
    "default_positive_class",
    "group_name",
    "resolve_positive_class",
]

#: Class names taken as "melanoma" when choosing the default positive class (case-insensitive).
_MELANOMA_NAMES = ("melanoma", "mel")


@dataclass(frozen=True)
class ClassificationMetrics:
    """Metrics of predictions on a set of cases (``None`` where undefined).

    ``group_accuracy`` / ``group_n`` map every group (``"<class> / with|without <artifact>"``,
    at least ``min_group_size`` cases) to its accuracy and size; ``worst_group`` names the
    lowest; ``clean_accuracy`` is the accuracy on cases with none of ``group_artifacts``.
    """

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
    group_accuracy: Mapping[str, float] = field(default_factory=dict)
    group_n: Mapping[str, int] = field(default_factory=dict)
    n_clean: int = 0
    n_pos: int = 0
    n_neg: int = 0
    worst_group_n: int | None = None
    class_recall: Mapping[str, tuple[float, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["group_accuracy"] = dict(self.group_accuracy)
        d["group_n"] = dict(self.group_n)
        d["class_recall"] = {c: [r, n] for c, (r, n) in self.class_recall.items()}
        return d



def default_positive_class(classes: Sequence[str]) -> str:
    """``melanoma`` (or ``MEL``, any case) when it is a class, else the first class."""
    if not classes:
        raise DataError("a data set without classes has no positive class")
    for c in classes:
        if str(c).strip().lower() in _MELANOMA_NAMES:
            return str(c)
    return str(classes[0])


def resolve_positive_class(classes: Sequence[str], positive_class: str | None) -> str:
    """The positive class: ``positive_class`` checked against ``classes``, else the default."""
    if positive_class is None:
        return default_positive_class(classes)
    if positive_class not in classes:
        raise DataError(
            f"positive class {positive_class!r} is not one of the classes {list(classes)} — "
            "pass one of them (--positive-class)"
        )
    return positive_class


def annotated_artifacts(dataset: Dataset) -> tuple[str, ...]:
    """Artifact columns of the data set that define groups.

    A DermSynth data set with planted confounders uses those (its generator's configuration,
    the groups its figures were always reported on); any other data set its declared artifact
    columns (``info.artifacts``), else the columns named like :data:`concepts.ARTIFACTS`.
    """
    cols = dataset.cases.columns
    planted = []
    for c in (dataset.info.extra or {}).get("planted_confounders", []) or []:
        art = c.get("artifact") if isinstance(c, Mapping) else None
        if isinstance(art, str) and art in cols and art not in planted:
            planted.append(art)
    if planted:
        return tuple(planted)
    declared = tuple(a for a in (dataset.info.artifacts or ()) if a in cols)
    return declared or tuple(a for a in ARTIFACTS if a in cols)


def group_name(cls: str, artifact: str, present: bool) -> str:
    """Display name of a diagnosis x artifact group."""
    return f"{cls} / {'with' if present else 'without'} {artifact}"


def classification_metrics(
    dataset: Dataset,
    idx: np.ndarray,
    proba: np.ndarray,
    *,
    positive_class: str | None = None,
    group_artifacts: Sequence[str] | None = None,
    min_group_size: int = 5,
) -> ClassificationMetrics:
    """Classification metrics of ``proba`` on rows ``idx`` of ``dataset``.

    Parameters
    ----------
    dataset, idx, proba
        The cases and their class probabilities ``(len(idx), K)``.
    positive_class
        Class of sensitivity/specificity/AUC (default :func:`default_positive_class`).
    group_artifacts
        Artifact columns defining the groups (default :func:`annotated_artifacts`): worst-group
        accuracy over diagnosis x presence of each (groups under ``min_group_size`` skipped),
        and clean accuracy on the cases that carry none of them.
    min_group_size
        Smallest group scored.

    Raises
    ------
    DataError
        Unknown positive class or artifact column.
    """
    pos = resolve_positive_class(dataset.classes, positive_class)
    arts = annotated_artifacts(dataset) if group_artifacts is None else tuple(group_artifacts)
    missing = [a for a in arts if a not in dataset.cases.columns]
    if missing:
        raise DataError(f"artifact column {missing[0]!r} is not in the data set {dataset.info.name!r}")
    return _metrics(dataset, np.asarray(idx, dtype=np.int64), np.asarray(proba), pos, arts, min_group_size)


def _metrics(
    dataset: Dataset, idx: np.ndarray, proba: np.ndarray, pos: str, arts: tuple[str, ...], min_size: int
) -> ClassificationMetrics:
    # imported here: `import graph` (workbench info) needs finite_or_none, not sklearn
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    y = dataset.labels(idx)
    pred = proba.argmax(axis=1)
    k = dataset.classes.index(pos)
    correct = pred == y
    acc = float(correct.mean()) if len(y) else float("nan")
    bacc = float(balanced_accuracy_score(y, pred)) if len(np.unique(y)) > 1 else acc
    is_pos, said_pos = y == k, pred == k
    sens = float(said_pos[is_pos].mean()) if is_pos.any() else float("nan")
    spec = float((~said_pos)[~is_pos].mean()) if (~is_pos).any() else float("nan")
    auc = float(roc_auc_score(is_pos, proba[:, k])) if 0 < is_pos.sum() < len(y) else float("nan")
    worst, worst_name = float("nan"), None
    g_acc: dict[str, float] = {}
    g_n: dict[str, int] = {}
    clean_mask = np.ones(len(idx), dtype=bool)
    labels = dataset.cases["label"].to_numpy()[idx]
    for art in arts:
        flag = dataset.cases[art].to_numpy()[idx].astype(bool)
        clean_mask &= ~flag
        for cls in dataset.classes:
            for val in (False, True):
                g = (labels == cls) & (flag == val)
                if g.sum() >= min_size:
                    a = float(correct[g].mean())
                    name = group_name(cls, art, val)
                    g_acc[name], g_n[name] = a, int(g.sum())
                    if not np.isfinite(worst) or a < worst:
                        worst, worst_name = a, name
    clean = float(correct[clean_mask].mean()) if arts and clean_mask.any() else float("nan")
    return ClassificationMetrics(
        n=len(idx),
        accuracy=acc,
        balanced_accuracy=bacc,
        sensitivity=finite_or_none(sens),
        specificity=finite_or_none(spec),
        auc=finite_or_none(auc),
        worst_group_accuracy=finite_or_none(worst),
        worst_group=worst_name,
        clean_accuracy=finite_or_none(clean),
        positive_class=pos,
        group_accuracy=g_acc,
        group_n=g_n,
        n_clean=int(clean_mask.sum()) if arts else 0,
        n_pos=int(is_pos.sum()),
        n_neg=int((~is_pos).sum()),
        worst_group_n=g_n.get(worst_name) if worst_name else None,
        class_recall={
            cls: (float(correct[y == c].mean()), int((y == c).sum()))
            for c, cls in enumerate(dataset.classes) if (y == c).any()
        },
    )
