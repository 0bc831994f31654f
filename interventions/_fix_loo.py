"""Leave-one-out over the few shots of the test-time fix: refits without each shot and the
expected gain of the left-out shots (balanced accuracy points and nats, with a bootstrap
interval)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from interventions._fix_search import Problem, cross_entropy, fit_strengths, logits_at

__all__ = ["LeaveOneOut", "leave_one_out", "loo_gain", "loo_nats"]


def _folds(y: np.ndarray) -> list[np.ndarray]:
    """Leave-one-out training rows (row ``j`` of the result leaves shot ``j`` out)."""
    return [np.delete(np.arange(len(y)), j) for j in range(len(y))] if len(y) > 1 else []


@dataclass(frozen=True)
class LeaveOneOut:
    """Leave-one-out fits of one problem: per fold the magnitudes and the left-out shot."""

    held: np.ndarray  # (F,) left-out shot per fold
    a: np.ndarray  # (F, m)


def leave_one_out(p: Problem, penalty: Callable[[np.ndarray], np.ndarray]) -> LeaveOneOut:
    """Refit without each shot (the penalties recomputed on the remaining shots)."""
    folds = _folds(p.y_few)
    held = np.array([np.setdiff1d(np.arange(len(p.y_few)), r)[0] for r in folds], dtype=np.int64)
    a = np.array([fit_strengths(replace(p.subset(r), penalty=penalty(r))) for r in folds])
    a = a.reshape(len(folds), len(p.signs))
    return LeaveOneOut(held, a)


def _shot_scores(p: Problem, loo: LeaveOneOut, drop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per fold: log-likelihood gain and correctness change of the left-out shot under its
    fold's fix (edit ``drop`` removed from the baseline instead of the unpatched model)."""
    nats, correct = np.zeros(len(loo.held)), np.zeros(len(loo.held))
    for f, j in enumerate(loo.held):
        t = p.signs * loo.a[f]
        t0 = np.zeros_like(t)
        if drop is not None:
            t0 = t.copy()
            t0[drop] = 0.0
        z1 = logits_at(p.z_few[j : j + 1], p.d_few[j : j + 1], t)
        z0 = logits_at(p.z_few[j : j + 1], p.d_few[j : j + 1], t0)
        yj = p.y_few[j : j + 1]
        nats[f] = cross_entropy(z0, yj) - cross_entropy(z1, yj)
        correct[f] = float(z1.argmax(1)[0] == yj[0]) - float(z0.argmax(1)[0] == yj[0])
    return nats, correct


def _balanced_mean(values: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([values[y == c].mean() for c in np.unique(y)])) if len(y) else 0.0


def loo_gain(p: Problem, loo: LeaveOneOut, drop: int | None = None, n_boot: int = 1000) -> dict[str, Any]:
    """Expected gain (balanced accuracy points, nats) of the left-out shots with a 90 %
    class-stratified bootstrap interval."""
    nats, correct = _shot_scores(p, loo, drop)
    y = p.y_few[loo.held]
    rng = np.random.default_rng(0)
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    boot_pts, boot_nats = np.zeros(n_boot), np.zeros(n_boot)
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(r, len(r)) for r in by_class])
        boot_pts[b] = 100 * _balanced_mean(correct[idx], y[idx])
        boot_nats[b] = _balanced_mean(nats[idx], y[idx])
    return {
        "gain_points": 100 * _balanced_mean(correct, y),
        "gain_interval": [float(np.quantile(boot_pts, 0.05)), float(np.quantile(boot_pts, 0.95))],
        "gain_nats": _balanced_mean(nats, y),
        "gain_nats_interval": [float(np.quantile(boot_nats, 0.05)), float(np.quantile(boot_nats, 0.95))],
        "n_folds": len(loo.held),
    }


def loo_nats(p: Problem, loo: LeaveOneOut) -> float:
    """Class-balanced mean log-likelihood gain of the left-out shots under their folds' fits."""
    nats, _ = _shot_scores(p, loo)
    return _balanced_mean(nats, p.y_few[loo.held])
