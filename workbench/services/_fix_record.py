"""What a recorded test-time fix carries: one builder for the Test-time fix page and ``workbench fix
--save`` (the ``fix_recorded`` event: spec, shots, evidence, before/after, ids)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from store import replace_nonfinite

if TYPE_CHECKING:
    from interventions import FixProposal, InterventionSpec

__all__ = ["FixShots", "fix_record", "metric_deltas", "parts_sha256"]

#: The ranking columns a recorded fix keeps as its signals.
_SIGNALS = ("concept", "operation", "supports", "fire_rate_wrong_class", "source_fire_rate_wrong_class",
            "shift", "gradient", "strength_all", "stability", "proposed")


def parts_sha256(*parts: bytes | str) -> str:
    """sha256 (hex) of ``parts``, each followed by a zero byte."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\x00")
    return h.hexdigest()


def metric_deltas(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, float]:
    """``after - before`` of every numeric metric both hold."""
    out = {}
    for k, v in before.items():
        a = after.get(k)
        if isinstance(v, int | float) and isinstance(a, int | float) and not isinstance(v, bool):
            out[k] = float(a) - float(v)
    return out


@dataclass(frozen=True)
class FixShots:
    """The labelled images a fix was fitted on, as recorded.

    Attributes
    ----------
    source, dataset, split
        Where they came from (``"CSV new.csv"``, ``"uploaded images"``, ``None`` for uploads).
    k, rows
        Shots per class, and one ``{"case_id", "label", "sha256"}`` row per shot.
    n_held, shots_id
        Held-out images evaluated, and the content id of the selection (the data hash).
    """

    source: str
    dataset: str
    split: str | None
    k: int
    rows: Sequence[Mapping[str, Any]]
    n_held: int
    shots_id: str


def fix_record(proposal: FixProposal, spec: InterventionSpec, shots: FixShots, *, layer: str,
               metrics: Mapping[str, Mapping[str, Any]], source_split: str, model_id: str,
               weights_sha: str) -> dict[str, Any]:
    """The keyword arguments of :meth:`store.Store.record_fix` (the spec under ``"spec"``).

    ``metrics``: ``{"few-shot" | "held-out" | "source": {"before": M, "after": M}}`` of ``spec``
    (the proposal, or its strengths as adjusted); ``before``/``after`` of the record are the
    held-out images' when there are any, else the shots'.
    """
    main = "held-out" if "held-out" in metrics else "few-shot"
    src = metrics.get("source") or {}
    drop = None
    if src:
        b, a = src["before"], src["after"]
        kb = "clean_accuracy" if b.get("clean_accuracy") is not None else "accuracy"
        drop = float(b[kb]) - float(a[kb])
    proposed = {} if proposal.spec is None else {e.direction.concept: e.strength for e in proposal.spec.edits}
    evidence: dict[str, Any] = replace_nonfinite({
        "kind": "test_time_fix", "description": spec.describe(), "spec_id": spec.spec_id, "layer": layer,
        "source": shots.source, "dataset": shots.dataset, "split": shots.split,
        "few_shot": {"k": shots.k, "n": len(shots.rows), "cases": list(shots.rows)},
        "held_out": {"n": shots.n_held}, "evaluated_on": main.replace("-", "_"),
        "before": metrics[main]["before"], "after": metrics[main]["after"],
        "few_shot_metrics": metrics.get("few-shot"),
        "source_guard": {"split": source_split, "drop": drop, **src} if src else None,
        "strengths": {"proposed": proposed, "chosen": {e.direction.concept: e.strength for e in spec.edits}},
        "edits": proposal.edits, "loo": proposal.loo, "notes": proposal.notes,
        "signals": [{k: r.get(k) for k in _SIGNALS} for r in proposal.ranking],
    })[0]
    deltas = replace_nonfinite(metric_deltas(metrics[main]["before"], metrics[main]["after"]))[0]
    return {"spec": spec.to_json(), "model_id": model_id, "evidence": evidence, "metric_deltas": deltas,
            "intervention_id": f"fix-{parts_sha256(spec.spec_id, shots.shots_id)[:12]}",
            "weights_sha_before": weights_sha, "dataset_hash": shots.shots_id, "concept": ",".join(spec.concepts)}
