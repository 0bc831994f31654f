"""Concept directions for interventions, and artifact insertion twins for any images.

The default mask direction is the pattern CAV (the class-mean difference between the concept's
positive and negative examples, on the bank's label-balanced sets, as TCAV uses it); ``twin``
is the exact mean of the per-pair differences of counterfactual twins. The absent level ``mu0``
is the mean projection of the concept-absent examples, the present level ``mu1`` that of the
present ones. On DermSynth the twin direction removes more of the ink shortcut but also more
melanoma evidence (inked melanomas end below plain ones); the pattern CAV balances the two
better (figures in ``docs/interventions.md``).

On real images the twins come from the data (:func:`direction_from_twins`: the artifact
transplanted from marked cases into clean ones with masks, or user-supplied pairs), and
``transplant`` is a direction method of :class:`ConceptLibrary`: the mean activation difference
between a case and its twin with the artifact pasted in (the twin-difference direction).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from concepts import (
    ARTIFACTS,
    ActivationCache,
    ClassifierModel,
    ConceptError,
    Dataset,
    ImageSet,
    ProgressFn,
    extract_activations,
)
from concepts.bank import TwinSet
from concepts.data import hash_array
from concepts.tcav import PROBES, CAVTrainer
from interventions._spec import ConceptDirection, ConceptEdit, InterventionError

__all__ = [
    "DIRECTION_METHODS",
    "MASK_LEVELS",
    "direction_from_examples",
    "direction_from_twins",
    "insert_artifact",
    "mask_edit",
    "population_level",
    "random_direction",
    "twin_direction_from_images",
]

#: Levels a mask can move a component to: the absent level mu0 (ClArC), or the component's
#: mean over the training split — per class, then averaged (``balanced``), or over all cases
#: (``mean``).
MASK_LEVELS: tuple[str, ...] = ("absent", "balanced", "mean")

#: How a direction can be computed: paired twins, twins made by transplanting the artifact
#: (real images), or one of the CAV probes.
DIRECTION_METHODS: tuple[str, ...] = ("twin", "transplant", *PROBES)


def _flat(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).reshape(len(a), -1)


def direction_from_examples(
    concept: str,
    layer: str,
    model_id: str,
    present: np.ndarray,
    absent: np.ndarray,
    *,
    method: str = "pattern",
    concept_id: str | None = None,
    random_state: int = 0,
) -> ConceptDirection:
    """A concept direction from activations of concept-present and concept-absent examples.

    Parameters
    ----------
    concept, layer, model_id
        What the activations are.
    present, absent
        Activations ``(N, ...)``; for ``method="twin"`` row ``i`` of both is one
        counterfactual pair (same image with and without the concept).
    method
        ``twin`` (mean pair difference), or a CAV probe: ``pattern`` (class-mean difference),
        ``ridge``, ``logistic``, ``sgd``.
    concept_id
        Versioned id (default ``concept``).
    random_state
        Seed of the probe's balanced split.

    Returns
    -------
    ConceptDirection
        Unit vector, ``mu0`` = mean projection of ``absent``, ``mu1`` = of ``present``.
    """
    if method not in DIRECTION_METHODS or method == "transplant":
        raise InterventionError(
            f"unknown direction method {method!r}; use one of {', '.join(DIRECTION_METHODS)} "
            "('transplant' goes through direction_from_twins)"
        )
    P, A = _flat(present), _flat(absent)
    if P.shape[1] != A.shape[1]:
        raise InterventionError(f"present and absent activations differ in width ({P.shape[1]} vs {A.shape[1]})")
    X = np.concatenate([P, A])
    y = np.concatenate([np.ones(len(P), int), np.zeros(len(A), int)])
    try:
        trainer = CAVTrainer("pattern" if method == "twin" else method, random_state=random_state).fit(X, y)
    except ConceptError as exc:
        raise InterventionError(f"concept {concept!r}: {exc}") from exc
    if method == "twin":
        vec, accuracy = _twin_vector(P, A, concept, layer)
    else:
        vec = np.asarray(trainer.vector_, dtype=np.float32)
        accuracy = float(trainer.accuracy_)
    return ConceptDirection(
        concept_id=concept_id or concept,
        concept=concept,
        layer=layer,
        model_id=model_id,
        vector=vec,
        mu0=float(np.mean(A @ vec)),
        mu1=float(np.mean(P @ vec)),
        method=method,
        accuracy=accuracy,
        n_present=len(P),
        n_absent=len(A),
    )


def _twin_vector(P: np.ndarray, A: np.ndarray, concept: str, layer: str) -> tuple[np.ndarray, float]:
    """Unit mean difference of paired rows, and the share of pairs ordered along it."""
    if P.shape != A.shape:
        raise InterventionError(
            f"twin directions need paired examples; got {len(P)} present and {len(A)} absent"
        )
    diff = (P.astype(np.float64) - A.astype(np.float64)).mean(axis=0)
    norm = float(np.linalg.norm(diff))
    if not np.isfinite(norm) or norm == 0.0:
        raise InterventionError(f"concept {concept!r}: the twins do not differ at layer {layer!r}")
    vec = (diff / norm).astype(np.float32)
    return vec, float(np.mean((P - A) @ vec > 0))  # share of pairs ordered along v


def random_direction(
    layer: str, model_id: str, absent: np.ndarray, *, seed: int = 0, present: np.ndarray | None = None,
    name: str = "random",
) -> ConceptDirection:
    """A random unit direction (the control), with levels measured on the given examples."""
    A = _flat(absent)
    rng = np.random.default_rng(seed)
    raw = np.asarray(rng.standard_normal(A.shape[1]), dtype=np.float64)
    vec = (raw / np.linalg.norm(raw)).astype(np.float32)
    mu1 = float(np.mean(_flat(present) @ vec)) if present is not None and len(present) else None
    return ConceptDirection(
        concept_id=f"{name}@seed{seed}",
        concept=name,
        layer=layer,
        model_id=model_id,
        vector=vec,
        mu0=float(np.mean(A @ vec)),
        mu1=mu1,
        method="random",
        n_absent=len(A),
        n_present=0 if present is None else len(present),
    )


# ---------------------------------------------------------------------------------- insertion twins
def insert_artifact(
    images: np.ndarray, artifact: str, *, seed: int = 0, stream_ids: Sequence[int] | np.ndarray | None = None
) -> np.ndarray:
    """Twins of any RGB images with ``artifact`` drawn on (DermSynth's ``draw_artifact``).

    Image ``i`` uses the random stream ``(seed, stream_ids[i])`` (default ``(seed, i)``), so
    the result is reproducible.

    Parameters
    ----------
    images
        ``(N, H, W, 3)`` uint8.
    artifact
        One of ``concepts.ARTIFACTS``.
    seed
        Seed of the placement, shape and colour of the drawn artifacts.
    stream_ids
        One stream id per image (e.g. row numbers, so a subset draws as the whole set).
    """
    from concepts.dermsynth import draw_artifact

    if artifact not in ARTIFACTS:
        raise InterventionError(f"unknown artifact {artifact!r}; valid artifacts are {', '.join(ARTIFACTS)}")
    arr = np.asarray(images)
    ids = list(range(len(arr))) if stream_ids is None else [int(i) for i in stream_ids]
    if len(ids) != len(arr):
        raise InterventionError(f"{len(ids)} stream ids for {len(arr)} images")
    out = np.empty_like(arr)
    for i in range(len(arr)):
        out[i] = draw_artifact(arr[i], artifact, np.random.default_rng([int(seed), ids[i]]))
    return out


def twin_direction_from_images(
    model: ClassifierModel,
    images: np.ndarray,
    artifact: str,
    layer: str,
    *,
    seed: int = 0,
    batch_size: int = 64,
    concept_id: str | None = None,
) -> ConceptDirection:
    """Twin-difference direction of an artifact on any images: ``mean(h(twin) - h(original))``.

    The twins are made with :func:`insert_artifact`; ``mu0`` is the mean projection of the
    originals, ``mu1`` of the twins.
    """
    model.check_layer(layer)
    twins = insert_artifact(images, artifact, seed=seed)
    h0 = extract_activations(model, np.asarray(images), [layer], batch_size=batch_size)[layer]
    h1 = extract_activations(model, twins, [layer], batch_size=batch_size)[layer]
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:8]
    return direction_from_examples(
        artifact, layer, model.model_id, h1, h0, method="twin",
        concept_id=concept_id or f"{artifact}@insert-{digest}-s{seed}",
    )


def _twin_acts(
    model: ClassifierModel, images: np.ndarray, layer: str, name: str, cache: ActivationCache | None,
    progress: ProgressFn | None,
) -> np.ndarray:
    arr = np.asarray(images)
    if cache is not None:
        iset = ImageSet(name=name, images=arr, key=hash_array(arr, name))
        return np.asarray(cache.get(model, layer, iset, progress=progress)[layer])
    return extract_activations(model, arr, [layer], progress=progress)[layer]


def direction_from_twins(
    model: ClassifierModel,
    images: np.ndarray,
    twin_sets: Sequence[TwinSet],
    layer: str,
    *,
    concept: str | None = None,
    concept_id: str | None = None,
    cache: ActivationCache | None = None,
    progress: ProgressFn | None = None,
) -> ConceptDirection:
    """Twin-difference direction of an artifact from real twins: the mean of
    ``h(with artifact) - h(without)`` over every pair (add twins: twin minus original; remove
    twins: original minus twin).

    Parameters
    ----------
    model, layer
        Where the activations come from.
    images
        The data set's images (the originals are ``images[twin_set.rows]``).
    twin_sets
        Twins of one artifact (:func:`concepts.bank.real_twins`).
    concept, concept_id
        Name (default: the twins' artifact) and versioned id of the direction.
    cache, progress
        Activation cache and progress callback.

    Returns
    -------
    ConceptDirection
        ``method="transplant"`` (or ``"twin"`` when every pair was user-supplied); ``mu0`` /
        ``mu1`` the mean projections of the artifact-free / artifact-carrying sides;
        ``accuracy`` the share of pairs ordered along the direction.
    """
    model.check_layer(layer)
    sets = [t for t in twin_sets if len(t)]
    if not sets:
        raise InterventionError("no twins to compute a direction from (every twin set is empty)")
    arts = {t.artifact for t in sets}
    if len(arts) != 1:
        raise InterventionError(f"twins of one artifact only, got {sorted(arts)}")
    present, absent = [], []
    for t in sets:
        h_orig = _twin_acts(model, np.asarray(images)[t.rows], layer, f"twin-originals:{t.key}", cache, progress)
        h_twin = _twin_acts(model, t.images, layer, f"twins:{t.key}:{t.method}", cache, progress)
        on, off = (h_twin, h_orig) if t.direction == "add" else (h_orig, h_twin)
        present.append(_flat(on))
        absent.append(_flat(off))
    name = concept or next(iter(arts))
    method = "twin" if all(t.method.startswith("pairs") for t in sets) else "transplant"
    tag = ",".join(sorted({t.method for t in sets})).encode()
    digest = hashlib.sha256(tag + b"".join(np.asarray(t.rows).tobytes() for t in sets)).hexdigest()[:8]
    d = direction_from_examples(
        name, layer, model.model_id, np.concatenate(present), np.concatenate(absent), method="twin",
        concept_id=concept_id or f"{name}@{method}-{digest}",
    )
    return replace(d, method=method)


def population_level(
    model: ClassifierModel,
    direction: ConceptDirection,
    dataset: Dataset,
    *,
    split: str = "train",
    balanced: bool = True,
    cache: ActivationCache | None = None,
    progress: ProgressFn | None = None,
) -> float:
    """Mean component ``h·v / (v·v)`` of a split's cases at the direction's layer (the
    per-class means averaged when ``balanced``): the level the model saw on average in
    training, so that masking to it leaves the head's mean logit where it was fitted."""
    rows = dataset.indices(split)
    if len(rows) == 0:
        raise InterventionError(f"split {split!r} of {dataset.info.name!r} is empty")
    layer = direction.layer
    if cache is not None:
        iset = dataset.image_set(rows, name=f"{dataset.info.name}:{split}")
        h = np.asarray(cache.get(model, layer, iset, progress=progress)[layer])
    else:
        h = extract_activations(model, np.asarray(dataset.images[rows]), [layer], progress=progress)[layer]
    comp = direction.project(h)
    if not balanced:
        return float(comp.mean())
    y = dataset.labels(rows)
    return float(np.mean([comp[y == k].mean() for k in np.unique(y)]))


def mask_edit(
    model: ClassifierModel,
    direction: ConceptDirection,
    level: str = "absent",
    *,
    dataset: Dataset | None = None,
    split: str = "train",
    cache: ActivationCache | None = None,
    strength: float = 1.0,
    progress: ProgressFn | None = None,
) -> ConceptEdit:
    """A mask of ``direction``: to its absent level (``mask``), or to the component's training
    level (``balanced``/``mean``: a ``set`` edit to that number, see :func:`population_level`).

    Mean-ablation keeps a head calibrated: its intercept was fitted with the artifact present
    at the training rate, so moving every case to the clean level shifts all of them toward
    the classes the artifact did not mark.
    """
    if level not in MASK_LEVELS:
        raise InterventionError(f"unknown mask level {level!r}; use one of {', '.join(MASK_LEVELS)}")
    if level == "absent":
        return ConceptEdit(direction, "mask", strength)
    if dataset is None:
        raise InterventionError(f"mask level {level!r} needs the data set whose {split!r} split sets it")
    lv = population_level(model, direction, dataset, split=split, balanced=level == "balanced", cache=cache,
                          progress=progress)
    return ConceptEdit(direction, "set", strength, round(lv, 6))
