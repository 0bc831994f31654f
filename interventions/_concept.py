"""Concept directions and the edits of an intervention (see ``interventions._spec``).

A :class:`ConceptDirection` is a concept's vector at one layer of one model with its reference
levels; a :class:`ConceptEdit` applies one operation (``mask``, ``amplify``, ``set``) with one
strength to it. Both serialise to JSON exactly (the vector as base64 float32 plus its sha256).
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from concepts import WorkbenchError

__all__ = [
    "NEUTRAL_STRENGTH",
    "OPERATIONS",
    "STRENGTH_RANGE",
    "ConceptDirection",
    "ConceptEdit",
    "InterventionError",
]

#: Operations an edit can apply.
OPERATIONS: tuple[str, ...] = ("mask", "amplify", "set")

#: Allowed strength per operation (inclusive).
STRENGTH_RANGE: Mapping[str, tuple[float, float]] = {
    "mask": (0.0, 1.0),
    "amplify": (0.0, 10.0),
    "set": (0.0, 1.0),
}

#: The strength that leaves a component unchanged.
NEUTRAL_STRENGTH: Mapping[str, float] = {"mask": 0.0, "amplify": 1.0, "set": 0.0}


class InterventionError(WorkbenchError, ValueError):
    """An intervention spec, patched model or request that cannot be used (message says why)."""


# ---------------------------------------------------------------------------------- helpers
def _vector_sha256(vec: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(vec, dtype="<f4").tobytes()).hexdigest()


def _req(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise InterventionError(f"{where} must be a JSON object, got {type(d).__name__}")
    if key not in d:
        raise InterventionError(f"{where} lacks the field {key!r}")
    return d[key]


def _num(value: Any, where: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InterventionError(f"{where} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise InterventionError(f"{where} must be finite, got {value!r}")
    return v


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InterventionError(f"{where} must be a non-empty string, got {value!r}")
    return value


# ---------------------------------------------------------------------------------- directions
@dataclass(frozen=True)
class ConceptDirection:
    """A concept's direction at one layer of one model, with its reference levels.

    Parameters
    ----------
    concept_id
        Versioned concept id (pins the example sets the direction was computed from).
    concept
        Concept name (e.g. ``ink``, ``streaks``).
    layer
        Layer whose flattened activation space ``vector`` lives in.
    model_id
        Id of the model the activations came from.
    vector
        Float32 direction ``(D,)``, unit length by convention (the operations use ``v·v``, so
        any non-zero length is correct; ``h·v`` is the component the levels refer to).
    mu0
        Absent level: mean of ``h·v`` over concept-absent examples.
    mu1
        Present level: mean of ``h·v`` over concept-present examples (None if unknown).
    method
        How the direction was computed (``pattern``, ``twin``, ``logistic``, ``random``...).
    accuracy
        Held-out accuracy of the probe, if known.
    n_present, n_absent
        Example counts behind the direction and the levels.
    """

    concept_id: str
    concept: str
    layer: str
    model_id: str
    vector: np.ndarray = field(repr=False)
    mu0: float
    mu1: float | None = None
    method: str = "pattern"
    accuracy: float | None = None
    n_present: int = 0
    n_absent: int = 0

    def __post_init__(self) -> None:
        v = np.ascontiguousarray(np.asarray(self.vector, dtype=np.float32).reshape(-1))
        if v.size == 0 or not np.all(np.isfinite(v)):
            raise InterventionError(f"concept {self.concept_id!r}: its vector is empty or not finite")
        norm = float(np.linalg.norm(v))
        if norm == 0.0:
            raise InterventionError(f"concept {self.concept_id!r}: its vector is zero")
        v.setflags(write=False)
        object.__setattr__(self, "vector", v)
        object.__setattr__(self, "mu0", float(self.mu0))
        if self.mu1 is not None:
            object.__setattr__(self, "mu1", float(self.mu1))

    @property
    def dim(self) -> int:
        return int(self.vector.size)

    @property
    def vector_sha256(self) -> str:
        """sha256 of the vector's little-endian float32 bytes."""
        return _vector_sha256(self.vector)

    def project(self, acts: np.ndarray) -> np.ndarray:
        """Concept component ``h·v / (v·v)`` of activations ``(N, ...)``."""
        flat = np.asarray(acts, dtype=np.float32).reshape(len(acts), -1)
        return flat @ self.vector / float(self.vector @ self.vector)  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        return {
            "concept_id": self.concept_id,
            "concept": self.concept,
            "layer": self.layer,
            "model_id": self.model_id,
            "method": self.method,
            "mu0": self.mu0,
            "mu1": self.mu1,
            "accuracy": self.accuracy,
            "n_present": int(self.n_present),
            "n_absent": int(self.n_absent),
            "dim": self.dim,
            "dtype": "float32",
            "vector_sha256": self.vector_sha256,
            "vector_b64": base64.b64encode(
                np.ascontiguousarray(self.vector, dtype="<f4").tobytes()
            ).decode("ascii"),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any], where: str = "cav") -> ConceptDirection:
        """Parse and verify (dimension, sha256) a direction written by :meth:`to_json`."""
        dim = _req(d, "dim", where)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise InterventionError(f"{where}.dim must be a positive integer, got {dim!r}")
        if d.get("dtype", "float32") != "float32":
            raise InterventionError(f"{where}.dtype must be 'float32', got {d.get('dtype')!r}")
        try:
            raw = base64.b64decode(_text(_req(d, "vector_b64", where), f"{where}.vector_b64"), validate=True)
        except (ValueError, TypeError) as exc:
            raise InterventionError(f"{where}.vector_b64 is not valid base64 ({exc})") from exc
        if len(raw) != 4 * dim:
            raise InterventionError(
                f"{where}: vector_b64 holds {len(raw) // 4} floats but dim says {dim}"
            )
        vec = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        sha = _text(_req(d, "vector_sha256", where), f"{where}.vector_sha256")
        if _vector_sha256(vec) != sha.lower():
            raise InterventionError(
                f"{where}: the vector does not match its sha256 — the spec was altered or truncated"
            )
        acc = d.get("accuracy")
        return cls(
            concept_id=_text(_req(d, "concept_id", where), f"{where}.concept_id"),
            concept=_text(_req(d, "concept", where), f"{where}.concept"),
            layer=_text(_req(d, "layer", where), f"{where}.layer"),
            model_id=_text(_req(d, "model_id", where), f"{where}.model_id"),
            vector=vec,
            mu0=float(_num(_req(d, "mu0", where), f"{where}.mu0")),  # type: ignore[arg-type]
            mu1=_num(d.get("mu1"), f"{where}.mu1", allow_none=True),
            method=str(d.get("method", "pattern")),
            accuracy=_num(acc, f"{where}.accuracy", allow_none=True),
            n_present=int(d.get("n_present", 0)),
            n_absent=int(d.get("n_absent", 0)),
        )


