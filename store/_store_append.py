"""Appending to a :class:`~store.Store`: events, reference-table records, proposals and fixes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from store._errors import ValidationError
from store._fields import (
    blank,
    check_int32,
    event_fields,
    ident,
    json_object,
    req_ident,
    sha256_field,
)
from store._model import Event
from store._refs import (
    Precheck,
    RefInsert,
    idempotent,
    must_be_new_intervention,
    must_exist_intervention,
)
from store._roles import Action, Actor, check_permission
from store._schema import REF_TABLES
from store._store_base import StoreBase

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AppendingStore"]

_NEEDS_INTERVENTION = {Action.APPLIED, Action.REVERTED, Action.APPROVED, Action.REJECTED}
#: Actions that change the workspace's model: only a proposed intervention (never a fix).
_NEEDS_PROPOSAL = {Action.APPLIED, Action.REVERTED}
#: Actions that record a spec in the ``interventions`` table, and their id prefix.
_RECORDS_SPEC = {Action.PROPOSED: "iv", Action.FIX_RECORDED: "fix"}
_RECORD_ACTIONS = {
    Action.MODEL_REGISTERED: "register_model",
    Action.DATASET_REGISTERED: "register_dataset",
    Action.CONCEPT_REGISTERED: "register_concept",
    Action.CAV_RUN_RECORDED: "record_cav_run",
    Action.TCAV_RESULTS_RECORDED: "record_tcav_results",
    Action.EFFECT_RECORDED: "record_effect",
}



class AppendingStore(StoreBase):
    """Every way of appending to the log (each validates, then hands one event to the writer)."""

    def append_event(
        self,
        actor: Actor,
        action: Action | str,
        *,
        spec: Mapping[str, Any] | str | None = None,
        rationale: str | bytes | None = None,
        evidence: Mapping[str, Any] | str | None = None,
        metric_deltas: Mapping[str, Any] | str | None = None,
        model_id: str | None = None,
        weights_sha_before: str | None = None,
        weights_sha_after: str | None = None,
        dataset_hash: str | None = None,
        intervention_id: str | None = None,
        concept: str | None = None,
    ) -> Event:
        """Append one event to the log and return it (with its seq and hash).

        ``proposed`` and ``fix_recorded`` also record the spec in the ``interventions`` table
        (a new ``intervention_id`` is generated when None); ``applied``, ``reverted``,
        ``approved`` and ``rejected`` need an existing ``intervention_id`` (``applied`` and
        ``reverted`` a proposed one, never a fix); ``applied``, ``reverted`` and
        ``fix_recorded`` need a rationale; ``concept_named`` needs ``concept``. Reference-table actions
        (``model_registered``...) go through their ``register_*``/``record_*`` methods.

        Raises
        ------
        PermissionDenied
            The actor's role may not record ``action``.
        ValidationError
            A missing or invalid argument (see ``store/README.md``).
        StoreBusyError
            The file stayed locked by another process.
        """
        act = Action.parse(action)
        check_permission(actor, act)
        if act in _RECORD_ACTIONS:
            raise ValidationError(
                f"'{act.value}' events are written by Store.{_RECORD_ACTIONS[act]}(), which "
                "also stores the record; call that instead"
            )
        fields = event_fields(
            actor, act, spec=spec, rationale=rationale, evidence=evidence,
            metric_deltas=metric_deltas, model_id=model_id,
            weights_sha_before=weights_sha_before, weights_sha_after=weights_sha_after,
            dataset_hash=dataset_hash, intervention_id=intervention_id, concept=concept,
        )
        ref, precheck = _plan_event(act, fields)
        return self._append(fields, ref=ref, precheck=precheck)

    # ------------------------------------------------------------------ reference tables
    def register_model(
        self, actor: Actor, model_id: str, architecture: str, weights_sha256: str, *,
        meta: Mapping[str, Any] | None = None,
    ) -> Event:
        """Record a model (id, architecture, weights sha256). Idempotent for identical rows.

        Raises
        ------
        ValidationError
            The id is registered with other content, or an argument is invalid.
        """
        act = Action.MODEL_REGISTERED
        check_permission(actor, act)
        sha = sha256_field(weights_sha256, "weights_sha256", required=True)
        mid = ident(model_id, "model_id", required=True)
        ins = RefInsert.build(REF_TABLES["models"], [{
            "model_id": mid, "architecture": ident(architecture, "architecture", required=True),
            "weights_sha256": sha, "meta": meta}])
        fields = event_fields(actor, act, **blank(model_id=mid, weights_sha_after=sha))
        return self._append(fields, ref=ins, precheck=idempotent(
            ins, ("model_id",), f"model {mid!r}"))

    def register_dataset(
        self, actor: Actor, dataset_id: str, content_hash: str, *,
        splits: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None,
    ) -> Event:
        """Record a data set (id, content hash, splits such as ``{"train": 800}``)."""
        act = Action.DATASET_REGISTERED
        check_permission(actor, act)
        did = ident(dataset_id, "dataset_id", required=True)
        chash = ident(content_hash, "content_hash", required=True)
        ins = RefInsert.build(REF_TABLES["datasets"], [{
            "dataset_id": did, "content_hash": chash, "splits": splits, "meta": meta}])
        fields = event_fields(actor, act, **blank(dataset_hash=chash))
        return self._append(fields, ref=ins, precheck=idempotent(
            ins, ("dataset_id",), f"data set {did!r}"))

    def register_concept(
        self, actor: Actor, concept_id: str, version: int, examples_hash: str, *,
        meta: Mapping[str, Any] | None = None,
    ) -> Event:
        """Record a concept version (id, version, hash of its example set)."""
        act = Action.CONCEPT_REGISTERED
        check_permission(actor, act)
        cid = ident(concept_id, "concept_id", required=True)
        ins = RefInsert.build(REF_TABLES["concepts"], [{
            "concept_id": cid, "version": version,
            "examples_hash": ident(examples_hash, "examples_hash", required=True), "meta": meta}])
        check_int32(ins.payloads[0]["version"], "version")
        fields = event_fields(actor, act, **blank(concept=cid))
        return self._append(fields, ref=ins, precheck=idempotent(
            ins, ("concept_id", "version"), f"concept {cid!r} version {version}"))

    def record_cav_run(
        self, actor: Actor, *, concept_id: str, model_id: str, layer: str,
        run_id: str | None = None, concept_version: int | None = None,
        dataset_hash: str | None = None, seed: int | None = None,
        accuracy: float | None = None, params: Mapping[str, Any] | None = None,
    ) -> Event:
        """Record one CAV training run (a new ``run_id`` is generated when None)."""
        act = Action.CAV_RUN_RECORDED
        check_permission(actor, act)
        rid = ident(run_id, "run_id") or f"cav-{uuid.uuid4().hex[:12]}"
        ins = RefInsert.build(REF_TABLES["cav_runs"], [{
            "run_id": rid, "concept_id": ident(concept_id, "concept_id", required=True),
            "concept_version": concept_version,
            "model_id": ident(model_id, "model_id", required=True),
            "layer": ident(layer, "layer", required=True),
            "dataset_hash": ident(dataset_hash, "dataset_hash"), "seed": seed,
            "accuracy": accuracy, "params": params}])
        check_int32(ins.payloads[0]["concept_version"], "concept_version")
        fields = event_fields(actor, act, **blank(
            model_id=model_id, dataset_hash=dataset_hash, concept=concept_id))
        return self._append(fields, ref=ins, precheck=idempotent(
            ins, ("run_id",), f"CAV run {rid!r}"))

    def record_tcav_results(
        self, actor: Actor, results: pd.DataFrame, *, model_id: str | None = None,
        dataset_hash: str | None = None, evidence: Mapping[str, Any] | None = None,
        nan_as_null: bool = False,
    ) -> Event:
        """Record a tidy TCAV results table as one event.

        Columns ``concept``, ``layer`` and ``tcav_score`` are required; ``target`` (or
        ``class``), ``p_value``, ``p_adj`` and ``n_runs`` are recognised; any other column
        goes, per row, into the ``extra`` JSON object.

        Parameters
        ----------
        nan_as_null
            NaN/inf numbers are refused by default; True stores them as null and lists the
            cells in the event's evidence under ``"nonfinite_as_null"``.
        """
        act = Action.TCAV_RESULTS_RECORDED
        check_permission(actor, act)
        ins, notes = RefInsert.from_tcav_frame(results, nan_as_null=nan_as_null)
        ev = dict(evidence or {})
        if notes:
            ev["nonfinite_as_null"] = notes
        fields = event_fields(actor, act, **blank(
            model_id=model_id, dataset_hash=dataset_hash, evidence=ev or None))
        return self._append(fields, ref=ins)

    def record_intervention(
        self, actor: Actor, spec: Mapping[str, Any] | str, *,
        intervention_id: str | None = None, rationale: str | bytes | None = None,
        evidence: Mapping[str, Any] | None = None, model_id: str | None = None,
        weights_sha_before: str | None = None, dataset_hash: str | None = None,
        concept: str | None = None,
    ) -> Event:
        """Propose an intervention: store its spec and append a ``proposed`` event."""
        return self.append_event(
            actor, Action.PROPOSED, spec=spec, rationale=rationale, evidence=evidence,
            model_id=model_id, weights_sha_before=weights_sha_before,
            dataset_hash=dataset_hash, intervention_id=intervention_id, concept=concept,
        )

    def record_fix(
        self, actor: Actor, spec: Mapping[str, Any] | str, *, rationale: str | bytes,
        model_id: str, evidence: Mapping[str, Any] | None = None,
        metric_deltas: Mapping[str, Any] | None = None, intervention_id: str | None = None,
        weights_sha_before: str | None = None, dataset_hash: str | None = None,
        concept: str | None = None,
    ) -> Event:
        """Record a test-time fix: store its spec and append a ``fix_recorded`` event.

        A fix is fitted by an engineer (or a dermatologist) on a few labelled images of a new
        clinic. Its spec goes into the ``interventions`` table like a proposal's, so it has an
        intervention report and a dermatologist may approve or reject it, but it is never
        ``applied`` to (or ``reverted`` from) the workspace's model: it is deployed as a patched
        model (``model_exported``). ``evidence`` carries what the fix rests on (few-shot case
        ids and image hashes, layer, leave-one-out stability, expected gains, before/after
        metrics); ``dataset_hash`` identifies the few-shot set; a rationale is required.
        """
        return self.append_event(
            actor, Action.FIX_RECORDED, spec=spec, rationale=rationale, evidence=evidence,
            metric_deltas=metric_deltas, model_id=model_id, weights_sha_before=weights_sha_before,
            dataset_hash=dataset_hash, intervention_id=intervention_id, concept=concept,
        )

    def record_effect(
        self, actor: Actor, intervention_id: str, metrics_before: Mapping[str, Any],
        metrics_after: Mapping[str, Any], *, reliance: Mapping[str, Any] | None = None,
        rationale: str | bytes | None = None, model_id: str | None = None,
        weights_sha_before: str | None = None, weights_sha_after: str | None = None,
        dataset_hash: str | None = None,
    ) -> Event:
        """Record an intervention's measured effect; ``metric_deltas`` = after - before."""
        act = Action.EFFECT_RECORDED
        check_permission(actor, act)
        iid = req_ident(intervention_id, "intervention_id")
        ins = RefInsert.build(REF_TABLES["intervention_effects"], [{
            "intervention_id": iid, "metrics_before": dict(metrics_before),
            "metrics_after": dict(metrics_after), "reliance": reliance}])
        p = ins.payloads[0]
        deltas = {
            k: p["metrics_after"][k] - v for k, v in p["metrics_before"].items()
            if _is_num(v) and _is_num(p["metrics_after"].get(k))
        }
        fields = event_fields(actor, act, **blank(
            rationale=rationale, evidence={"reliance": reliance} if reliance else None,
            metric_deltas=deltas, model_id=model_id, weights_sha_before=weights_sha_before,
            weights_sha_after=weights_sha_after, dataset_hash=dataset_hash,
            intervention_id=iid))
        return self._append(fields, ref=ins, precheck=must_exist_intervention(iid))


