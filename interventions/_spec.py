"""The intervention spec: a JSON-able, versioned, self-contained description of a model patch.

A spec names the layer, one or more concept edits and a scope. Every edit carries the concept's
direction (its CAV vector, stored bit-exactly as base64 float32 with a sha256) and the reference
levels it uses (absent level ``mu0``, present level ``mu1``), so a spec reproduces anywhere
without the workspace that produced it. The spec is pinned to one model id.

Operations (``c = h·v`` is the concept component of an activation ``h``; ``s`` the strength):

``mask``
    ``c -> c + s (mu0 - c)``, ``s`` in [0, 1]: 1 moves the component to its absent level
    (ClArC-style projection), 0 leaves it unchanged.
``amplify``
    ``c -> mu0 + s (c - mu0)``, ``s = gamma`` in [0, 10]: scales the component around the absent
    level (gamma 1 leaves it unchanged, 0 equals a full mask).
``set``
    ``c -> c + s (L - c)``, ``s`` in [0, 1], ``L`` the ``level``: ``"present"`` (mu1),
    ``"absent"`` (mu0) or a number. ``set`` to ``present`` is "amplify to the present level".

Several edits are applied jointly through the projection onto the span of their directions,
so that every component ends exactly at its target even when the CAVs are not orthogonal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from interventions._concept import (
    NEUTRAL_STRENGTH,
    OPERATIONS,
    STRENGTH_RANGE,
    ConceptDirection,
    ConceptEdit,
    InterventionError,
    _req,
    _text,
)
from store import atomic_path

__all__ = [
    "NEUTRAL_STRENGTH",
    "OPERATIONS",
    "SCOPE_KINDS",
    "SPEC_VERSION",
    "STRENGTH_RANGE",
    "ConceptDirection",
    "ConceptEdit",
    "InterventionError",
    "InterventionSpec",
    "Scope",
]

#: Version of the spec JSON format written by this code.
SPEC_VERSION = 1

#: Scope kinds: every input, inputs the unpatched model predicts as one class, listed cases.
SCOPE_KINDS: tuple[str, ...] = ("all", "predicted_class", "cases")

_SPEC_KIND = "concept-workbench/intervention"


@dataclass(frozen=True)
class Scope:
    """Which inputs an intervention applies to.

    Parameters
    ----------
    kind
        ``all``; ``predicted_class`` (inputs the *unpatched* model predicts as ``class_name``); or
        ``cases`` (inputs whose case id is in ``case_ids``).
    class_name
        The class, for ``predicted_class``.
    case_ids
        The case ids, for ``cases``.
    """

    kind: str = "all"
    class_name: str | None = None
    case_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in SCOPE_KINDS:
            raise InterventionError(f"unknown scope {self.kind!r}; use one of {', '.join(SCOPE_KINDS)}")
        if self.kind == "predicted_class":
            _text(self.class_name, "scope.class")
        if self.kind == "cases":
            ids = tuple(str(c) for c in self.case_ids)
            if not ids:
                raise InterventionError("scope 'cases' needs at least one case id")
            object.__setattr__(self, "case_ids", ids)

    @classmethod
    def all(cls) -> Scope:
        return cls("all")

    @classmethod
    def predicted(cls, class_name: str) -> Scope:
        return cls("predicted_class", class_name=class_name)

    @classmethod
    def cases(cls, case_ids: Iterable[str]) -> Scope:
        return cls("cases", case_ids=tuple(case_ids))

    def to_json(self) -> dict[str, Any]:
        if self.kind == "predicted_class":
            return {"kind": self.kind, "class": self.class_name}
        if self.kind == "cases":
            return {"kind": self.kind, "case_ids": list(self.case_ids)}
        return {"kind": "all"}

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> Scope:
        if d is None:
            return cls("all")
        kind = _req(d, "kind", "scope")
        if kind == "predicted_class":
            return cls(kind, class_name=_req(d, "class", "scope"))
        if kind == "cases":
            ids = _req(d, "case_ids", "scope")
            if not isinstance(ids, list):
                raise InterventionError("scope.case_ids must be a list of case ids")
            return cls(kind, case_ids=tuple(str(i) for i in ids))
        return cls(str(kind))

    def rows(self, case_ids: Sequence[str] | None) -> np.ndarray | None:
        """Boolean row mask for ``cases`` scope (None for the other kinds)."""
        if self.kind != "cases":
            return None
        if case_ids is None:
            raise InterventionError(
                "this intervention is scoped to listed case ids: pass the inputs' case ids "
                "(case_ids=...) so it knows which rows to change"
            )
        wanted = set(self.case_ids)
        return np.array([str(c) in wanted for c in case_ids], dtype=bool)


# ---------------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class InterventionSpec:
    """A reproducible intervention on one layer of one model.

    Parameters
    ----------
    model_id
        Id of the model the spec applies to (every edit's direction must come from it).
    layer
        Layer whose output is edited.
    edits
        The concept edits (one per concept).
    scope
        Which inputs it applies to.
    note
        Free text (e.g. why).
    spec_version
        Format version (:data:`SPEC_VERSION`).
    """

    model_id: str
    layer: str
    edits: tuple[ConceptEdit, ...]
    scope: Scope = field(default_factory=Scope)
    note: str = ""
    spec_version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "edits", tuple(self.edits))
        _text(self.model_id, "model_id")
        _text(self.layer, "layer")
        if not self.edits:
            raise InterventionError("an intervention needs at least one concept edit")
        if self.spec_version != SPEC_VERSION:
            raise InterventionError(
                f"spec_version {self.spec_version!r} is not supported (this workbench reads "
                f"version {SPEC_VERSION}) — re-create the spec with this version"
            )
        seen: set[str] = set()
        for e in self.edits:
            d = e.direction
            if d.concept_id in seen:
                raise InterventionError(f"concept {d.concept_id!r} appears twice; give one edit per concept")
            seen.add(d.concept_id)
            if d.model_id != self.model_id:
                raise InterventionError(
                    f"the CAV of {d.concept_id!r} comes from model {d.model_id}, but the spec is "
                    f"for model {self.model_id} — recompute the concept direction on this model"
                )
            if d.layer != self.layer:
                raise InterventionError(
                    f"the CAV of {d.concept_id!r} lives at layer {d.layer!r}, but the spec edits "
                    f"layer {self.layer!r} — recompute it at {self.layer!r}"
                )
        dims = {e.direction.dim for e in self.edits}
        if len(dims) > 1:
            raise InterventionError(f"the concept vectors have different lengths {sorted(dims)}")

    # ------------------------------------------------------------ views
    @property
    def dim(self) -> int:
        return self.edits[0].direction.dim

    @property
    def concept_ids(self) -> tuple[str, ...]:
        return tuple(e.concept_id for e in self.edits)

    @property
    def concepts(self) -> tuple[str, ...]:
        return tuple(e.direction.concept for e in self.edits)

    @property
    def is_neutral(self) -> bool:
        """True when every edit is at its neutral strength (the spec is the identity)."""
        return all(e.is_neutral for e in self.edits)

    @property
    def spec_id(self) -> str:
        """Content hash of the canonical JSON (16 hex characters)."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def edit(self, concept: str) -> ConceptEdit:
        """The edit of a concept (by id or by name)."""
        for e in self.edits:
            if concept in (e.concept_id, e.direction.concept):
                return e
        raise InterventionError(
            f"concept {concept!r} is not in this spec; it edits {', '.join(self.concept_ids)}"
        )

    def with_strengths(self, strengths: Mapping[str, float]) -> InterventionSpec:
        """A copy with new strengths (keys: concept ids or names)."""
        new = list(self.edits)
        for key, s in strengths.items():
            e = self.edit(key)
            new[self.edits.index(e)] = replace(e, strength=s)
        return replace(self, edits=tuple(new))

    def with_scope(self, scope: Scope) -> InterventionSpec:
        return replace(self, scope=scope)

    def describe(self) -> str:
        """One line for humans, e.g. ``mask ink (1) at pool``."""
        parts = []
        for e in self.edits:
            extra = f" to {e.level}" if e.operation == "set" else ""
            parts.append(f"{e.operation} {e.direction.concept}{extra} ({e.strength:g})")
        scope = {"all": "", "predicted_class": f" on predicted {self.scope.class_name}",
                 "cases": f" on {len(self.scope.case_ids)} cases"}[self.scope.kind]
        return ", ".join(parts) + f" at {self.layer}{scope}"

    # ------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        return {
            "kind": _SPEC_KIND,
            "spec_version": self.spec_version,
            "model_id": self.model_id,
            "layer": self.layer,
            "scope": self.scope.to_json(),
            "edits": [e.to_json() for e in self.edits],
            "note": self.note,
        }

    def to_json_str(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_json(), indent=indent)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> InterventionSpec:
        """Parse a spec (a dict or JSON text); every problem is an :class:`InterventionError`."""
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InterventionError(f"the spec is not valid JSON ({exc})") from exc
        if not isinstance(data, Mapping):
            raise InterventionError(f"the spec must be a JSON object, got {type(data).__name__}")
        version = _req(data, "spec_version", "spec")
        if isinstance(version, bool) or not isinstance(version, int):
            raise InterventionError(f"spec.spec_version must be an integer, got {version!r}")
        if version > SPEC_VERSION:
            raise InterventionError(
                f"spec_version {version} was written by a newer workbench (this one reads "
                f"version {SPEC_VERSION}) — upgrade the workbench"
            )
        kind = data.get("kind", _SPEC_KIND)
        if kind != _SPEC_KIND:
            raise InterventionError(f"not an intervention spec (kind {kind!r})")
        edits_raw = _req(data, "edits", "spec")
        if not isinstance(edits_raw, list):
            raise InterventionError("spec.edits must be a list of concept edits")
        edits = tuple(ConceptEdit.from_json(e, f"spec.edits[{i}]") for i, e in enumerate(edits_raw))
        note = data.get("note", "")
        return cls(
            model_id=_text(_req(data, "model_id", "spec"), "spec.model_id"),
            layer=_text(_req(data, "layer", "spec"), "spec.layer"),
            edits=edits,
            scope=Scope.from_json(data.get("scope")),
            note=str(note) if note is not None else "",
            spec_version=version,
        )

    def save(self, path: str | Path) -> Path:
        """Write the spec as JSON."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(p, private=False) as tmp:
            tmp.write_text(self.to_json_str())
        return p

    @classmethod
    def load(cls, path: str | Path) -> InterventionSpec:
        """Read a spec JSON file (errors name the file)."""
        p = Path(path)
        if not p.is_file():
            raise InterventionError(f"spec file not found: {p}")
        try:
            return cls.from_json(p.read_bytes())
        except InterventionError as exc:
            raise InterventionError(f"{p}: {exc}") from exc

    # ------------------------------------------------------------ checks against a model
    def check_model(self, model_id: str, layers: Sequence[str], dim: int | None = None) -> None:
        """Refuse a model with another id, a layer it lacks, or another activation size."""
        if model_id != self.model_id:
            raise InterventionError(
                f"this spec is for model {self.model_id}, not {model_id} — rebuild the spec "
                "(and its concept directions) on this model"
            )
        if self.layer not in layers:
            raise InterventionError(
                f"the spec edits layer {self.layer!r}, which this model lacks; its layers end "
                f"with {', '.join(list(layers)[-8:])}"
            )
        if dim is not None and dim != self.dim:
            raise InterventionError(
                f"layer {self.layer!r} has {dim} values per input, but the concept vectors have "
                f"{self.dim} — were they computed at another input size?"
            )
