"""Counterfactual twins of an intervention's evaluation, as activations for a
:class:`~interventions.WhatIf`: an artifact added to (or removed from) real images — from a twin
column, or transplanted with masks and inpainted away (:func:`concepts.bank.real_twins`) — never a
synthetic renderer on real photographs. Twins of ``train``'s precomputation are read back
from the activation cache without making the images again."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from concepts import (
    ARTIFACTS,
    ActivationCache,
    ClassifierModel,
    DataError,
    Dataset,
    ImageSet,
    ProgressFn,
    extract_activations,
)
from concepts.bank import TwinSet, real_twins
from concepts.data import hash_array
from concepts.discovery import is_dermsynth
from concepts.models import StagedNet, annotated_artifacts
from interventions._spec import InterventionSpec
from interventions._twins import TwinActivations
from store import atomic_path

__all__ = ["artifact_twins", "real_twin_sets", "targeted_artifacts", "twin_activations"]


def twin_activations(
    model: ClassifierModel,
    twin_set: TwinSet,
    idx: np.ndarray,
    layer: str,
    *,
    cache: ActivationCache | None = None,
    keep_images: bool = False,
    progress: ProgressFn | None = None,
) -> TwinActivations:
    """Activations at ``layer`` of a :class:`~concepts.bank.TwinSet` whose originals lie in the
    evaluation rows ``idx`` (twins of rows outside ``idx`` are dropped)."""
    pos = {int(r): i for i, r in enumerate(np.asarray(idx))}
    keep = np.array([int(r) in pos for r in twin_set.rows], dtype=bool)
    rows = np.array([pos[int(r)] for r in twin_set.rows[keep]], dtype=np.int64)
    images = np.asarray(twin_set.images)[keep]
    if len(rows) == 0:
        acts = np.zeros((0, 1), np.float32)
    elif cache is not None:
        iset = ImageSet(name=f"twins:{twin_set.key}", images=images,
                        key=hash_array(images, twin_set.method, "real-twins"))
        acts = np.asarray(cache.get(model, layer, iset, progress=progress)[layer])
    else:
        acts = extract_activations(model, images, [layer], progress=progress)[layer]
    return TwinActivations(twin_set.artifact, rows, acts, None, images if keep_images else None,
                           direction=twin_set.direction, method=twin_set.method)


def targeted_artifacts(spec: InterventionSpec, dataset: Dataset) -> list[str]:
    """The spec's concepts that are artifact columns of the data set (``ink#2`` counts as ``ink``)."""
    cols = set(annotated_artifacts(dataset)) | {a for a in ARTIFACTS if a in dataset.cases.columns}
    out: list[str] = []
    for c in spec.concepts:
        base = c.split("#", 1)[0]
        if base in cols and base not in out:
            out.append(base)
    return out


def real_twin_sets(
    spec: InterventionSpec, dataset: Dataset, idx: np.ndarray, twin_column: str | None,
    mask_column: str | None, seed: int,
) -> tuple[list[TwinSet], str | None]:
    """Real twins of the targeted artifacts, and a note when none could be made."""
    arts = targeted_artifacts(spec, dataset)
    sets: list[TwinSet] = []
    for art in arts:
        sets += real_twins(dataset, idx, art, twin_column=twin_column, mask_column=mask_column, seed=seed)
    if sets or not arts:
        return sets, None
    return sets, (
        f"no flip rates for {', '.join(arts)}: this is not DermSynth data and it has no twin column "
        "(a case's twin: case id or image path) nor a mask column to transplant the artifact — "
        "name them with --twins / --masks"
    )


