"""The default banks: from DermSynth-style concept sets, from annotated 0/1 columns, and the
workspace's bank (loaded, or the default built and saved). :class:`ConceptBank`'s class methods
``from_concept_sets``, ``from_columns`` and ``for_workspace`` call these.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from concepts._errors import ConceptError
from concepts.bank._concept import CONCEPT_DESCRIPTIONS, Concept, ExampleSet, default_group
from concepts.bank._selection import concept_set_rows
from concepts.data import Dataset

if TYPE_CHECKING:
    from concepts.bank._bank import ConceptBank

__all__ = ["MIN_POOL", "fill_from_columns", "fill_from_concept_sets", "workspace_bank"]

#: Fewest cases left outside the concept sets for :meth:`ConceptBank.from_columns` to draw the
#: random pool from them alone.
MIN_POOL = 60


def fill_from_concept_sets(bank: ConceptBank, dataset: Dataset, counterpart: str) -> ConceptBank:
    """Every concept set of ``dataset`` as a concept of the (empty) ``bank``, its ``random`` rows as the pool."""
    sets, random_rows = concept_set_rows(dataset)
    bank.register_dataset(dataset)
    for cs in sets:
        has_neg = len(cs.negative) > 0
        bank.add(Concept(
            cs.name, default_group(cs.name), CONCEPT_DESCRIPTIONS.get(cs.name, cs.name),
            ExampleSet.from_rows(dataset, cs.positive),
            ExampleSet.from_rows(dataset, cs.negative) if has_neg else None,
            counterpart if has_neg else "random",
            twins=cs.twins,
            origin="concept-sets",
        ))
    if len(random_rows):
        bank.random_pool = ExampleSet.from_rows(dataset, random_rows)
    return bank


def fill_from_columns(bank: ConceptBank, dataset: Dataset, columns: Sequence[str] | None, split: str | None,
                      max_per_class: int, pool_size: int, seed: int) -> ConceptBank:
    """A concept of the (empty) ``bank`` per annotated column, and a random pool (see ``from_columns``)."""
    cols = list(columns) if columns is not None else [*dataset.info.concepts, *dataset.info.artifacts]
    for i, col in enumerate(cols):
        try:
            bank.add_from_column(dataset, col, split=split, max_per_class=max_per_class, seed=seed + i)
        except ConceptError:
            if columns is not None:
                raise
    used = {c for con in bank for ex in (con.positive, con.negative) if ex is not None for c in ex.case_ids}
    idx = dataset.indices(split) if split is not None else np.arange(len(dataset))
    free = set(dataset.cases["case_id"].astype(str).to_numpy()[idx]) - used
    bank.set_random_pool_from_dataset(dataset, split=split, size=pool_size, seed=seed,
                                      exclude_case_ids=used if len(free) >= MIN_POOL else ())
    return bank


def workspace_bank(cls: type[ConceptBank], workspace: Any, rebuild: bool) -> ConceptBank:
    """The workspace's bank (see ``ConceptBank.for_workspace``)."""
    root = Path(workspace.concepts_dir)
    ddir = Path(workspace.datasets_dir)
    if (root / cls.FILE).is_file() and not rebuild:
        return cls.load(root, datasets_dir=ddir)
    sets = workspace.concept_sets()
    if sets is not None:
        bank = cls.from_concept_sets(sets, root=root, datasets_dir=ddir)
        if bank.random_pool is None:
            bank.set_random_pool_from_dataset(workspace.dataset())
    else:
        bank = cls.from_columns(workspace.dataset(), root=root, datasets_dir=ddir)
    if len(bank) == 0:
        raise ConceptError(
            f"no concepts could be built for {workspace.root}: the data set has no annotated "
            "concept columns — add concepts with ConceptBank.add_from_cases/add_from_images"
        )
    bank.save()
    return bank
