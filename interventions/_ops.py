"""Applying a spec to activations: the joint projection, as tensors, and as a forward hook.

For edits with directions ``V`` (rows ``v_i``) and target components ``t_i = A_i c_i + B_i``
(``c = V h``), the smallest change of ``h`` that puts every component on its target is

    h' = h + (t - c) G⁻¹ V,   G = V Vᵀ,

the projection onto the span of the directions (for one concept ``h' = h + (t - c) v / (v·v)``;
for a mask, ``t = mu0``: the ClArC formula ``h' = h + ((mu0 - h·v)/(v·v)) v``; for several
masks, ``h' = h - Vᵀ G⁻¹ (V h - mu0)``, i.e. ``h - V (VᵀV)⁻¹ Vᵀ (h - z)`` in column notation).
A neutral spec is never computed: it returns its input tensor itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from concepts import ClassifierModel
from concepts.models import StagedNet
from interventions._spec import InterventionError, InterventionSpec

__all__ = ["MAX_CONDITION", "CompiledSpec", "apply_spec", "edit_activations"]

#: Largest condition number of the directions' Gram matrix accepted (nearly parallel CAVs
#: make the joint projection ill-posed).
MAX_CONDITION = 1e6


class CompiledSpec:
    """A spec's edits as tensors, ready to apply to a layer's activations.

    Parameters
    ----------
    spec
        The intervention spec.

    Raises
    ------
    InterventionError
        The concept directions are (nearly) linearly dependent.
    """

    def __init__(self, spec: InterventionSpec):
        self.spec = spec
        self.identity = spec.is_neutral
        V = np.stack([e.direction.vector.astype(np.float64) for e in spec.edits])  # (m, D)
        gram = V @ V.T
        cond = float(np.linalg.cond(gram))
        if not np.isfinite(cond) or cond > MAX_CONDITION:
            names = ", ".join(spec.concepts)
            raise InterventionError(
                f"the directions of {names} are (nearly) parallel (Gram condition number "
                f"{cond:.3g}); edit them one at a time or drop one"
            )
        P = np.linalg.solve(gram, V)  # G⁻¹ V, (m, D)
        coef = np.array([e.coefficients() for e in spec.edits], dtype=np.float64)  # (m, 2)
        self.dim = V.shape[1]
        self._Vt = torch.from_numpy(V.T.astype(np.float32)).contiguous()  # (D, m)
        self._P = torch.from_numpy(P.astype(np.float32)).contiguous()  # (m, D)
        self._a1 = torch.from_numpy((coef[:, 0] - 1.0).astype(np.float32))  # A - 1
        self._b = torch.from_numpy(coef[:, 1].astype(np.float32))

    def components(self, flat: torch.Tensor) -> torch.Tensor:
        """Concept components ``c = h·v_i`` of flattened activations ``(N, D)`` -> ``(N, m)``."""
        return flat @ self._Vt.to(flat.dtype)

    def apply(self, h: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Edited activations (same shape as ``h``); ``rows`` limits the edit to some inputs.

        Returns ``h`` itself when the spec is neutral or no row is selected.
        """
        if self.identity:
            return h
        if rows is not None and not bool(rows.any()):
            return h
        flat = h.reshape(h.shape[0], -1)
        if flat.shape[1] != self.dim:
            raise InterventionError(
                f"layer {self.spec.layer!r} gave {flat.shape[1]} values per input, but the "
                f"concept vectors have {self.dim} — were they computed at another input size?"
            )
        step = self.steps(flat, rows) @ self._P.to(flat.dtype)
        return (flat + step).reshape(h.shape)

    def steps(self, flat: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, m)`` component changes ``t - c`` of flattened activations (0 outside ``rows``);
        the edit is ``steps @ projector``."""
        dt = flat.dtype
        out = (flat @ self._Vt.to(dt)) * self._a1.to(dt) + self._b.to(dt)
        if rows is not None:
            out = out * rows.to(dt).reshape(-1, 1)
        return out

    @property
    def projector(self) -> torch.Tensor:
        """``G⁻¹ V`` ``(m, D)``: maps component changes to activation changes."""
        return self._P


def edit_activations(
    spec: InterventionSpec, acts: np.ndarray, rows: np.ndarray | None = None
) -> np.ndarray:
    """Apply ``spec`` to activations ``(N, ...)`` (numpy in, numpy out; rows optional)."""
    h = torch.as_tensor(np.asarray(acts, dtype=np.float32))
    r = None if rows is None else torch.as_tensor(np.asarray(rows, dtype=bool))
    return CompiledSpec(spec).apply(h, r).numpy()


def activation_dim(model: ClassifierModel, layer: str) -> int:
    """Values per input at ``layer`` (one dummy forward pass)."""
    size = model.preprocess.size
    x = model.preprocess(np.zeros((1, size, size, 3), dtype=np.uint8))
    with torch.inference_mode():
        out = model.activations(x, [layer])[layer]
    return int(out[0].numel())


@contextmanager
def apply_spec(
    model: ClassifierModel,
    spec: InterventionSpec,
    *,
    case_ids: Sequence[str] | None = None,
    rows: np.ndarray | torch.Tensor | None = None,
    compiled: CompiledSpec | None = None,
) -> Iterator[ClassifierModel]:
    """Context manager: ``model``'s forward passes apply ``spec`` (a removable forward hook).

    The weights are never touched; leaving the context removes the hook, so the model is
    exactly as before. A neutral spec installs nothing.

    Parameters
    ----------
    model
        The model (its id and layers must match the spec).
    spec
        The intervention.
    case_ids
        Case ids of the batch (needed when the spec is scoped to listed cases).
    rows
        Explicit boolean row mask of the batch (overrides the scope).
    compiled
        A precompiled spec (saves recompiling in loops).

    Raises
    ------
    InterventionError
        Wrong model id or layer, or a scope that needs information not given.
    """
    spec.check_model(model.model_id, model.layers)
    if spec.is_neutral:
        yield model
        return
    op = compiled if compiled is not None else CompiledSpec(spec)
    row_mask = _row_mask(model, spec, case_ids, rows)
    k = _scope_class(model, spec)
    staged = model.module if isinstance(model.module, StagedNet) else None

    def fn(o: torch.Tensor) -> torch.Tensor:
        if not isinstance(o, torch.Tensor):
            raise InterventionError(f"layer {spec.layer!r} does not output a single tensor")
        r = row_mask
        if r is not None and r.shape[0] != o.shape[0]:
            raise InterventionError(
                f"{r.shape[0]} case ids / rows given for a batch of {o.shape[0]} inputs"
            )
        if r is None and k >= 0 and staged is not None:
            with torch.no_grad():
                r = staged.forward_from(spec.layer, o.detach()).argmax(dim=1) == k
        return op.apply(o, r)

    with model.replace_output(spec.layer, fn):
        yield model


def _row_mask(
    model: ClassifierModel, spec: InterventionSpec, case_ids: Sequence[str] | None,
    rows: np.ndarray | torch.Tensor | None,
) -> torch.Tensor | None:
    """The batch rows the spec edits, when known before the forward pass (None: all, or the
    predicted-class scope decided inside the hook)."""
    if rows is not None:
        return torch.as_tensor(np.asarray(rows, dtype=bool))
    if spec.scope.kind == "cases":
        return torch.as_tensor(spec.scope.rows(case_ids))
    if spec.scope.kind == "predicted_class" and not isinstance(model.module, StagedNet):
        raise InterventionError(
            "a predicted-class scope on a non-staged model needs the row mask: use "
            "interventions.patch(model, spec), which runs the unpatched model first"
        )
    return None


def _scope_class(model: ClassifierModel, spec: InterventionSpec) -> int:
    """Index of the class a predicted-class scope edits (-1 for other scopes)."""
    if spec.scope.kind != "predicted_class":
        return -1
    if spec.scope.class_name not in model.classes:
        raise InterventionError(
            f"scope class {spec.scope.class_name!r} is not one of the model's classes "
            f"{list(model.classes)}"
        )
    return model.classes.index(str(spec.scope.class_name))
