"""Choosing a concept's examples: rows of a data set matched per class, a random pool, the rows of
DermSynth-style concept sets, twins made with the data set's own masks, and a folder of images.

Every function here only selects (seeded, deterministic); :class:`concepts.bank.ConceptBank`
turns the selection into example sets and concepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from concepts._errors import ConceptError, DataError
from concepts.bank._concept import MIN_EXAMPLES
from concepts.bank._twins import real_twins
from concepts.data import ARTIFACTS, CRITERIA, Dataset, load_image_rgb

__all__ = [
    "FOLDER_SUFFIXES",
    "ConceptSetRows",
    "column_rows",
    "concept_set_rows",
    "matched_negatives",
    "pool_rows",
    "read_folder",
    "twin_examples",
]

#: Image file suffixes :meth:`ConceptBank.add_from_folder` reads.
FOLDER_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def read_folder(folder: str | Path, size: int) -> np.ndarray:
    """All images directly in ``folder`` as ``(N, size, size, 3)`` uint8 (sorted by name)."""
    root = Path(folder)
    if not root.is_dir():
        raise ConceptError(f"{root} is not a folder — give a folder of example images")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES)
    if not files:
        raise ConceptError(
            f"no images in {root} (looked for {', '.join(FOLDER_SUFFIXES)}) — put example images there"
        )
    return np.stack([load_image_rgb(p, size) for p in files])


def matched_negatives(dataset: Dataset, positive_ids: Sequence[str], seed: int) -> list[str]:
    """Other cases of ``dataset`` with the same class counts as the positives (as far as they go)."""
    ids = dataset.cases["case_id"].astype(str).to_numpy()
    labels = dataset.labels(np.arange(len(ids)))
    is_pos = np.isin(ids, list(positive_ids))
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for k, n in enumerate(np.bincount(labels[is_pos], minlength=len(dataset.classes))):
        pool = np.flatnonzero(~is_pos & (labels == k))
        out += ids[rng.choice(pool, min(int(n), len(pool)), replace=False)].tolist()
    if len(out) < MIN_EXAMPLES:
        raise ConceptError(
            f"only {len(out)} class-matched negatives available — the data set has too few other cases"
        )
    return out


def twin_examples(
    dataset: Dataset, column: str, split: str | None, max_examples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``max_examples`` add-twins of clean ``split`` rows and the rows they were made from."""
    idx = dataset.indices(split) if split is not None else np.arange(len(dataset))
    try:
        sets = real_twins(dataset, idx, column, seed=seed)
    except DataError as exc:
        raise ConceptError(f"column {column!r}: {exc}") from None
    add = next((t for t in sets if t.direction == "add"), None)
    if add is None or len(add) < 10:
        raise ConceptError(
            f"column {column!r}: the data set has no twin or mask column for it, or fewer than 10 clean "
            f"cases in split {split!r} — import a `{column}_twin` or `mask` column (see docs/importers.md)"
        )
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(add), min(max_examples, len(add)), replace=False))
    return np.asarray(add.images[pick]), np.asarray(add.rows[pick], dtype=np.int64)


def column_rows(dataset: Dataset, column: str, split: str | None, max_per_class: int, seed: int,
                equalize_classes: bool) -> tuple[np.ndarray, np.ndarray]:
    """Positive (column = 1) and negative (column = 0) rows of ``split``, the same number per class.

    Raises
    ------
    ConceptError
        Fewer than 10 class-matched pairs.
    """
    idx = dataset.indices(split) if split is not None else np.arange(len(dataset))
    labels = dataset.labels(idx)
    flag = dataset.cases[column].to_numpy()[idx].astype(int)
    rng = np.random.default_rng(seed)
    per_class = []
    for k in range(len(dataset.classes)):
        pk = idx[(labels == k) & (flag == 1)]
        nk = idx[(labels == k) & (flag == 0)]
        per_class.append((pk, nk, min(len(pk), len(nk), max_per_class)))
    equal = min(n for _, _, n in per_class)
    pos_rows: list[np.ndarray] = []
    neg_rows: list[np.ndarray] = []
    for pk, nk, n in per_class:
        take = equal if equalize_classes and equal >= 10 else n
        pos_rows.append(rng.choice(pk, take, replace=False) if take else pk[:0])
        neg_rows.append(rng.choice(nk, take, replace=False) if take else nk[:0])
    pos = np.sort(np.concatenate(pos_rows))
    neg = np.sort(np.concatenate(neg_rows))
    if len(pos) < 10:
        raise ConceptError(
            f"column {column!r}: only {len(pos)} class-matched positive/negative pairs in split "
            f"{split!r} — a CAV needs at least 10; annotate more cases or use another split"
        )
    return pos, neg


def pool_rows(dataset: Dataset, split: str | None, size: int, seed: int,
              exclude_case_ids: Iterable[str]) -> np.ndarray:
    """Up to ``size`` rows of ``split``, balanced across classes, without ``exclude_case_ids``."""
    idx = dataset.indices(split) if split is not None else np.arange(len(dataset))
    skip = set(map(str, exclude_case_ids))
    if skip:
        ids = dataset.cases["case_id"].astype(str).to_numpy()[idx]
        idx = idx[~np.isin(ids, list(skip))]
    if len(idx) == 0:
        raise ConceptError(
            f"no cases left for the random pool in split {split!r} — use another split or fewer "
            "concept examples"
        )
    labels = dataset.labels(idx)
    rng = np.random.default_rng(seed)
    k = len(dataset.classes)
    per = max(1, size // k)
    rows = [rng.permutation(idx[labels == c])[:per] for c in range(k)]
    return np.sort(np.concatenate(rows))


@dataclass(frozen=True)
class ConceptSetRows:
    """The rows of one concept set of a concept-sets data set."""

    name: str
    positive: np.ndarray
    negative: np.ndarray
    twins: bool  # negatives pair up with the positives (counterfactual twins)


def concept_set_rows(dataset: Dataset) -> tuple[list[ConceptSetRows], np.ndarray]:
    """Every concept set with positives (criteria, then artifacts, then the rest in order of
    appearance) and the rows of the ``random`` set.

    Raises
    ------
    DataError
        A data set without ``concept_set`` and ``polarity`` columns.
    """
    cases = dataset.cases
    for col in ("concept_set", "polarity"):
        if col not in cases.columns:
            raise DataError(
                f"{dataset.info.name!r} is not a concept-sets data set (no {col!r} column)"
            )
    sets = cases["concept_set"].astype(str).to_numpy()
    pol = cases["polarity"].astype(str).to_numpy()
    order = [c for c in (*CRITERIA, *ARTIFACTS) if c in set(sets)]
    order += [s for s in dict.fromkeys(sets.tolist()) if s not in order and s != "random"]
    out = []
    for name in order:
        pos = np.flatnonzero((sets == name) & (pol == "positive"))
        neg = np.flatnonzero((sets == name) & (pol == "negative"))
        if len(pos) == 0:
            continue
        twins = False
        if "pair" in cases.columns and len(pos) == len(neg):
            pairs = cases["pair"].to_numpy()
            twins = bool(np.array_equal(pairs[pos], pairs[neg]) and (pairs[pos] >= 0).all())
        out.append(ConceptSetRows(name, pos, neg, twins))
    return out, np.flatnonzero(sets == "random")
