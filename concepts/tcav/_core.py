"""TCAV's core: class-logit gradients at a layer, the constant-gradient check, and scoring.

For a layer ``l``, class ``k`` and CAV ``v``, the directional derivative of an input ``x`` is
``S_k(x) = ∇_h z_k(h(x)) · v``. Per (CAV, class, layer):

* ``sign_count`` — the share of class-``k`` inputs with ``S > 0`` (the TCAV score),
* ``magnitude`` — ``Σ S·[S>0] / Σ |S|`` (positive share of the derivative mass),
* ``mean_derivative`` — ``mean(S)``, which is what ``captum.concept.TCAV`` (0.9) returns under
  the key ``"magnitude"``.

Gradients come from cached activations (``model.forward_from(layer, h)``, one backward on the
summed class logit per batch); all CAVs are scored with one matrix product.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from concepts._errors import ConceptError, ModelError
from concepts.data import RowView
from concepts.models import ClassifierModel, StagedNet, on_device
from concepts.tcav._cav import CAV, CAVSet

__all__ = [
    "TABLE_COLUMNS",
    "TARGETS",
    "TCAVReport",
    "TCAVScores",
    "check_gradients_vary",
    "class_gradients",
    "shared_logit_share",
    "tcav_scores",
]

#: What is differentiated: the raw class logit z_k, or z_k - mean_j z_j (invariant to a shift
#: shared by all logits, which softmax ignores).
TARGETS: tuple[str, ...] = ("logit", "centered_logit")

#: Relative spread below which a layer's gradients count as constant across inputs.
CONSTANT_GRADIENT_RTOL = 1e-5


@dataclass(frozen=True)
class TCAVScores:
    """TCAV scores of T CAVs for one (layer, class) over N inputs.

    Attributes
    ----------
    sign_count
        ``(T,)`` share of inputs with a positive directional derivative.
    magnitude
        ``(T,)`` ``Σ S·[S>0] / Σ |S|`` (0.5 when all derivatives are 0).
    mean_derivative
        ``(T,)`` mean directional derivative (captum 0.9's ``"magnitude"``).
    n_inputs
        N.
    """

    sign_count: np.ndarray
    magnitude: np.ndarray
    mean_derivative: np.ndarray
    n_inputs: int


def class_gradients(
    model: ClassifierModel,
    layer: str,
    acts: np.ndarray,
    class_index: int,
    *,
    images: np.ndarray | RowView | None = None,
    target: str = "logit",
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """``∇_h z_k`` at ``layer`` for every row of the cached activations ``acts``.

    Parameters
    ----------
    model
        The classifier. Staged nets run only the stages above ``layer``; other modules need the
        uint8 ``images`` the activations came from (a full forward with ``layer``'s output
        replaced).
    layer
        Layer name.
    acts
        ``(N, ...)`` activations of ``layer`` (e.g. from the activation cache).
    class_index
        Index of the class logit ``z_k``.
    target
        ``logit`` (``z_k``, as TCAV and captum) or ``centered_logit`` (``z_k - mean_j z_j``).
    batch_size
        Rows per backward pass.
    device
        Where the backward passes run (fp32 always); ``None``: where the model is.

    Returns
    -------
    ndarray
        ``(N, D)`` float32 gradients (flattened).
    """
    model.check_layer(layer)
    if target not in TARGETS:
        raise ModelError(f"unknown target {target!r}; choose one of {list(TARGETS)}")
    staged = isinstance(model.module, StagedNet)
    if not staged and images is None:
        raise ModelError(
            f"{model.architecture} is not a staged network: gradients at {layer!r} need the input images"
        )
    n = len(acts)
    d = int(np.prod(acts.shape[1:])) if n else 0
    out = np.empty((n, d), dtype=np.float32)
    with on_device(model, device) as dev:
        for i in range(0, n, batch_size):
            out[i : i + batch_size] = _gradient_batch(model, layer, acts[i : i + batch_size], class_index,
                                                      None if staged else _image_rows(images, i, batch_size),
                                                      target, dev)
    return out


def _image_rows(images: np.ndarray | RowView | None, start: int, size: int) -> np.ndarray:
    """Rows ``start .. start + size`` of the input images (a ``RowView`` reads only those)."""
    if isinstance(images, RowView):
        return images[start : start + size]
    return np.asarray(images)[start : start + size]


def _gradient_batch(
    model: ClassifierModel, layer: str, acts: np.ndarray, class_index: int, images: np.ndarray | None,
    target: str, dev: torch.device,
) -> np.ndarray:
    """``∇_h z_k`` for one batch of activations (fp32 on ``dev``), flattened, on the CPU."""
    h = torch.as_tensor(np.array(acts, dtype=np.float32)).to(dev).requires_grad_(True)
    x = None if images is None else model.preprocess(images).to(dev)
    with torch.enable_grad():
        logits = model.forward_from(layer, h, x)
        if logits.ndim != 2 or not 0 <= class_index < logits.shape[1]:
            raise ModelError(f"class index {class_index} is out of range for logits {tuple(logits.shape)}")
        z = logits[:, class_index]
        if target == "centered_logit":
            z = z - logits.mean(dim=1)
        (g,) = torch.autograd.grad(z.sum(), h)
    return g.reshape(len(h), -1).cpu().numpy()  # type: ignore[no-any-return]


def shared_logit_share(
    model: ClassifierModel, layer: str, acts: np.ndarray, *, images: np.ndarray | None = None
) -> float:
    """How much of the class-logit gradients is shared by all classes.

    Returns ``||∇ mean_j z_j|| / mean_k ||∇ z_k||`` over the rows of ``acts``. Softmax ignores a
    shift shared by all logits, so a large shared part (a head trained without weight decay)
    makes raw-logit TCAV scores of different classes move together; use
    ``target="centered_logit"`` then.
    """
    n_classes = len(model.classes)
    if len(acts) == 0 or n_classes < 2:
        return 0.0
    per = [class_gradients(model, layer, acts, k, images=images) for k in range(n_classes)]
    mean = np.mean(per, axis=0)
    den = float(np.mean([np.linalg.norm(g) for g in per]))
    return float(np.linalg.norm(mean)) / den if den > 0 else 0.0


def check_gradients_vary(grads: np.ndarray, layer: str, *, rtol: float = CONSTANT_GRADIENT_RTOL) -> float:
    """Refuse a layer whose class-logit gradient is (numerically) the same for every input.

    Returns the relative spread ``||G - mean(G)|| / ||G||``.

    Raises
    ------
    ModelError
        The spread is below ``rtol``: the layer feeds only a linear head, so every input gets the
        same directional derivative and TCAV scores are 0 or 1 for any concept.
    """
    G = np.asarray(grads, dtype=np.float64)
    if len(G) < 2:
        return float("nan")
    total = float(np.linalg.norm(G))
    spread = float(np.linalg.norm(G - G.mean(0))) / total if total > 0 else 0.0
    if spread < rtol:
        raise ModelError(
            f"layer {layer!r}: the class-logit gradient is the same for every input (relative spread "
            f"{spread:.1e}) — the layer feeds only a linear head, so every TCAV score would be 0 or 1. "
            "Choose a layer below the last non-linearity (e.g. an intermediate block)"
        )
    return spread


def tcav_scores(grads: np.ndarray, vectors: np.ndarray) -> TCAVScores:
    """Score all CAVs ``vectors`` ``(T, D)`` with one product against ``grads`` ``(N, D)``."""
    G = np.asarray(grads, dtype=np.float32)
    V = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    if G.shape[1] != V.shape[1]:
        raise ModelError(f"gradients have {G.shape[1]} features but the CAVs {V.shape[1]}")
    S = (G @ V.T).astype(np.float64)  # (N, T) directional derivatives
    n = S.shape[0]
    if n == 0:
        nan = np.full(V.shape[0], np.nan)
        return TCAVScores(nan, nan.copy(), nan.copy(), 0)
    sign = (S > 0).mean(axis=0)
    pos = np.where(S > 0, S, 0.0).sum(axis=0)
    tot = np.abs(S).sum(axis=0)
    mag = np.divide(pos, tot, out=np.full_like(pos, 0.5), where=tot > 0)
    return TCAVScores(sign, mag, S.mean(axis=0), n)


# --------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class TCAVReport:
    """Result of :func:`run_tcav`.

    Attributes
    ----------
    table
        One row per (concept, class, layer); see :data:`TABLE_COLUMNS`.
    scores
        Long form: one row per (concept, class, layer, probe, run) with ``sign_count``,
        ``magnitude`` and ``mean_derivative`` (random baselines under concept ``random``).
    cavs
        ``(concept, layer)`` -> the primary probe's :class:`CAVSet` (R runs).
    random_cavs
        ``layer`` -> the random-vs-random baseline CAVs.
    stability_cavs
        ``(concept, layer)`` -> the stability probe's CAVs (empty without one).
    layers, classes
        What was analysed.
    model_id
        The model's id.
    settings
        The analysis settings (JSON-able).
    warnings
        Skipped layers, confounded concept sets, small input sets.
    timings
        Seconds per stage.
    """

    table: pd.DataFrame
    scores: pd.DataFrame
    cavs: Mapping[tuple[str, str], CAVSet]
    random_cavs: Mapping[str, CAVSet]
    stability_cavs: Mapping[tuple[str, str], CAVSet]
    layers: tuple[str, ...]
    classes: tuple[str, ...]
    model_id: str
    settings: Mapping[str, Any]
    warnings: tuple[str, ...]
    timings: Mapping[str, float]

    def cav(self, concept: str, layer: str | None = None) -> CAV:
        """The mean CAV of a concept (at ``layer``, default the deepest analysed layer)."""
        lay = layer or self.layers[-1]
        if (concept, lay) not in self.cavs:
            raise ConceptError(f"no CAV for {concept!r} at {lay!r} in this report")
        return self.cavs[(concept, lay)].mean_cav()

    def findings(self) -> pd.DataFrame:
        """The significant rows only."""
        return self.table[self.table["significant"]].reset_index(drop=True)


TABLE_COLUMNS: tuple[str, ...] = (
    "concept", "concept_id", "group", "class", "layer", "probe", "runs", "score_mean", "score_std",
    "random_mean", "random_std", "effect", "magnitude_mean", "derivative_mean", "random_derivative_mean",
    "statistic", "test_z", "p_value", "p_adjusted",
    "cav_accuracy", "random_accuracy", "stability", "stability_probe", "probe_cosine",
    "stability_p_adjusted", "stability_effect", "confounded", "significant", "unstable", "verdict",
)