def _plan_event(act: Action, fields: dict[str, Any]) -> tuple[RefInsert | None, Precheck | None]:
    """The reference row and precheck of an event of ``act``; refuse missing arguments.

    ``proposed`` and ``fix_recorded`` get a new ``intervention_id`` in ``fields`` when it is
    None, and the spec row they record; actions about an intervention check it exists.
    """
    ref: RefInsert | None = None
    precheck: Precheck | None = None
    iid = fields["intervention_id"]
    if act in _RECORDS_SPEC:
        if fields["spec"] is None:
            raise ValidationError(f"'{act.value}' needs the intervention spec (a JSON object)")
        if act is Action.FIX_RECORDED and fields["model_id"] is None:
            raise ValidationError("'fix_recorded' needs the model_id the fix was fitted on")
        if iid is None:
            iid = fields["intervention_id"] = f"{_RECORDS_SPEC[act]}-{uuid.uuid4().hex[:12]}"
        ref = RefInsert.build(
            REF_TABLES["interventions"], [{"intervention_id": iid, "spec": _spec_obj(fields)}]
        )
        precheck = must_be_new_intervention(iid)
    elif act in _NEEDS_INTERVENTION:
        if iid is None:
            raise ValidationError(f"'{act.value}' needs the intervention_id it is about")
        precheck = must_exist_intervention(iid, proposed=act in _NEEDS_PROPOSAL)
    elif act is Action.CONCEPT_NAMED and fields["concept"] is None:
        raise ValidationError("'concept_named' needs the concept it names")
    elif act is Action.MODEL_EXPORTED and fields["model_id"] is None:
        raise ValidationError("'model_exported' needs the model_id of the exported model")
    return ref, precheck


def _spec_obj(fields: Mapping[str, Any]) -> Any:
    """The parsed spec of validated event fields."""
    return json_object(fields["spec"], "spec")[0]


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
