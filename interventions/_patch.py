"""Patched models for ML engineers: a module that applies a spec in its forward, saved as a
self-contained, checksummed artifact directory.

Artifact layout::

    manifest.json      format, model id, spec id, patched id, classes, layer, sha256 of every file
    spec.json          the intervention spec (with its concept vectors)
    base/model.json    the base model (ClassifierModel.save)
    base/weights.pt    its plain state dict (loads with torch.load(weights_only=True))
    program.pt2        optional (``export=True``): the patched model as a torch.export program,
                       the edit inside the graph, for deployment with plain torch

Loading verifies every checksum and refuses a base model whose id differs from the spec's.
Nothing named in the files is imported or run (see ``ClassifierModel.load``). Saving over an
existing directory replaces it only when it is itself a patched-model artifact holding nothing
but the files its manifest lists.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from concepts import ClassifierModel, WorkbenchError
from concepts.data import swap_in_directory
from concepts.models import StagedNet
from interventions._ops import CompiledSpec, activation_dim, apply_spec
from interventions._spec import InterventionError, InterventionSpec

__all__ = [
    "ARTIFACT_FORMAT",
    "PROGRAM_FILE",
    "PatchedModel",
    "export_program",
    "is_patched_artifact",
    "load_patched",
    "patch",
]

#: ``format`` field of a patched artifact's manifest.
ARTIFACT_FORMAT = "concept-workbench/patched-model"
_ARTIFACT_VERSION = 1

#: File name of the exported program inside an artifact.
PROGRAM_FILE = "program.pt2"


def _sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class PatchedModel(nn.Module):
    """A base model whose forward applies an intervention spec (weights untouched).

    Build it with :func:`patch`; the base module is a submodule (``base``), so the patched
    model's state dict is the base model's.

    Parameters
    ----------
    model
        The base model.
    spec
        The intervention (its model id and layer must match the base model).
    """

    def __init__(self, model: ClassifierModel, spec: InterventionSpec):
        super().__init__()
        spec.check_model(model.model_id, model.layers)
        spec.check_model(model.model_id, model.layers, activation_dim(model, spec.layer))
        self.base = model.module
        self.model = model
        self.spec = spec
        self._compiled = CompiledSpec(spec)
        self.eval()

    # ------------------------------------------------------------ identity
    @property
    def classes(self) -> tuple[str, ...]:
        return self.model.classes

    @property
    def model_id(self) -> str:
        """Id of the base model."""
        return self.model.model_id

    @property
    def patched_id(self) -> str:
        """Id of base model + spec (16 hex characters)."""
        return hashlib.sha256(f"{self.model_id}|{self.spec.spec_id}".encode()).hexdigest()[:16]

    # ------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, case_ids: Sequence[str] | None = None) -> torch.Tensor:
        """Logits of the patched model for a preprocessed batch ``x``.

        ``case_ids`` (one per input) are needed when the spec is scoped to listed cases.
        """
        rows: np.ndarray | None = None
        if self.spec.scope.kind == "predicted_class" and not isinstance(self.base, StagedNet):
            with torch.no_grad():
                k = self.classes.index(str(self.spec.scope.class_name))
                rows = (self.base(x).argmax(dim=1) == k).numpy()
        with apply_spec(self.model, self.spec, case_ids=case_ids, rows=rows, compiled=self._compiled):
            return self.base(x)  # type: ignore[no-any-return]

    @torch.inference_mode()
    def predict_proba(
        self, images: np.ndarray, case_ids: Sequence[str] | None = None, batch_size: int = 64
    ) -> np.ndarray:
        """Class probabilities for uint8 images ``(N, H, W, 3)``."""
        outs = []
        for i in range(0, len(images), batch_size):
            x = self.model.preprocess(np.asarray(images[i : i + batch_size]))
            ids = None if case_ids is None else list(case_ids[i : i + batch_size])
            outs.append(torch.softmax(self.forward(x, ids), dim=1).numpy())
        if not outs:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return np.concatenate(outs)

    # ------------------------------------------------------------ persistence
    def save(self, directory: str | Path, *, overwrite: bool = False, export: bool = False) -> Path:
        """Write the self-contained artifact directory (atomically).

        Parameters
        ----------
        directory
            The artifact directory.
        overwrite
            Replace an existing artifact there (never any other directory).
        export
            Also write ``program.pt2``: the patched model as a ``torch.export`` program.

        Raises
        ------
        InterventionError
            ``directory`` exists and is not empty (unless ``overwrite``), or is not a
            patched-model artifact (a workspace, a store, any other folder): never replaced.
        """
        out = Path(directory)
        _check_target(out, overwrite)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            self.model.save(tmp / "base")
            self.spec.save(tmp / "spec.json")
            if export:
                export_program(self, tmp / PROGRAM_FILE)
            manifest = self._manifest(tmp, export)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
            swap_in_directory(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out

    def _manifest(self, tmp: Path, export: bool) -> dict[str, Any]:
        """The artifact's manifest: identity, the spec, and the sha256 of every file in ``tmp``."""
        files = {
            str(p.relative_to(tmp).as_posix()): _sha256_file(p)
            for p in sorted(tmp.rglob("*"))
            if p.is_file()
        }
        manifest: dict[str, Any] = {
            "format": ARTIFACT_FORMAT,
            "format_version": _ARTIFACT_VERSION,
            "model_id": self.model_id,
            "weights_sha256": self.model.weights_sha256,
            "spec_id": self.spec.spec_id,
            "patched_id": self.patched_id,
            "architecture": self.model.architecture,
            "classes": list(self.classes),
            "layer": self.spec.layer,
            "concepts": list(self.spec.concept_ids),
            "description": self.spec.describe(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": files,
        }
        if export:
            manifest["program"] = {
                "file": PROGRAM_FILE,
                "input": "float32 (N, 3, size, size): RGB scaled to [0, 1], resized, then "
                "(x - mean) / std",
                "output": "logits (N, classes)",
                "preprocess": asdict(self.model.preprocess),
                "load": f"torch.export.load('{PROGRAM_FILE}').module()",
            }
        return manifest

    @classmethod
    def load(cls, directory: str | Path, base_model: ClassifierModel | None = None) -> PatchedModel:
        """Load an artifact written by :meth:`save` (see :func:`load_patched`)."""
        return load_patched(directory, base_model)


def _check_target(out: Path, overwrite: bool) -> None:
    """Refuse to write over anything but an empty folder or (with ``overwrite``) an artifact."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InterventionError(f"{out} exists and is not a directory — choose another --out")
    aside = out.with_name(f".{out.name}.old")  # the swap moves the old artifact here, then deletes it
    if aside.is_symlink() or (aside.exists() and not is_patched_artifact(aside)):
        raise InterventionError(f"{aside} exists and is not a patched-model artifact — move it away first")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise InterventionError(f"{out} already exists and is not empty — choose another --out or remove it")
    if not is_patched_artifact(out):
        raise InterventionError(
            f"{out} is not a patched-model artifact (no workbench manifest) — refusing to replace it; "
            "--overwrite only replaces an artifact written by `workbench apply`: choose another --out"
        )
    try:
        listed = set(json.loads((out / "manifest.json").read_text())["files"]) | {"manifest.json"}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InterventionError(f"{out}: unreadable manifest ({exc}) — refusing to replace it") from exc
    present = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() or p.is_symlink()}
    extra = sorted(present - listed)
    if extra or any(p.is_symlink() for p in out.rglob("*")):
        shown = ", ".join(extra[:3]) or "a symbolic link"
        raise InterventionError(
            f"{out} holds files its manifest does not list ({shown}) — refusing to replace it; "
            "choose another --out"
        )


class _Baked(nn.Module):
    """The patched forward written for tracing (preprocessed batch in, logits out).

    Same edit as :func:`interventions.apply_spec` (``CompiledSpec.steps`` times its projector)
    but without data-dependent Python branches, so ``torch.export`` records it in the graph.
    """

    def __init__(self, patched: PatchedModel):
        super().__init__()
        self.patched = patched
        model, spec = patched.model, patched.spec
        self._k = model.classes.index(str(spec.scope.class_name)) if spec.scope.kind == "predicted_class" else -1
        self._staged = model.module if isinstance(model.module, StagedNet) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pm = self.patched
        comp = pm._compiled
        if comp.identity:
            return pm.base(x)  # type: ignore[no-any-return]
        rows: torch.Tensor | None = None
        if self._k >= 0 and self._staged is None:
            rows = pm.base(x).argmax(dim=1) == self._k

        def edit(o: torch.Tensor) -> torch.Tensor:
            r = rows
            if r is None and self._k >= 0 and self._staged is not None:
                r = self._staged.forward_from(pm.spec.layer, o.detach()).argmax(dim=1) == self._k
            flat = o.reshape(o.shape[0], -1)
            return (flat + comp.steps(flat, r) @ comp.projector.to(flat.dtype)).reshape(o.shape)

        with pm.model.replace_output(pm.spec.layer, edit):
            return pm.base(x)  # type: ignore[no-any-return]


def export_program(patched: PatchedModel, path: str | Path) -> Path:
    """Write ``patched`` as a ``torch.export`` program (the edit inside the graph).

    The program takes the preprocessed batch ``(N, 3, size, size)`` and returns logits; load it
    with ``torch.export.load(path).module()``.

    Raises
    ------
    InterventionError
        A case-scoped spec (it needs case ids, which a plain forward does not have), or a model
        that torch.export cannot trace.
    """
    if patched.spec.scope.kind == "cases":
        raise InterventionError("a spec scoped to listed cases cannot be exported (it needs case ids) — "
                                "export a spec scoped to all inputs or to a predicted class")
    size = patched.model.preprocess.size
    example = (torch.zeros(2, 3, size, size),)
    batch = torch.export.Dim("batch", min=1)
    try:
        ep = torch.export.export(_Baked(patched).eval(), example, dynamic_shapes=({0: batch},), strict=False)
    except Exception as exc:  # torch raises many error types while tracing
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InterventionError(f"torch.export cannot trace this patched model ({first[:200]})") from exc
    p = Path(path)
    torch.export.save(ep, p)
    return p


def patch(model: ClassifierModel, spec: InterventionSpec) -> PatchedModel:
    """A module that applies ``spec`` to ``model`` in its forward (``model`` is not changed).

    Raises
    ------
    InterventionError
        The spec is for another model id, a layer the model lacks, or another activation size.
    """
    return PatchedModel(model, spec)


def is_patched_artifact(directory: str | Path) -> bool:
    """True when ``directory`` holds a patched-model manifest."""
    p = Path(directory) / "manifest.json"
    if not p.is_file():
        return False
    try:
        return json.loads(p.read_text()).get("format") == ARTIFACT_FORMAT  # type: ignore[no-any-return]
    except (OSError, ValueError, AttributeError):
        return False


def load_patched(directory: str | Path, base_model: ClassifierModel | None = None) -> PatchedModel:
    """Load a patched-model artifact; weights with ``torch.load(weights_only=True)`` only.

    Parameters
    ----------
    directory
        The artifact directory.
    base_model
        Use this base model instead of the stored weights (its id must match).

    Raises
    ------
    InterventionError
        Missing or malformed manifest, a file whose checksum differs, or a base model whose id
        does not match the artifact's.
    """
    d = Path(directory)
    man_path = d / "manifest.json"
    if not man_path.is_file():
        raise InterventionError(f"no patched model at {d} (manifest.json missing) — create one with `workbench apply`")
    try:
        manifest = json.loads(man_path.read_text())
        fmt, files, model_id = manifest["format"], manifest["files"], str(manifest["model_id"])
        version = int(manifest.get("format_version", 1))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InterventionError(f"{man_path}: malformed manifest ({exc})") from exc
    if fmt != ARTIFACT_FORMAT:
        raise InterventionError(f"{d}: not a patched model (format {fmt!r})")
    if version > _ARTIFACT_VERSION:
        raise InterventionError(f"{d}: artifact format {version} is newer than this workbench reads")
    if not isinstance(files, dict) or "spec.json" not in files:
        raise InterventionError(f"{man_path}: the manifest lists no spec.json")
    for rel, sha in files.items():
        if not isinstance(rel, str) or rel.startswith("/") or ".." in Path(rel).parts:
            raise InterventionError(f"{man_path}: file name {str(rel)[:80]!r} leaves the artifact")
        p = d / rel
        if not p.is_file():
            raise InterventionError(f"{d}: {rel} is missing")
        if _sha256_file(p) != sha:
            raise InterventionError(f"{d}: {rel} does not match its checksum — the artifact was changed or corrupted")
    spec = InterventionSpec.load(d / "spec.json")
    if spec.model_id != model_id:
        raise InterventionError(f"{d}: spec.json is for model {spec.model_id}, the manifest says {model_id}")
    if base_model is None:
        try:
            base_model = ClassifierModel.load(d / "base")
        except WorkbenchError as exc:
            raise InterventionError(f"{d}: cannot load the base model ({exc})") from exc
    if base_model.model_id != model_id:
        raise InterventionError(
            f"{d} patches model {model_id}, but the base model given is {base_model.model_id} — "
            "use the model the patch was made for, or re-create the patch on this model"
        )
    return PatchedModel(base_model, spec)