# ---------------------------------------------------------------------------------- edits, scope
@dataclass(frozen=True)
class ConceptEdit:
    """One operation on one concept (see the module docstring for the formulas).

    Parameters
    ----------
    direction
        The concept's direction and reference levels.
    operation
        ``mask``, ``amplify`` or ``set``.
    strength
        Mask/set: share of the way to the target level in [0, 1]; amplify: gamma in [0, 10].
    level
        Target of ``set``: ``"present"``, ``"absent"`` or a number (ignored otherwise).
    """

    direction: ConceptDirection
    operation: str = "mask"
    strength: float = 1.0
    level: str | float | None = None

    def __post_init__(self) -> None:
        where = f"edit of {self.direction.concept_id!r}"
        if self.operation not in OPERATIONS:
            raise InterventionError(
                f"{where}: unknown operation {self.operation!r}; use one of {', '.join(OPERATIONS)}"
            )
        s = _num(self.strength, f"{where}: strength")
        lo, hi = STRENGTH_RANGE[self.operation]
        if s is None or not lo <= s <= hi:
            what = "gamma" if self.operation == "amplify" else "strength"
            raise InterventionError(
                f"{where}: {what} {self.strength!r} is out of range for {self.operation} "
                f"(allowed {lo:g} to {hi:g})"
            )
        object.__setattr__(self, "strength", s)
        level = self.level
        if self.operation == "set":
            if level is None:
                level = "present"
            if isinstance(level, str):
                if level not in ("present", "absent"):
                    raise InterventionError(
                        f"{where}: level must be 'present', 'absent' or a number, got {level!r}"
                    )
                if level == "present" and self.direction.mu1 is None:
                    raise InterventionError(
                        f"{where}: set to 'present' needs the present level mu1, which this "
                        "concept direction lacks — give a numeric level"
                    )
            else:
                level = _num(level, f"{where}: level")
        else:
            level = None
        object.__setattr__(self, "level", level)

    @property
    def concept_id(self) -> str:
        return self.direction.concept_id

    @property
    def is_neutral(self) -> bool:
        """True when the edit leaves the component unchanged."""
        return self.strength == NEUTRAL_STRENGTH[self.operation]

    def target_level(self) -> float:
        """The level ``L`` a ``set`` edit moves towards (mu0 for a mask)."""
        if self.operation == "set":
            if self.level == "present":
                return float(self.direction.mu1)  # type: ignore[arg-type]
            if self.level == "absent":
                return self.direction.mu0
            return float(self.level)  # type: ignore[arg-type]
        return self.direction.mu0

    def coefficients(self) -> tuple[float, float]:
        """``(A, B)`` such that the target component is ``A c + B``."""
        s = self.strength
        mu0 = self.direction.mu0
        if self.operation == "mask":
            return 1.0 - s, s * mu0
        if self.operation == "amplify":
            return s, (1.0 - s) * mu0
        return 1.0 - s, s * self.target_level()

    def to_json(self) -> dict[str, Any]:
        return {
            "concept_id": self.concept_id,
            "concept": self.direction.concept,
            "operation": self.operation,
            "strength": self.strength,
            "level": self.level,
            "cav": self.direction.to_json(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any], where: str = "edit") -> ConceptEdit:
        direction = ConceptDirection.from_json(_req(d, "cav", where), f"{where}.cav")
        cid = d.get("concept_id", direction.concept_id)
        if cid != direction.concept_id:
            raise InterventionError(
                f"{where}: concept_id {cid!r} differs from its CAV's {direction.concept_id!r}"
            )
        level = d.get("level")
        return cls(
            direction=direction,
            operation=_text(_req(d, "operation", where), f"{where}.operation"),
            strength=_num(_req(d, "strength", where), f"{where}.strength"),  # type: ignore[arg-type]
            level=level,
        )
