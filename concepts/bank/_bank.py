"""The concept bank: named concepts with their example sets, persisted in the workspace.

A :class:`Concept` has a name, a group (``criterion`` for the 7-point checklist, ``artifact``,
``custom``), a description, a positive :class:`ExampleSet` and optionally an explicit negative
set ("concept absent"). Its CAVs are trained against random counterparts (default) or against
the explicit negatives (``counterpart="negative"``).

Example sets either point at rows of a data set (by case id, pinned to the data set's content
hash) or hold an image array stored next to the bank (``<bank dir>/arrays/<sha>.npy``). A concept's
id hashes its name, group, example keys and counterpart: changing a concept's examples changes
its id, so CAVs cached under the old id are never reused.

The bank file is ``<workspace>/concepts/bank.json``; each save that changes the content bumps
its ``revision``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concepts._errors import ConceptError
from concepts.bank._bank_files import read_bank_file, write_array, write_bank_file
from concepts.bank._concept import (
    CONCEPT_DESCRIPTIONS,
    CONFOUNDING_TOLERANCE,
    Concept,
    ExampleSet,
    default_group,
    label_confounding,
)
from concepts.bank._default_banks import (
    fill_from_columns,
    fill_from_concept_sets,
    workspace_bank,
)
from concepts.bank._selection import (
    column_rows,
    matched_negatives,
    pool_rows,
    read_folder,
    twin_examples,
)
from concepts.data import Dataset, ImageSet, hash_array

__all__ = [
    "ConceptBank",
]


class ConceptBank:
    """An ordered collection of :class:`Concept` plus the pool random counterparts are drawn from.

    Parameters
    ----------
    concepts
        Initial concepts.
    random_pool
        Example set that random counterparts are drawn from (``None``: none yet).
    root
        Bank directory (``<workspace>/concepts``); image arrays are stored under ``root/arrays``.
        ``None`` keeps arrays in memory until :meth:`save` is given a path.
    datasets_dir
        Where data sets referenced by name are loaded from (``<workspace>/datasets``).
    """

    FILE = "bank.json"

    def __init__(
        self,
        concepts: Iterable[Concept] = (),
        *,
        random_pool: ExampleSet | None = None,
        root: str | Path | None = None,
        datasets_dir: str | Path | None = None,
    ):
        self._concepts: dict[str, Concept] = {}
        for c in concepts:
            self.add(c)
        self.random_pool = random_pool
        self.root = Path(root) if root is not None else None
        self.datasets_dir = Path(datasets_dir) if datasets_dir is not None else None
        self.revision = 0
        self._datasets: dict[str, Dataset] = {}
        self._arrays: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- collection
    def __iter__(self) -> Iterator[Concept]:
        return iter(self._concepts.values())

    def __len__(self) -> int:
        return len(self._concepts)

    def __contains__(self, name: object) -> bool:
        return name in self._concepts

    def __getitem__(self, name: str) -> Concept:
        try:
            return self._concepts[name]
        except KeyError:
            raise ConceptError(
                f"no concept {name!r} in the bank; known: {', '.join(self._concepts) or '(none)'}"
            ) from None

    @property
    def names(self) -> list[str]:
        return list(self._concepts)

    def add(self, concept: Concept, *, replace: bool = False) -> Concept:
        """Add a concept; an existing name needs ``replace=True`` (its id then changes)."""
        if concept.name in self._concepts and not replace:
            raise ConceptError(
                f"concept {concept.name!r} already exists — pass replace=True to change its examples"
            )
        self._concepts[concept.name] = concept
        return concept

    def remove(self, name: str) -> Concept:
        """Remove and return a concept."""
        c = self[name]
        del self._concepts[name]
        return c

    def register_dataset(self, dataset: Dataset) -> None:
        """Make a loaded data set resolvable by name (no reload from disk)."""
        self._datasets[dataset.info.name] = dataset

    # ---------------------------------------------------------------- adding
    def add_from_cases(
        self,
        name: str,
        group: str,
        description: str,
        dataset: Dataset,
        positive_case_ids: Sequence[str],
        negative_case_ids: Sequence[str] | None = None,
        *,
        counterpart: str | None = None,
        replace: bool = False,
        match_classes: bool = False,
        seed: int = 0,
    ) -> Concept:
        """A concept from cases of a data set (e.g. a cluster a human has named, cases picked in the UI).

        ``counterpart`` defaults to ``"negative"`` when negatives are given, else ``"random"``.
        ``match_classes`` (without explicit negatives): draw, from the other cases of the data
        set, negatives with the positives' class mix (one per positive where the class has
        enough cases), so the CAV cannot separate the label instead of the concept.
        """
        self.register_dataset(dataset)
        pos = ExampleSet.from_cases(dataset, positive_case_ids)
        if match_classes and negative_case_ids is None:
            negative_case_ids = matched_negatives(dataset, pos.case_ids, seed)
        neg = ExampleSet.from_cases(dataset, negative_case_ids) if negative_case_ids is not None else None
        cp = counterpart or ("negative" if neg is not None else "random")
        return self.add(Concept(name, group, description, pos, neg, cp, origin="cases"), replace=replace)

    def add_from_images(
        self,
        name: str,
        group: str,
        description: str,
        images: np.ndarray,
        negative_images: np.ndarray | None = None,
        *,
        counterpart: str | None = None,
        replace: bool = False,
    ) -> Concept:
        """A concept from uint8 image arrays ``(N, H, W, 3)`` (stored with the bank)."""
        pos = self._store_array(images)
        neg = self._store_array(negative_images) if negative_images is not None else None
        cp = counterpart or ("negative" if neg is not None else "random")
        return self.add(Concept(name, group, description, pos, neg, cp, origin="images"), replace=replace)

    def add_from_folder(
        self,
        name: str,
        folder: str | Path,
        *,
        image_size: int,
        group: str = "custom",
        description: str = "",
        negative_folder: str | Path | None = None,
        replace: bool = False,
    ) -> Concept:
        """A concept from a folder of the user's own example images (e.g. crops of ink marks).

        Every image file directly in ``folder`` (see :data:`FOLDER_SUFFIXES`) is centre-cropped
        to a square of ``image_size`` px and stored with the bank. Without ``negative_folder``
        the CAVs train against random counterparts; with it, against those images.
        """
        pos = self._store_array(read_folder(folder, image_size))
        neg = (self._store_array(read_folder(negative_folder, image_size))
               if negative_folder is not None else None)
        desc = description or f"example images from {Path(folder).name}"
        cp = "negative" if neg is not None else "random"
        return self.add(Concept(name, group, desc, pos, neg, cp, origin="folder"), replace=replace)

    def add_from_column(
        self,
        dataset: Dataset,
        column: str,
        *,
        name: str | None = None,
        group: str | None = None,
        description: str | None = None,
        split: str | None = "train",
        max_per_class: int = 100,
        counterpart: str = "negative",
        seed: int = 0,
        replace: bool = False,
        equalize_classes: bool = False,
    ) -> Concept:
        """A concept from an annotated 0/1 column, matched per class.

        Within every class the same number of positive (column = 1) and negative (column = 0)
        cases is drawn (at most ``max_per_class`` each), so the positive and negative sets have
        the same class mix and the CAV cannot learn the label instead of the concept.
        ``equalize_classes`` also gives every class the same count (where each has at least 10),
        at the price of fewer examples when a class rarely shows the concept (a marker on 5 % of
        the benign cases). The CAVs train against
        these matched negatives (``counterpart="negative"``, default): against random images a
        concept whose positives are mostly one class would again separate the label. TCAV
        draws a fresh class-matched half of both sides in each run.
        """
        if column not in dataset.cases.columns:
            raise ConceptError(f"data set {dataset.info.name!r} has no column {column!r}")
        self.register_dataset(dataset)
        pos, neg = column_rows(dataset, column, split, max_per_class, seed, equalize_classes)
        cname = name or column
        concept = Concept(
            cname, group or default_group(column), description or CONCEPT_DESCRIPTIONS.get(column, column),
            ExampleSet.from_rows(dataset, pos), ExampleSet.from_rows(dataset, neg),
            counterpart, origin="column",
        )
        return self.add(concept, replace=replace)

    def add_from_twins(
        self,
        dataset: Dataset,
        column: str,
        *,
        name: str | None = None,
        description: str | None = None,
        split: str | None = "train",
        max_examples: int = 400,
        seed: int = 0,
        replace: bool = False,
    ) -> Concept:
        """An artifact concept from counterfactual twins made with the data set's own masks.

        Clean cases of ``split`` (``column`` = 0) get the artifact pasted in from a marked case's
        mask (:func:`~concepts.bank.real_twins`: a twin column first, else a mask column); the twins
        are the positives and the *same* clean cases the negatives. Both sides hold the same
        lesions and classes, so the only thing a CAV can separate is the artifact itself — the
        column-matched concept (:meth:`add_from_column`) has to learn it across different lesions
        from the few cases where one class lacks it. TCAV keeps the pairs together.

        Raises
        ------
        ConceptError
            If the column is missing, or the data set has no twin or mask column for it, or
            fewer than 10 twins can be made.
        """
        if column not in dataset.cases.columns:
            raise ConceptError(f"data set {dataset.info.name!r} has no column {column!r}")
        self.register_dataset(dataset)
        pos_images, rows = twin_examples(dataset, column, split, max_examples, seed)
        concept = Concept(
            name or f"{column}_twins", default_group(column),
            description or f"{CONCEPT_DESCRIPTIONS.get(column, column)} (pasted into clean cases)",
            self._store_array(pos_images), ExampleSet.from_rows(dataset, rows), "negative",
            twins=True, origin="twins",
        )
        return self.add(concept, replace=replace)

    def set_random_pool_from_dataset(
        self,
        dataset: Dataset,
        *,
        split: str | None = "train",
        size: int = 500,
        seed: int = 0,
        exclude_case_ids: Iterable[str] = (),
    ) -> ExampleSet:
        """Use up to ``size`` cases of ``dataset``, balanced across classes, as the random pool.

        ``exclude_case_ids`` (e.g. the cases of the concept sets) are left out of the pool.
        """
        self.register_dataset(dataset)
        rows = pool_rows(dataset, split, size, seed, exclude_case_ids)
        self.random_pool = ExampleSet.from_rows(dataset, rows)
        return self.random_pool

    # ---------------------------------------------------------------- default banks
    @classmethod
    def from_concept_sets(
        cls,
        dataset: Dataset,
        *,
        counterpart: str = "random",
        root: str | Path | None = None,
        datasets_dir: str | Path | None = None,
    ) -> ConceptBank:
        """The default bank from a DermSynth concept-sets data set (``kind`` ``dermsynth-concepts``).

        Every ``concept_set`` other than ``random`` becomes a concept (positives: polarity
        ``positive``; explicit negatives: polarity ``negative``); the ``random`` rows become the
        random pool. Negatives whose ``pair`` column matches the positives' are marked as
        counterfactual twins (kept together in held-out splits).
        """
        return fill_from_concept_sets(cls(root=root, datasets_dir=datasets_dir), dataset, counterpart)

    @classmethod
    def from_columns(
        cls,
        dataset: Dataset,
        columns: Sequence[str] | None = None,
        *,
        split: str | None = "train",
        max_per_class: int = 100,
        pool_size: int = 500,
        seed: int = 0,
        root: str | Path | None = None,
        datasets_dir: str | Path | None = None,
    ) -> ConceptBank:
        """A bank from annotated 0/1 columns of any data set (balanced across classes).

        Columns with too few class-matched examples are skipped. Every concept trains against
        its class-matched negatives. The random pool (for the random-vs-random baseline, and
        for concepts trained against random counterparts) is drawn from the same split,
        balanced across classes, from the cases no concept set uses when at least
        :data:`MIN_POOL` remain (else from the whole split; TCAV still never draws a concept's
        own examples against it).
        """
        bank = cls(root=root, datasets_dir=datasets_dir)
        return fill_from_columns(bank, dataset, columns, split, max_per_class, pool_size, seed)

    # ---------------------------------------------------------------- resolving
    def dataset(self, name: str) -> Dataset:
        """A referenced data set (registered, or loaded from ``datasets_dir``)."""
        if name not in self._datasets:
            if self.datasets_dir is None:
                raise ConceptError(
                    f"the bank references data set {name!r} but does not know where data sets live "
                    "— load it with ConceptBank.load(path, datasets_dir=...) or register_dataset()"
                )
            self._datasets[name] = Dataset.load(self.datasets_dir / name)
        return self._datasets[name]

    def _rows(self, ex: ExampleSet) -> tuple[Dataset, np.ndarray]:
        ds = self.dataset(ex.dataset)
        if ex.dataset_hash and ds.info.content_hash and ex.dataset_hash != ds.info.content_hash:
            raise ConceptError(
                f"data set {ex.dataset!r} changed since this example set was made — rebuild the "
                "concept (its examples may no longer exist)"
            )
        pos = pd.Series(np.arange(len(ds.cases)), index=ds.cases["case_id"].astype(str))
        return ds, pos.loc[list(ex.case_ids)].to_numpy()

    def image_set(self, ex: ExampleSet, name: str = "") -> ImageSet:
        """The images of an example set, keyed for the activation cache."""
        if ex.source == "dataset":
            ds, rows = self._rows(ex)
            return ds.image_set(rows, name=name or f"{ex.dataset}:{ex.key[:8]}")
        arr = self._load_array(ex)
        return ImageSet(name=name or f"array:{ex.key[:8]}", images=arr, key=ex.key)

    def labels(self, ex: ExampleSet) -> np.ndarray | None:
        """Class indices of the examples (``None`` for image arrays, which carry no labels)."""
        if ex.source != "dataset":
            return None
        ds, rows = self._rows(ex)
        return ds.labels(rows)

    def n_classes(self) -> int:
        """Number of classes of the referenced data sets (2 when unknown)."""
        for ex in self._example_sets():
            if ex.source == "dataset":
                return len(self.dataset(ex.dataset).classes)
        return 2

    def _example_sets(self) -> Iterator[ExampleSet]:
        for c in self:
            yield c.positive
            if c.negative is not None:
                yield c.negative
        if self.random_pool is not None:
            yield self.random_pool

    def confounding(self, concept: Concept) -> float | None:
        """Class-share difference between the concept's positives and what its CAVs train against."""
        pos = self.labels(concept.positive)
        other = concept.negative if concept.counterpart == "negative" else self.random_pool
        neg = self.labels(other) if other is not None else None
        return label_confounding(pos, neg, self.n_classes())

    def check_balance(self, concept: Concept, tolerance: float = CONFOUNDING_TOLERANCE) -> str | None:
        """A warning when the concept's example sets are confounded with the label, else ``None``."""
        if concept.twins:
            return None
        diff = self.confounding(concept)
        if diff is None or diff <= tolerance:
            return None
        return (
            f"concept {concept.name!r}: its positive examples and its {concept.negative_name} "
            f"counterpart differ in class share by {diff:.2f} — the CAV may encode the label "
            "instead of the concept; rebuild it balanced across classes (add_from_column) or "
            "from counterfactual twins"
        )

    # ---------------------------------------------------------------- arrays
    def _store_array(self, images: np.ndarray) -> ExampleSet:
        arr = np.ascontiguousarray(np.asarray(images, dtype=np.uint8))
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ConceptError(f"example images must be (N, H, W, 3) uint8, got shape {arr.shape}")
        key = hash_array(arr)[:32]
        fname = f"{key}.npy"
        self._arrays[fname] = arr
        if self.root is not None:
            write_array(self.root, fname, arr)
        return ExampleSet("array", key, len(arr), array=fname)

    def _load_array(self, ex: ExampleSet) -> np.ndarray:
        if ex.array in self._arrays:
            return self._arrays[ex.array]
        if self.root is None or not (self.root / "arrays" / ex.array).is_file():
            raise ConceptError(f"the images of example set {ex.key[:8]} are missing — re-add the concept")
        arr = np.load(self.root / "arrays" / ex.array)
        self._arrays[ex.array] = arr
        return arr  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- persistence
    def to_json(self) -> dict[str, Any]:
        return {
            "format": "concept-bank/1",
            "revision": self.revision,
            "concepts": [c.to_json() for c in self],
            "random_pool": self.random_pool.to_json() if self.random_pool is not None else None,
        }

    def save(self, path: str | Path | None = None) -> Path:
        """Write ``bank.json`` (atomic) and any in-memory arrays; bumps ``revision`` on change."""
        if path is not None:
            p = Path(path)
            if p.suffix != ".json":
                p = p / self.FILE
            self.root = p.parent
        elif self.root is not None:
            p = self.root / self.FILE
        else:
            raise ConceptError("the bank has no directory — pass a path to save()")
        p.parent.mkdir(parents=True, exist_ok=True)
        for fname, arr in self._arrays.items():
            write_array(p.parent, fname, arr)
        self.revision = write_bank_file(p, self.to_json(), self.revision)
        return p

    @classmethod
    def load(cls, path: str | Path, *, datasets_dir: str | Path | None = None) -> ConceptBank:
        """Read a bank saved by :meth:`save` (``path``: the file or its directory)."""
        p = Path(path)
        if p.is_dir() or p.suffix != ".json":
            p = p / cls.FILE
        concepts, pool, revision = read_bank_file(p)
        bank = cls(concepts, random_pool=pool, root=p.parent, datasets_dir=datasets_dir)
        bank.revision = revision
        return bank

    @classmethod
    def for_workspace(cls, workspace: Any, *, rebuild: bool = False) -> ConceptBank:
        """The workspace's bank: ``concepts/bank.json``, or the default bank built and saved.

        The default comes from the workspace's DermSynth concept sets when it has them, else
        from the annotated columns of its active data set.
        """
        return workspace_bank(cls, workspace, rebuild)

    def with_counterpart(self, counterpart: str) -> ConceptBank:
        """A copy whose concepts with explicit negatives all train against ``counterpart``."""
        out = ConceptBank(
            [replace(c, counterpart=counterpart) if c.negative is not None else c for c in self],
            random_pool=self.random_pool, root=self.root, datasets_dir=self.datasets_dir,
        )
        out._datasets = dict(self._datasets)
        out._arrays = dict(self._arrays)
        return out
