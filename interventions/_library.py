"""A workspace's concept bank as concept directions: :class:`ConceptLibrary` picks the
method per concept (twins where the bank has them, a transplant from real images, else a CAV
probe), caches the activations and the directions, and finds the best layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from concepts import (
    ActivationCache,
    ClassifierModel,
    ConceptError,
    WorkbenchError,
    Workspace,
    extract_activations,
)
from concepts.bank import Concept, ConceptBank, ExampleSet, find_twin_columns, real_twins
from interventions._directions import (
    DIRECTION_METHODS,
    ProgressFn,
    direction_from_examples,
    direction_from_twins,
)
from interventions._spec import ConceptDirection, InterventionError

__all__ = ["ConceptLibrary"]


@dataclass(frozen=True)
class _DirectionKey:
    """A memoised direction: concept id, layer and method."""

    concept_id: str
    layer: str
    method: str


class ConceptLibrary:
    """Concept directions of one model, from the concept bank's example sets.

    A concept's direction at a layer is computed from its positive examples and its explicit
    negatives (the bank's random pool when it has none); its id is the bank's versioned concept
    id, which pins the example sets. Activations go through the activation cache when given.

    Parameters
    ----------
    model
        The model.
    bank
        The concept bank (``concepts.bank._bank.ConceptBank``).
    cache
        Activation cache (None: activations computed in memory).
    method
        Default direction method, one of :data:`DIRECTION_METHODS` (``twin`` needs
        counterfactual-twin example sets).
    progress
        Progress callback for activation extraction.
    """

    def __init__(
        self,
        model: ClassifierModel,
        bank: ConceptBank,
        *,
        cache: ActivationCache | None = None,
        method: str = "pattern",
        progress: ProgressFn | None = None,
    ):
        if method not in DIRECTION_METHODS:
            raise InterventionError(
                f"unknown direction method {method!r}; use one of {', '.join(DIRECTION_METHODS)}"
            )
        self.model = model
        self.bank = bank
        self.cache = cache
        self.method = method
        self.progress = progress
        self._memo: dict[_DirectionKey, ConceptDirection] = {}

    @classmethod
    def for_workspace(
        cls, workspace: Workspace, model: ClassifierModel | None = None, *, method: str = "pattern",
        progress: ProgressFn | None = None,
    ) -> ConceptLibrary:
        """The workspace's bank (built from its concept sets when missing) and cache."""
        try:
            bank = ConceptBank.for_workspace(workspace)
        except ConceptError as exc:
            raise InterventionError(str(exc)) from exc
        return cls(model or workspace.model(), bank, cache=workspace.activation_cache,
                   method=method, progress=progress)

    @property
    def concepts(self) -> list[str]:
        """Concept names of the bank."""
        return self.bank.names

    def concept(self, key: str) -> Concept:
        """A bank concept by name, versioned id, or ``name@id``.

        Raises
        ------
        InterventionError
            Unknown concept, or an id that no longer matches the bank (examples changed).
        """
        name, _, version = key.partition("@")
        for c in self.bank:
            if key == c.id:
                return c
        if name not in self.bank:
            raise InterventionError(
                f"unknown concept {key!r}; the concept bank has {', '.join(self.concepts) or '(none)'}"
            )
        c = self.bank[name]
        if version and version != c.id:
            raise InterventionError(
                f"concept {name!r} is now version {c.id}, not {version} — its examples changed; "
                "re-create the spec from the current concept"
            )
        return c

    def _is_twins(self, c: Concept) -> bool:
        neg = c.negative
        if neg is None or len(neg) != len(c.positive):
            return False
        if c.twins:
            return True
        if c.positive.source != "dataset" or neg.source != "dataset" or neg.dataset != c.positive.dataset:
            return False
        ds = self.bank.dataset(c.positive.dataset)
        if "pair" not in ds.cases.columns or "concept_set" not in ds.cases.columns:
            return False
        table = ds.cases.set_index(ds.cases["case_id"].astype(str))
        p = table.loc[list(c.positive.case_ids)]
        n = table.loc[list(neg.case_ids)]
        return bool(
            np.array_equal(p["pair"].to_numpy(), n["pair"].to_numpy())
            and np.array_equal(p["concept_set"].to_numpy(), n["concept_set"].to_numpy())
        )

    def _acts(self, ex: ExampleSet, layer: str) -> np.ndarray:
        try:
            iset = self.bank.image_set(ex)
        except ConceptError as exc:
            raise InterventionError(str(exc)) from exc
        if self.cache is not None:
            return np.asarray(self.cache.get(self.model, layer, iset, progress=self.progress)[layer])
        return extract_activations(self.model, iset.images, [layer], progress=self.progress)[layer]

    def direction(self, concept: str, layer: str, method: str | None = None) -> ConceptDirection:
        """The direction of ``concept`` at ``layer`` (memoised).

        Raises
        ------
        InterventionError
            Unknown concept or layer, twins requested for non-twin sets, or too few examples.
        """
        c = self.concept(concept)
        if layer not in self.model.layers:
            raise InterventionError(
                f"unknown layer {layer!r}; the model's layers end with {', '.join(self.model.layers[-8:])}"
            )
        m = method or self.method
        if m not in DIRECTION_METHODS:
            raise InterventionError(
                f"unknown direction method {m!r}; use one of {', '.join(DIRECTION_METHODS)}"
            )
        if m == "twin" and not self._is_twins(c):
            raise InterventionError(
                f"concept {c.name!r}: its examples are not counterfactual twins; use method='pattern'"
            )
        key = _DirectionKey(c.id, layer, m)
        if m == "transplant" and key not in self._memo:
            self._memo[key] = self._transplant_direction(c, layer)
        if key not in self._memo:
            absent_set = c.negative if c.negative is not None else self.bank.random_pool
            if absent_set is None:
                raise InterventionError(
                    f"concept {c.name!r} has no negative examples and the bank no random pool"
                )
            present = self._acts(c.positive, layer)
            absent = self._acts(absent_set, layer)
            self._memo[key] = direction_from_examples(
                c.name, layer, self.model.model_id, present, absent, method=m, concept_id=c.id,
            )
        return self._memo[key]

    def _transplant_direction(self, c: Concept, layer: str) -> ConceptDirection:
        """Twin-difference direction of an artifact concept from twins made of the data set its
        positives come from (train split): pairs from a twin column, else the artifact
        transplanted with a mask column (:func:`concepts.bank.real_twins`)."""
        if c.positive.source != "dataset" or not c.positive.dataset:
            raise InterventionError(
                f"concept {c.name!r}: 'transplant' needs a concept built from a data set's column"
            )
        try:
            ds = self.bank.dataset(c.positive.dataset)
        except ConceptError as exc:
            raise InterventionError(str(exc)) from exc
        if c.name not in ds.cases.columns:
            raise InterventionError(
                f"concept {c.name!r} is not a column of data set {ds.info.name!r}: 'transplant' needs "
                "an annotated artifact column"
            )
        rows = ds.indices("train") if "train" in set(ds.cases["split"]) else np.arange(len(ds))
        _, mask_col = find_twin_columns(ds, c.name)
        try:  # transplant with masks when the data set has them, else the user's pairs
            sets = real_twins(ds, rows, c.name, mask_column=mask_col) if mask_col else real_twins(ds, rows, c.name)
        except WorkbenchError as exc:
            raise InterventionError(f"concept {c.name!r}: {exc}") from exc
        if not any(len(t) for t in sets):
            raise InterventionError(
                f"concept {c.name!r}: data set {ds.info.name!r} has no twin column ({c.name}_twin) nor "
                f"mask column ({c.name}_mask or mask) to make twins from; use method='pattern'"
            )
        return direction_from_twins(self.model, ds.images, sets, layer, concept=c.name, concept_id=c.id,
                                    cache=self.cache, progress=self.progress)

    def best_layer(
        self, concepts: Sequence[str], layers: Sequence[str], method: str | None = None
    ) -> tuple[str, dict[str, float]]:
        """The layer of ``layers`` where the concepts' directions separate best: the highest mean
        held-out probe accuracy (pair ordering for twin directions); ties go to the deeper layer.

        Returns
        -------
        (layer, {layer: mean accuracy})
        """
        if not layers or not concepts:
            raise InterventionError("best_layer needs at least one concept and one candidate layer")
        scores: dict[str, float] = {}
        for lay in layers:
            accs = [self.direction(c, lay, method).accuracy for c in concepts]
            scores[lay] = float(np.mean([a for a in accs if a is not None] or [float("nan")]))
        order = sorted(layers, key=self.model.layers.index)
        best = max(reversed(order), key=lambda lay: -1.0 if np.isnan(scores[lay]) else scores[lay])
        return best, scores

    def directions(self, concepts: Sequence[str], layer: str, method: str | None = None) -> list[ConceptDirection]:
        return [self.direction(c, layer, method) for c in concepts]
