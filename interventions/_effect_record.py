"""Recording a measured effect in the audit store: ``proposed`` (when new), ``applied`` with
the evidence and metric deltas, then ``effect_recorded``."""

from __future__ import annotations

from typing import Any

from concepts import ClassifierModel
from interventions._effects import METRIC_KEYS, EffectReport
from interventions._spec import InterventionError
from store import to_jsonable

__all__ = ["record_effect"]


def record_effect(
    report: EffectReport,
    store: Any,
    actor: Any,
    rationale: str,
    *,
    model: ClassifierModel | None = None,
    intervention_id: str | None = None,
) -> Any:
    """Record an applied intervention and its measured effect in the store.

    Proposes the intervention first when the store has never seen it (id
    ``iv-<spec id>``), then appends ``applied`` (spec, rationale, evidence, metric deltas) and
    ``effect_recorded`` (metrics before/after, reliance). The actor must be a ``store.Actor``
    whose role may do so (store errors propagate with their message).

    Returns
    -------
    store.Event
        The ``applied`` event.
    """
    iid = intervention_id or f"iv-{report.spec.spec_id}"
    spec_json = report.spec.to_json()
    concept = ",".join(report.spec.concepts)
    weights = model.weights_sha256 if model is not None else None
    _propose_if_new(report, store, actor, rationale, iid, weights)
    event = store.append_event(
        actor, "applied", spec=spec_json, rationale=rationale, evidence=_applied_evidence(report),
        metric_deltas=report.deltas(), model_id=report.model_id, weights_sha_before=weights,
        weights_sha_after=weights, dataset_hash=report.dataset_hash or None,
        intervention_id=iid, concept=concept,
    )
    flat_b, flat_a = _flat_metrics(report)
    store.record_effect(
        actor, iid, to_jsonable(flat_b), to_jsonable(flat_a), reliance=to_jsonable(report.reliance) or None,
        rationale=rationale, model_id=report.model_id, weights_sha_before=weights,
        weights_sha_after=weights, dataset_hash=report.dataset_hash or None,
    )
    return event


def _propose_if_new(
    report: EffectReport, store: Any, actor: Any, rationale: str, iid: str, weights: str | None
) -> None:
    """Record ``proposed`` for an intervention the store has never seen (if the role may)."""
    from store import EventFilter

    if store.events(EventFilter(intervention_id=iid, action="proposed"), last=1):
        return
    if hasattr(actor, "can") and not actor.can("proposed"):
        raise InterventionError(
            f"intervention {iid} ({report.spec.describe()}) has not been proposed yet, and the "
            f"{getattr(actor.role, 'value', actor.role)} role may not propose: a dermatologist "
            "must propose it first (the same command with --role dermatologist)"
        )
    store.record_intervention(
        actor, report.spec.to_json(), intervention_id=iid, rationale=rationale,
        evidence={"description": report.spec.describe()}, model_id=report.model_id,
        weights_sha_before=weights, dataset_hash=report.dataset_hash or None,
        concept=",".join(report.spec.concepts),
    )


def _applied_evidence(report: EffectReport) -> dict[str, Any]:
    """The evidence of the ``applied`` event (at most 500 flipped case ids)."""
    return to_jsonable({  # type: ignore[no-any-return]
        "description": report.spec.describe(),
        "spec_id": report.spec.spec_id,
        "dataset": report.dataset,
        "split": report.split,
        "before": report.before,
        "after": report.after,
        "n_flipped": len(report.flipped_cases),
        "flipped_cases": [c["case_id"] for c in report.flipped_cases][:500],
        "reliance": report.reliance,
    })


def _flat_metrics(report: EffectReport) -> tuple[dict[str, Any], dict[str, Any]]:
    """Headline metrics and per-artifact flip rates, before and after, as flat dicts."""
    flat_b = {k: report.before.get(k) for k in METRIC_KEYS}
    flat_a = {k: report.after.get(k) for k in METRIC_KEYS}
    for art, fr in report.reliance.get("flip_rates", {}).items():
        flat_b[f"flip_rate:{art}"], flat_a[f"flip_rate:{art}"] = fr.get("before"), fr.get("after")
    return flat_b, flat_a
