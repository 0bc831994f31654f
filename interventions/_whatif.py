"""Fast what-if: re-score a whole evaluation split after a strength change.

A :class:`WhatIf` holds the split's activations at the intervention layer (from the activation
cache), the labels, the group flags and, optionally, the activations of counterfactual twins
for flip rates. :meth:`WhatIf.evaluate` edits the cached activations and runs only the stages
above the layer (``model.forward_from(layer, h')``): on pooled features that is the linear head
alone, a few milliseconds for a whole split — fast enough for a UI slider.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from concepts import (
    ActivationCache,
    ClassifierModel,
    DataError,
    Dataset,
    DatasetInfo,
    ProgressFn,
    extract_activations,
)
from concepts.data import RowView, take_rows
from concepts.discovery import planted_confounders
from concepts.models import (
    StagedNet,
    annotated_artifacts,
    classification_metrics,
    resolve_device,
    resolve_positive_class,
)
from interventions._ops import CompiledSpec
from interventions._spec import InterventionError, InterventionSpec
from interventions._twins import TwinActivations, make_twins
from interventions._whatif_metrics import FastMetrics

__all__ = ["WhatIf", "WhatIfResult"]

StrengthsOrSpec = InterventionSpec | Mapping[str, float] | None


@dataclass(frozen=True)
class WhatIfResult:
    """Metrics of one what-if evaluation.

    Attributes
    ----------
    metrics
        ``accuracy``, ``balanced_accuracy``, ``sensitivity``, ``specificity``, ``auc``,
        ``worst_group_accuracy``, ``worst_group``, ``clean_accuracy``, ``n``, ``flip_rates``
        (artifact -> share of twin predictions that change).
    proba
        Class probabilities ``(N, K)``.
    flipped
        Positions whose predicted class differs from the unpatched model's.
    elapsed_ms
        Wall time of the evaluation.
    """

    metrics: dict[str, Any]
    proba: np.ndarray = field(repr=False)
    flipped: np.ndarray = field(repr=False)
    elapsed_ms: float = 0.0

    @property
    def n_flipped(self) -> int:
        return len(self.flipped)


class WhatIf:
    """Re-scores cached activations of an evaluation split under intervention specs.

    Parameters
    ----------
    model
        The model (staged networks run only the stages above the layer; other models need
        ``images`` and run a full forward pass with the layer's output replaced).
    layer
        The intervention layer.
    activations
        The split's activations at ``layer``, ``(N, ...)``.
    labels
        True class indices ``(N,)``.
    case_ids
        Case ids (default ``0..N-1`` as strings).
    groups
        Artifact -> 0/1 flags ``(N,)`` (worst-group accuracy over diagnosis x each flag; clean
        accuracy on rows with no flag).
    twins
        Counterfactual twins for flip rates.
    spec
        A base spec: :meth:`evaluate` then also accepts ``{concept: strength}``.
    images
        The split's uint8 images (only for non-staged models).
    batch_size
        Rows per forward pass above the layer.
    num_threads
        Torch threads while evaluating: ``"auto"`` uses one for feature-vector layers (the
        head alone: a few small matrix products, which extra threads only slow down on a busy
        machine) and torch's setting otherwise; None keeps torch's setting.
    positive_class
        Class of sensitivity/specificity/AUC (default: melanoma where present, else the first).
    """

    def __init__(
        self,
        model: ClassifierModel,
        layer: str,
        activations: np.ndarray,
        labels: np.ndarray,
        *,
        case_ids: Sequence[str] | None = None,
        groups: Mapping[str, np.ndarray] | None = None,
        twins: Sequence[TwinActivations] = (),
        spec: InterventionSpec | None = None,
        images: np.ndarray | None = None,
        batch_size: int = 2048,
        num_threads: int | str | None = "auto",
        positive_class: str | None = None,
        device: str | torch.device | None = None,
    ):
        model.check_layer(layer)
        try:
            self.positive_class = resolve_positive_class(model.classes, positive_class)
        except DataError as exc:
            raise InterventionError(str(exc)) from exc
        self.model = model
        self.layer = layer
        self.batch_size = batch_size
        self._staged = model.module if isinstance(model.module, StagedNet) else None
        if self._staged is None and images is None:
            raise InterventionError(
                f"{model.architecture} is not a staged network: a what-if on it needs the split's images"
            )
        self.images = images
        self.h = torch.from_numpy(np.ascontiguousarray(activations, dtype=np.float32))
        self._place(device, num_threads)
        n = len(self.h)
        self.labels, self.case_ids, self.groups = _checked_rows(n, labels, case_ids, groups)
        self.twins = list(twins)
        self.spec = spec
        self._dataset = self._memory_dataset()
        self._fast = FastMetrics(self.labels, model.classes, self.groups, positive_class=self.positive_class)
        self.dim = int(self.h[0].numel()) if n else 0
        if spec is not None:
            spec.check_model(model.model_id, model.layers, self.dim or None)
            if spec.layer != layer:
                raise InterventionError(f"the spec edits {spec.layer!r}, this what-if holds {layer!r}")
        self._precompute()

    def _place(self, device: str | torch.device | None, num_threads: int | str | None) -> None:
        """Where the stages above the layer run, and with how many torch threads."""
        self.device = resolve_device(device)
        # spatial layers of a staged net: the stages above the layer run on the device (a copy
        # moved once; the model itself stays where it is). Feature vectors: the affine head.
        self._staged_dev: StagedNet | None = None
        if self._staged is not None and self.device.type != "cpu" and self.h.ndim > 2:
            self._staged_dev = copy.deepcopy(self._staged).to(self.device).eval()
        if num_threads == "auto":  # feature vectors: tiny matmuls, where extra threads only wait
            num_threads = 1 if self.h.ndim == 2 else None
        self.num_threads = None if num_threads is None else int(num_threads)

    def _precompute(self) -> None:
        """The unpatched logits and probabilities of the rows and of the twins."""
        self._twin_h = [torch.from_numpy(np.ascontiguousarray(t.acts, dtype=np.float32)) for t in self.twins]
        self._affine = _affine_above(self._staged, self.layer) if self.h.ndim == 2 else None
        self._base_logits = self._logits(self.h, None, None)
        self._twin_logits = [self._logits(th, None, None, twin=i) for i, th in enumerate(self._twin_h)]
        self.base_proba = _softmax(self._base_logits)
        self.base_pred = self.base_proba.argmax(axis=1)
        self._twin_base = [_softmax(t) for t in self._twin_logits]

    # ------------------------------------------------------------ construction from a data set
    @classmethod
    def from_dataset(
        cls,
        model: ClassifierModel,
        dataset: Dataset,
        split: str,
        layer: str,
        *,
        cache: ActivationCache | None = None,
        spec: InterventionSpec | None = None,
        group_artifacts: Sequence[str] | None = None,
        twin_artifacts: Sequence[tuple[str, str | None]] | None = None,
        twin_seed: int = 0,
        progress: ProgressFn | None = None,
        twins: Sequence[TwinActivations] = (),
        positive_class: str | None = None,
        device: str | torch.device | None = None,
    ) -> WhatIf:
        """A what-if on one split of a data set.

        Parameters
        ----------
        group_artifacts
            Artifacts for the group metrics (default: the data set's annotated artifact columns
            and planted confounders, :func:`concepts.models.annotated_artifacts`).
        twin_artifacts
            ``(artifact, class)`` pairs for flip rates (default: the planted confounders).
            Twins are re-rendered for DermSynth data and drawn with ``draw_artifact`` otherwise.
        twins
            Further twins made elsewhere (e.g. real twins, :func:`twin_activations`).
        positive_class
            Class of sensitivity/specificity/AUC.
        device
            Where the stages above a spatial layer run (default: the cache's ``compute.device``,
            else the CPU).
        """
        if device is None and cache is not None:
            device = cache.compute.device
        idx = dataset.indices(split)
        if len(idx) == 0:
            raise InterventionError(f"split {split!r} of {dataset.info.name!r} is empty")
        acts = _split_activations(model, dataset, idx, split, layer, cache, progress)
        planted = planted_confounders(dataset)
        arts = list(group_artifacts) if group_artifacts is not None else list(annotated_artifacts(dataset))
        groups = {a: dataset.cases[a].to_numpy()[idx] for a in arts if a in dataset.cases.columns}
        pairs = list(twin_artifacts) if twin_artifacts is not None else list(planted)
        staged = isinstance(model.module, StagedNet)
        made = [
            make_twins(model, dataset, idx, art, cls_, layer, cache=cache, seed=twin_seed,
                       keep_images=not staged, progress=progress)
            for art, cls_ in pairs
        ]
        return cls(
            model, layer, acts, dataset.labels(idx),
            case_ids=dataset.cases["case_id"].to_numpy()[idx].tolist(),
            groups=groups, twins=[t for t in [*made, *twins] if len(t.rows)], spec=spec,
            images=None if staged else take_rows(dataset.images, idx),
            positive_class=positive_class, device=device,
        )

    # ------------------------------------------------------------ core
    def _memory_dataset(self) -> Dataset:
        classes = self.model.classes
        cases = pd.DataFrame({
            "case_id": self.case_ids,
            "label": np.asarray(classes, dtype=object)[self.labels],
            "split": "eval",
            **{k: v.astype(np.int64) for k, v in self.groups.items()},
        })
        info = DatasetInfo(name="whatif", kind="memory", classes=classes, image_size=0,
                           artifacts=tuple(self.groups))
        return Dataset(Path("."), info, cases, np.zeros((len(cases), 0, 0, 3), np.uint8))

    def _rows(self, spec: InterventionSpec, base_pred: np.ndarray, case_ids: Sequence[str] | None) -> torch.Tensor | None:
        kind = spec.scope.kind
        if kind == "all":
            return None
        if kind == "predicted_class":
            if spec.scope.class_name not in self.model.classes:
                raise InterventionError(f"scope class {spec.scope.class_name!r} is not one of {list(self.model.classes)}")
            k = self.model.classes.index(str(spec.scope.class_name))
            return torch.from_numpy(base_pred == k)
        return torch.from_numpy(spec.scope.rows(case_ids))

    @torch.inference_mode()
    def _logits(
        self, h: torch.Tensor, op: CompiledSpec | None, rows: torch.Tensor | None, twin: int | None = None
    ) -> torch.Tensor:
        """Logits of activations ``h`` (the split's, or twin set ``twin``'s) under ``op``."""
        if op is not None and self._affine is not None:  # affine head: add the edit's effect
            W, _ = self._affine
            base = self._base_logits if twin is None else self._twin_logits[twin]
            return base + op.steps(h, rows) @ (op.projector @ W.T)
        out = []
        for i in range(0, len(h), self.batch_size):
            hb = h[i : i + self.batch_size]
            if op is not None:
                hb = op.apply(hb, None if rows is None else rows[i : i + self.batch_size])
            if self._staged_dev is not None:
                out.append(self._staged_dev.forward_from(self.layer, hb.to(self.device)).float().cpu())
            elif self._staged is not None:
                out.append(self._staged.forward_from(self.layer, hb))
            else:
                imgs = self.images if twin is None else self.twins[twin].images
                assert imgs is not None  # checked in __init__ / make_twins
                x = self.model.preprocess(np.asarray(imgs[i : i + self.batch_size]))
                out.append(self.model.forward_from(self.layer, hb, x))
        if not out:
            return torch.zeros((0, len(self.model.classes)))
        return torch.cat(out)

    def _proba(
        self, h: torch.Tensor, op: CompiledSpec | None, rows: torch.Tensor | None, twin: int | None = None
    ) -> np.ndarray:
        return _softmax(self._logits(h, op, rows, twin))

    def resolve(self, spec_or_strengths: StrengthsOrSpec) -> InterventionSpec | None:
        """The spec an :meth:`evaluate` argument stands for (None: the unpatched model)."""
        if spec_or_strengths is None:
            return None
        if isinstance(spec_or_strengths, InterventionSpec):
            spec = spec_or_strengths
            if spec.layer != self.layer:
                raise InterventionError(f"the spec edits {spec.layer!r}, this what-if holds {self.layer!r}")
            spec.check_model(self.model.model_id, self.model.layers, self.dim or None)
            return spec
        if self.spec is None:
            raise InterventionError("strengths need a base spec: construct the WhatIf with spec=...")
        return self.spec.with_strengths(spec_or_strengths)

    @staticmethod
    def _compile(spec: InterventionSpec | None) -> CompiledSpec | None:
        return None if spec is None or spec.is_neutral else CompiledSpec(spec)

    def predict_proba(self, spec_or_strengths: StrengthsOrSpec, *, _op: CompiledSpec | None = None) -> np.ndarray:
        """Probabilities of the split under a spec (None: the unpatched model)."""
        spec = self.resolve(spec_or_strengths)
        op = _op or self._compile(spec)
        if spec is None or op is None:
            return self.base_proba
        return self._proba(self.h, op, self._rows(spec, self.base_pred, self.case_ids))

    def flip_rates(
        self, spec: InterventionSpec | None, proba: np.ndarray | None = None, *, _op: CompiledSpec | None = None
    ) -> dict[str, dict[str, Any]]:
        """Per artifact: share of predictions that change from an original to its twin."""
        op = _op or self._compile(spec)
        pred = (proba if proba is not None else self.predict_proba(spec, _op=op)).argmax(axis=1)
        out: dict[str, dict[str, Any]] = {}
        for i, t in enumerate(self.twins):
            if op is None or spec is None:
                tp = self._twin_base[i]
            else:
                ids = [self.case_ids[r] for r in t.rows]
                rows = self._rows(spec, self._twin_base[i].argmax(1), ids)
                tp = self._proba(self._twin_h[i], op, rows, twin=i)
            twin_pred = tp.argmax(axis=1)
            flipped = twin_pred != pred[t.rows]
            n_to = None
            if t.to_class is not None and t.to_class in self.model.classes:
                k = self.model.classes.index(t.to_class)
                n_to = int(np.sum(flipped & (twin_pred == k)))
            out[t.key] = {
                "rate": float(flipped.mean()) if len(flipped) else float("nan"),
                "artifact": t.artifact,
                "direction": t.direction,
                "method": t.method,
                "n": len(flipped),
                "n_flipped": int(flipped.sum()),
                "to_class": t.to_class,
                "n_to_class": n_to,
                "case_ids": [self.case_ids[r] for r in t.rows[flipped]],
            }
        return out

    def metrics(self, proba: np.ndarray, rows: np.ndarray | None = None) -> dict[str, Any]:
        """Classification metrics of probabilities (optionally of some rows only)."""
        idx = np.arange(len(self.labels)) if rows is None else np.asarray(rows)
        m = classification_metrics(self._dataset, idx, proba[idx], group_artifacts=tuple(self.groups),
                                   positive_class=self.positive_class)
        return m.to_json()

    def evaluate(self, spec_or_strengths: StrengthsOrSpec = None, *, flip_rates: bool = True) -> WhatIfResult:
        """Metrics of the split under a spec, or under new strengths of the base spec.

        Parameters
        ----------
        spec_or_strengths
            An :class:`InterventionSpec` at this layer, a mapping ``{concept: strength}``
            (applied to the base spec), or None (the unpatched model).
        flip_rates
            Also compute the twins' flip rates (``metrics["flip_rates"]``).
        """
        t0 = time.perf_counter()
        spec = self.resolve(spec_or_strengths)
        op = self._compile(spec)
        with _torch_threads(self.num_threads):
            proba = self.predict_proba(spec, _op=op)
            metrics = self._fast(proba)
            if flip_rates:
                rates = self.flip_rates(spec, proba, _op=op)
                metrics["flip_rates"] = {k: v["rate"] for k, v in rates.items()}
        flipped = np.flatnonzero(proba.argmax(axis=1) != self.base_pred)
        return WhatIfResult(metrics, proba, flipped, 1000.0 * (time.perf_counter() - t0))


def _softmax(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits, dim=1).numpy()  # type: ignore[no-any-return]


def _affine_above(staged: StagedNet | None, layer: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(W, b)`` when every stage above ``layer`` is linear (Linear, Flatten, Identity, or a
    Sequential of them) on feature vectors: the logits are then ``W h + b``, so an edit's effect
    on them is computed without materialising the edited activations."""
    if staged is None:
        return None
    names = staged.stage_names
    mods: list[nn.Module] = []
    for name in names[names.index(layer) + 1 :]:
        m = staged.stages[name]
        mods.extend(m.children() if isinstance(m, nn.Sequential) else [m])
    W: torch.Tensor | None = None
    b: torch.Tensor | None = None
    for m in mods:
        if isinstance(m, nn.Flatten | nn.Identity):
            continue
        if not isinstance(m, nn.Linear):
            return None
        w = m.weight.detach().double()
        bias = m.bias.detach().double() if m.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        W, b = (w, bias) if W is None or b is None else (w @ W, w @ b + bias)
    if W is None or b is None:
        return None
    return W.float(), b.float()


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ---------------------------------------------------------------------------------- helpers
def _checked_rows(
    n: int, labels: np.ndarray, case_ids: Sequence[str] | None, groups: Mapping[str, np.ndarray] | None
) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    """Labels, case ids and group flags of ``n`` activation rows (each must have ``n`` rows)."""
    y = np.asarray(labels, dtype=np.int64)
    if len(y) != n:
        raise InterventionError(f"{n} activation rows but {len(y)} labels")
    ids = [str(c) for c in (case_ids if case_ids is not None else range(n))]
    if len(ids) != n:
        raise InterventionError(f"{n} activation rows but {len(ids)} case ids")
    flags = {k: np.asarray(v).astype(bool) for k, v in (groups or {}).items()}
    for k, v in flags.items():
        if len(v) != n:
            raise InterventionError(f"group flags {k!r} have {len(v)} rows, not {n}")
    return y, ids, flags


def _split_activations(
    model: ClassifierModel, dataset: Dataset, idx: np.ndarray, split: str, layer: str,
    cache: ActivationCache | None, progress: ProgressFn | None,
) -> np.ndarray:
    if cache is not None:
        iset = dataset.image_set(idx, name=f"{dataset.info.name}:{split}")
        return np.asarray(cache.get(model, layer, iset, progress=progress)[layer])
    return extract_activations(model, RowView(dataset.images, idx), [layer], progress=progress)[layer]
