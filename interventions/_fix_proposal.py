"""The result of a test-time fix (:class:`FixProposal`) and the draw of its few labelled shots
(:func:`select_few_shot`); the search itself is :func:`interventions._fix.propose_fix`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interventions._spec import InterventionError, InterventionSpec
from store import to_jsonable

__all__ = ["FixProposal", "select_few_shot"]


@dataclass(frozen=True)
class FixProposal:
    """A proposed test-time fix, how sure it is, and its measured effect.

    Attributes
    ----------
    spec
        The proposed intervention (None when no edit survives the leave-one-out check).
    ranking
        One row per concept: ``concept``, ``concept_id``, ``expected`` (clinical graph),
        ``operation`` (the only one the graph allows), ``supports`` (the class it pushes
        towards), ``fire_rate_wrong_class`` and its source value, ``excess``, ``fires_on_errors``
        (share of the misclassified shots it fires on), ``gradient`` (derivative of the few-shot
        loss along its allowed edit at strength 0; negative helps), ``help``, ``deficit``,
        ``method`` (of the direction used), ``strength_all`` (jointly fitted magnitude on all
        shots), ``stability`` (share of the
        leave-one-out runs that chose it), ``role`` and ``proposed``; proposed first.
    edits
        One row per proposed edit: ``concept``, ``operation``, ``strength``, ``level`` (the
        component level a mask moves to; None for an amplification), ``method`` (of its
        direction), ``stability``,
        ``gain_points`` (expected change of the left-out shots' balanced accuracy when the edit
        is dropped from the fix, in points), ``gain_interval`` (90 % bootstrap interval),
        ``gain_nats`` and ``gain_nats_interval`` (the same for the log-likelihood).
    loo
        The whole fix under leave-one-out: ``gain_points``, ``gain_interval``, ``gain_nats``,
        ``gain_nats_interval``, ``n_folds``.
    few_shot, held_out, source
        ``{"before": M, "after": M}`` metrics (None where not given).
    source_drop
        Drop of the guarded source accuracy (clean accuracy when known), in [0, 1].
    notes
        What was skipped and why; why nothing is proposed; which direction method each mask uses.
    methods
        One row per mask candidate that had alternative directions: ``concept``, ``method``
        (the one chosen) and ``loo_nats`` (leave-one-out log-likelihood gain per shot, per
        method tried).
    """

    spec: InterventionSpec | None
    ranking: list[dict[str, Any]]
    few_shot: dict[str, Any]
    held_out: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    source_drop: float | None = None
    notes: list[str] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    loo: dict[str, Any] | None = None
    methods: list[dict[str, Any]] = field(default_factory=list)

    @property
    def proposed(self) -> list[str]:
        """Concepts edited by the proposal."""
        return [] if self.spec is None else list(self.spec.concepts)

    def to_json(self) -> dict[str, Any]:
        return to_jsonable({
            "spec": None if self.spec is None else self.spec.to_json(),
            "description": None if self.spec is None else self.spec.describe(),
            "proposed": self.proposed,
            "edits": self.edits,
            "loo": self.loo,
            "methods": self.methods,
            "ranking": self.ranking,
            "few_shot": self.few_shot,
            "held_out": self.held_out,
            "source": self.source,
            "source_drop": self.source_drop,
            "notes": self.notes,
        })


def select_few_shot(labels: np.ndarray, k: int = 4, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``k`` random rows per class (the few-shot set) and the remaining rows (held out).

    Raises
    ------
    InterventionError
        ``k < 1`` or a class with fewer than ``k`` images.
    """
    y = np.asarray(labels, dtype=np.int64)
    if k < 1:
        raise InterventionError(f"k must be at least 1, got {k}")
    rng = np.random.default_rng(seed)
    few = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        if len(rows) < k:
            raise InterventionError(f"class index {c} has {len(rows)} labelled images; k={k} needs {k}")
        few.append(np.sort(rng.choice(rows, k, replace=False)))
    chosen = np.sort(np.concatenate(few)) if few else np.zeros(0, np.int64)
    rest = np.setdiff1d(np.arange(len(y)), chosen)
    return chosen, rest
