"""Choosing each artifact's direction method for the test-time fix by leave-one-out over the shots.

A concept's direction can be estimated several ways (the bank's pattern CAV, counterfactual
twins, a logistic or ridge probe, ...); which one a mask should remove depends on how the model
encodes the artifact, and no method wins everywhere. When :func:`interventions.propose_fix`
is given several directions of one concept (alternatives), each mask candidate's direction is
chosen here from the shots alone: the joint search (all candidates, the source anchor, the L1
weights from the shots' level shift) is rerun with each alternative swapped in, and the one
whose leave-one-out fits best predict the left-out shots (class-balanced log-likelihood gain
over the unpatched model, per shot) is kept. The first direction given stays unless another
beats it by ``margin`` nats. Only the shots and the source split are used; the clinical graph
has already decided which candidates are masks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from interventions._fix_evidence import Candidate, FixContext, candidate_evidence, mask_only
from interventions._fix_loo import leave_one_out, loo_nats
from interventions._fix_search import Problem
from interventions._library import ConceptLibrary
from interventions._ops import MAX_CONDITION
from interventions._spec import ConceptDirection, InterventionError

__all__ = ["FIX_METHODS", "MethodChoice", "choose_directions", "fix_directions", "group_directions"]

#: Direction methods tried, after the library's default, for every concept a fix may mask.
FIX_METHODS: tuple[str, ...] = ("twin", "logistic", "ridge")

#: A problem builder: (candidates, evidence rows) -> (problem on all shots, L1 weights of a shot subset).
ProblemFn = Callable[[Sequence[Candidate], Sequence[Mapping[str, Any]]],
                     tuple[Problem, Callable[[np.ndarray], np.ndarray]]]

#: Type of one choice's record: concept, method chosen, LOO nats per method tried.
MethodChoice = dict[str, Any]


def fix_directions(
    library: ConceptLibrary, concepts: Sequence[str], layer: str, methods: Sequence[str] = FIX_METHODS,
) -> list[ConceptDirection]:
    """The candidate directions of a test-time fix: the library's default direction of every
    concept, then, for the concepts the clinical graph lets a fix only mask (artifacts and
    concepts it does not know), their directions by ``methods`` where the concept's examples
    allow them (twins need counterfactual pairs). Pass the result to
    :func:`interventions.propose_fix`, which chooses each mask's method by leave-one-out.

    Raises
    ------
    InterventionError
        Unknown concept or layer (from the library).
    """
    out = [library.direction(c, layer) for c in concepts]
    classes = library.model.classes
    for c, d in zip(concepts, list(out), strict=True):
        if not mask_only(c, classes):
            continue
        for m in methods:
            if m == d.method:
                continue
            try:
                out.append(library.direction(c, layer, m))
            except InterventionError:
                continue  # e.g. no twins for this concept: the method is not an option
    return out


def group_directions(
    directions: Sequence[ConceptDirection],
) -> tuple[list[ConceptDirection], dict[str, list[ConceptDirection]]]:
    """The first direction of each concept (in order) and the other ones (its alternatives)."""
    first: dict[str, ConceptDirection] = {}
    alts: dict[str, list[ConceptDirection]] = {}
    for d in directions:
        if d.concept not in first:
            first[d.concept] = d
        elif all(d.method != a.method for a in (first[d.concept], *alts.get(d.concept, []))):
            alts.setdefault(d.concept, []).append(d)
    return list(first.values()), alts


def _conditioned(dirs: Sequence[ConceptDirection]) -> bool:
    v = np.stack([d.vector.astype(np.float64) for d in dirs])
    cond = float(np.linalg.cond(v @ v.T))
    return bool(np.isfinite(cond) and cond <= MAX_CONDITION)


def _score(build: ProblemFn, cands: Sequence[Candidate], rows: Sequence[Mapping[str, Any]]) -> float:
    p, penalty = build(cands, rows)
    return loo_nats(p, leave_one_out(p, penalty))


def choose_directions(
    ctx: FixContext, cands: list[Candidate], rows: list[dict[str, Any]],
    alternatives: Mapping[str, Sequence[ConceptDirection]], build: ProblemFn,
    relevel: Callable[[ConceptDirection], ConceptDirection], margin: float = 0.0,
) -> tuple[list[Candidate], list[dict[str, Any]], list[MethodChoice]]:
    """Swap in, per mask candidate, the alternative direction whose leave-one-out fits best
    predict the left-out shots (one pass over the candidates, strongest gradient first)."""
    cands, rows = list(cands), list(rows)
    choices: list[MethodChoice] = []
    if len(ctx.y) < 3 or not alternatives:
        return cands, rows, choices
    best = _score(build, cands, rows)
    order = sorted(range(len(cands)), key=lambda i: rows[i]["gradient"])
    for i in order:
        c = cands[i]
        if c.operation != "mask" or c.direction.concept not in alternatives:
            continue
        tried = {c.direction.method: best}
        for alt in alternatives[c.direction.concept]:
            others = [x.direction for j, x in enumerate(cands) if j != i]
            if not _conditioned([*others, alt]):
                continue
            trial_c = replace(c, direction=relevel(alt))
            trial_row = candidate_evidence(ctx, [replace(c, direction=alt)])[0]
            tc = [*cands[:i], trial_c, *cands[i + 1:]]
            tr = [*rows[:i], trial_row, *rows[i + 1:]]
            s = _score(build, tc, tr)
            tried[alt.method] = s
            if s > best + margin:
                best, cands, rows = s, tc, tr
        choices.append({"concept": c.direction.concept, "method": cands[i].direction.method,
                        "loo_nats": {m: round(v, 4) for m, v in tried.items()}})
    return cands, rows, choices