def artifact_twins(
    model: ClassifierModel,
    dataset: Dataset,
    split: str,
    layer: str,
    *,
    cache: ActivationCache | None = None,
    artifacts: Sequence[str] | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> tuple[list[TwinActivations], str | None]:
    """Real counterfactual twins of a data set's annotated artifacts on ``split``, as
    activations at ``layer``, for a :class:`WhatIf` (``twins=``) — and a note saying which
    artifacts' flips cannot be measured and why.

    DermSynth data get ``([], None)``: the what-if re-renders their planted artifacts itself.
    Other data get their twins from the data (:func:`concepts.bank.real_twins`: a twin column
    ``<artifact>_twin``/``twin`` first, else the artifact transplanted with a mask column
    ``<artifact>_mask``/``mask`` from the split's marked cases); never a synthetic renderer.

    Parameters
    ----------
    artifacts
        The artifacts (default: the annotated artifact columns, :func:`concepts.models.annotated_artifacts`).
    seed
        Seed of the transplant donors.
    """
    if is_dermsynth(dataset):
        return [], None
    cols = dataset.cases.columns
    arts = [a for a in (artifacts if artifacts is not None else annotated_artifacts(dataset)) if a in cols]
    if not arts:
        return [], ("flips cannot be measured: the data set has no annotated artifact column, so there "
                    "is no artifact to add to or remove from its images")
    return _artifact_twins(model, dataset, split, layer, arts, cache, seed, progress)


def _artifact_twins(
    model: ClassifierModel, dataset: Dataset, split: str, layer: str, arts: Sequence[str],
    cache: ActivationCache | None, seed: int, progress: ProgressFn | None,
) -> tuple[list[TwinActivations], str | None]:
    idx = dataset.indices(split)
    keep = not isinstance(model.module, StagedNet)  # other models re-run from the images
    out: list[TwinActivations] = []
    missing: list[str] = []
    failed: list[str] = []
    for art in arts:
        key = hash_array(np.asarray(idx), dataset.info.content_hash, "artifact-twins-v1", art, str(seed))
        acts_or_none = (_cached_twins(model, dataset, layer, art, cache, key, len(idx))
                        if cache is not None and not keep else None)
        if acts_or_none is None:
            try:
                sets = real_twins(dataset, idx, art, seed=seed)
            except DataError as exc:
                failed.append(f"{art} ({' '.join(str(exc).split())})")
                continue
            acts = [twin_activations(model, t, idx, layer, cache=cache, keep_images=keep, progress=progress)
                    for t in sets if len(t)]
            acts = [a for a in acts if len(a.rows)]
            if cache is not None:
                _store_twins(model, dataset, layer, art, cache, key, acts)
        else:
            acts = acts_or_none
        if not acts:
            missing.append(art)
        out += acts
    notes = []
    if missing:
        twin = ", ".join(f"`{a}_twin`" for a in missing)
        mask = ", ".join(f"`{a}_mask`" for a in missing)
        notes.append(
            f"flips of {', '.join(missing)} cannot be measured on the {split} split: the data set has no "
            f"twin column ({twin} or `twin`: each case's twin, a case id or an image path) nor a mask "
            f"column ({mask} or `mask`: an image of the artifact's pixels, to transplant it from real "
            "images into clean ones) with entries for this split — import them as extra columns; "
            "a renderer's synthetic artifact is never used on real photographs"
        )
    if failed:
        notes.append("twins could not be made for " + "; ".join(failed))
    return out, " ".join(notes) or None


def _twin_probe(dataset: Dataset, art: str, key: str) -> ImageSet:
    return ImageSet(name=f"{dataset.info.name}:twins:{art}", images=np.zeros((0, 1, 1, 3), np.uint8), key=key)


def _cached_twins(
    model: ClassifierModel, dataset: Dataset, layer: str, art: str, cache: ActivationCache, key: str, n: int,
) -> list[TwinActivations] | None:
    """The twins' activations stored by an earlier call (``train``'s precomputation), without
    making the twin images again; None when absent or unreadable (then they are remade)."""
    path = cache.root / model.model_id / layer / f"twins-{key}.json"
    try:
        entries = json.loads(path.read_text())
        out = []
        for i, e in enumerate(entries):
            probe = _twin_probe(dataset, art, f"{key}-{i}")
            if not cache.path(model, layer, probe).is_file():
                return None
            rows = np.asarray(e["rows"], dtype=np.int64)
            acts = np.asarray(cache.get(model, layer, probe)[layer])
            bad_rows = rows.ndim != 1 or (rows < 0).any() or (rows >= n).any()
            if bad_rows or len(rows) != len(acts) or e["direction"] not in ("add", "remove"):
                return None
            out.append(TwinActivations(art, rows, acts, None, None, direction=str(e["direction"]),
                                       method=str(e["method"])))
        return out
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store_twins(
    model: ClassifierModel, dataset: Dataset, layer: str, art: str, cache: ActivationCache, key: str,
    acts: Sequence[TwinActivations],
) -> None:
    entries = []
    for i, a in enumerate(acts):
        cache.put(model, layer, _twin_probe(dataset, art, f"{key}-{i}"), a.acts)
        entries.append({"rows": a.rows.tolist(), "direction": a.direction, "method": a.method})
    path = cache.root / model.model_id / layer / f"twins-{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, private=False) as tmp:
        tmp.write_text(json.dumps(entries))
