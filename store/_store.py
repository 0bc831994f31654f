"""The Store: append-only, attributed, hash-chained intervention history in one DuckDB file.

Concurrency model
-----------------
* No process keeps the file open between operations: each operation opens a short-lived
  connection (retrying with backoff while another process holds the lock, then raising
  :class:`~store.StoreBusyError`) and closes it. The UI server and the CLI can therefore both
  use the same workspace.
* Appends are serialised by a process-wide writer lock per file and each is atomic: one
  transaction holds the whole event and its reference rows (BEGIN; read head; INSERT; COMMIT),
  so the chain never forks and a crash leaves the whole event or nothing. Appends that queue
  up while another thread commits are group-committed in the next transaction; no caller
  returns before the COMMIT holding its event (see ``store._writer``).
* ``with store.session():`` holds one connection for a batch of operations (threads then use
  per-thread cursors on it): much faster, but it keeps other *processes* out meanwhile.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from store._anchors import Anchor, anchors_path, append_anchor, check_anchors, read_anchors
from store._atomic import atomic_path
from store._chain import GENESIS_HASH, VerifyResult, verify_event_rows
from store._conn import connect_with_retry, path_state, rollback_quietly
from store._errors import NotFoundError, StoreError, ValidationError
from store._export import file_sha256, resolve_format, write_export
from store._fields import (
    blank,
    check_int32,
    event_fields,
    ident,
    json_object,
    req_ident,
    sha256_field,
)
from store._model import Event, EventFilter, ExportResult, InterventionHistory
from store._outpath import safe_output_path, write_atomic
from store._refs import (
    Precheck,
    RefInsert,
    idempotent,
    must_be_new_intervention,
    must_exist_intervention,
    verify_refs,
)
from store._report import render_report
from store._report_history import render_history_report
from store._roles import Action, Actor, check_permission
from store._schema import EVENT_COLUMNS, REF_TABLES, load_migrations, migrate, utc_now_iso
from store._writer import Pending, submit

__all__ = ["PROJECT_VERSION", "STORE_FILENAME", "Store"]

#: File name of the store inside a workspace directory.
STORE_FILENAME = "store.duckdb"


def _project_version() -> str:
    try:
        return metadata.version("concept-workbench")
    except metadata.PackageNotFoundError:
        return "0.1.0"


#: Version recorded in every event.
PROJECT_VERSION = _project_version()

_COLS = ", ".join(EVENT_COLUMNS)
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


class Store:
    """The intervention history of one workspace.

    Parameters
    ----------
    path
        The DuckDB file (``<workspace>/store.duckdb``; see :meth:`for_workspace`).
    create
        Create the file (and its folder) if missing; when False a missing file raises
        :class:`~store.NotFoundError`.
    busy_timeout
        Seconds to keep retrying while another process holds the file.
    migrations_dir
        Folder of ``NNNN_name.sql`` migrations (tests only; default: the packaged ones).

    Raises
    ------
    MigrationError
        A recorded migration changed or is missing.
    StoreBusyError
        The file stayed locked by another process for ``busy_timeout`` seconds.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        busy_timeout: float = 10.0,
        migrations_dir: Path | None = None,
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        if not self.path.exists():
            if not create:
                raise NotFoundError(
                    f"no store at {self.path}; check --workspace, or record something first"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.busy_timeout = float(busy_timeout)
        self._shared = path_state(self.path)
        self._write_lock = self._shared.lock
        self._state = threading.Lock()
        self._session_con: duckdb.DuckDBPyConnection | None = None
        self._session_depth = 0
        self._session_gen = 0
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._local = threading.local()
        migrations = load_migrations(migrations_dir)
        with self._write_lock, self._connection() as con:
            self.schema_version = migrate(con, migrations, str(self.path))

    @classmethod
    def for_workspace(cls, workspace: str | Path, **kwargs: Any) -> Store:
        """The store of a workspace directory (``<workspace>/store.duckdb``)."""
        return cls(Path(workspace) / STORE_FILENAME, **kwargs)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # ------------------------------------------------------------------ connections
    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._state:
            con = self._session_con
            if con is not None:
                if getattr(self._local, "gen", None) != self._session_gen:
                    self._local.cursor = con.cursor()
                    self._local.gen = self._session_gen
                    self._cursors.append(self._local.cursor)
                cursor: duckdb.DuckDBPyConnection = self._local.cursor
        if con is not None:
            yield cursor
            return
        con = connect_with_retry(self.path, self.busy_timeout)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def session(self) -> Iterator[Store]:
        """Hold one connection for a batch of operations (re-entrant, thread-shared).

        Inside the block every thread uses its own cursor on that connection, which avoids
        re-opening the file per operation. Other processes cannot open the file meanwhile
        (they wait up to their busy timeout), so keep sessions short: batch jobs, tests,
        bulk imports; not a whole UI session.
        """
        with self._write_lock, self._state:  # lock order: writer lock, then state
            if self._session_depth == 0:
                self._session_con = connect_with_retry(self.path, self.busy_timeout)
                self._session_gen += 1
                self._shared.sessions += 1
            self._session_depth += 1
        try:
            yield self
        finally:
            with self._write_lock, self._state:
                self._session_depth -= 1
                if self._session_depth == 0 and self._session_con is not None:
                    for cur in self._cursors:
                        cur.close()
                    self._cursors.clear()
                    self._session_con.close()
                    self._session_con = None
                    self._shared.sessions -= 1
                    if self._shared.sessions == 0:
                        self._shared.head = None

    def _read(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self._connection() as con:
            try:
                return con.execute(sql, params or []).fetchall()
            except duckdb.Error as exc:
                raise StoreError(f"reading {self.path} failed: {exc}") from None

    # ------------------------------------------------------------------ appending
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
        return self._append(fields, ref=ref, precheck=precheck)

    def _append(
        self, fields: dict[str, Any], *, ref: RefInsert | None = None,
        precheck: Precheck | None = None,
    ) -> Event:
        return submit(self._shared, self._connection, Pending(fields, ref, precheck),
                      where=str(self.path), project_version=PROJECT_VERSION)

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

    # ------------------------------------------------------------------ reading
    def events(self, filters: EventFilter | None = None, *, last: int | None = None) -> list[Event]:
        """Events matching ``filters`` in seq order (only the ``last`` N when given)."""
        where, params = (filters or EventFilter()).where()
        sql = f"SELECT {_COLS} FROM events{where} ORDER BY seq"
        if last is not None:
            sql = f"SELECT * FROM (SELECT {_COLS} FROM events{where} ORDER BY seq DESC LIMIT ?) ORDER BY seq"
            params = [*params, max(0, int(last))]
        return [Event.from_row(r) for r in self._read(sql, params)]

    def events_frame(self, filters: EventFilter | None = None) -> pd.DataFrame:
        """Events matching ``filters`` as a DataFrame (JSON columns as text)."""
        where, params = (filters or EventFilter()).where()
        rows = self._read(f"SELECT {_COLS} FROM events{where} ORDER BY seq", params)
        return pd.DataFrame(rows, columns=list(EVENT_COLUMNS))

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last event; (0, genesis hash) for an empty log."""
        rows = self._read("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
        return (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS_HASH)

    def head_hash(self) -> str:
        """Hash of the last event: anchor it outside the database (a ticket, a signed mail)."""
        return self.head()[1]

    def table(self, name: str) -> pd.DataFrame:
        """A reference table (``models``, ``datasets``, ``concepts``, ``cav_runs``,
        ``tcav_results``, ``interventions``, ``intervention_effects``) as a DataFrame."""
        if name not in REF_TABLES:
            raise ValidationError(f"unknown table {name!r}; use one of {sorted(REF_TABLES)}")
        cols = [*REF_TABLES[name].names, "event_seq", "row_no"]
        rows = self._read(
            f"SELECT {', '.join(cols)} FROM {name} ORDER BY event_seq, row_no"
        )
        return pd.DataFrame(rows, columns=cols)

    @property
    def anchors_path(self) -> Path:
        """The append-only file of anchored heads (``<workspace>/anchors.jsonl``)."""
        return anchors_path(self.path)

    def anchors(self) -> list[Anchor]:
        """Every head anchored so far (see ``store._anchors``)."""
        return read_anchors(self.anchors_path)

    def verify(self, *, expected_head: str | None = None, anchor: bool = True) -> VerifyResult:
        """Recompute the chain and the reference-table digests; name the first bad seq.

        Every anchored head (``anchors.jsonl``) must still be in the chain with its hash, so
        events removed from the end or a rewritten chain fail. When the chain verifies and
        ``anchor`` is true, its head is anchored in turn (``anchored_seq`` of the result is
        the highest head anchored *before* this call).
        """
        try:
            anchors = read_anchors(self.anchors_path)
        except StoreError as exc:
            return VerifyResult(False, 0, None, str(exc), GENESIS_HASH, 0)
        with self._connection() as con:
            try:
                con.execute("BEGIN TRANSACTION")  # one snapshot for events and references
                rows = con.execute(f"SELECT {_COLS} FROM events ORDER BY seq").fetchall()
                dict_rows = [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in rows]
                result = verify_event_rows(dict_rows, expected_head=expected_head)
                if result.ok:
                    result = verify_refs(con, dict_rows, result)
            except duckdb.Error as exc:
                raise StoreError(
                    f"cannot read the event log of {self.path} ({exc}); the file was damaged "
                    "or its tables altered"
                ) from None
            finally:
                rollback_quietly(con)
        hashes = {int(r["seq"]): str(r["hash"]) for r in dict_rows}
        result = check_anchors(result, hashes, anchors)
        if anchor and result.ok and result.head_seq > result.anchored_seq:
            append_anchor(self.anchors_path, result.head_seq, result.head_hash, "verify")
        return result

    def intervention_history(self, intervention_id: str) -> InterventionHistory:
        """Spec, events and recorded effects of one intervention.

        Raises
        ------
        NotFoundError
            Nothing is recorded under ``intervention_id``.
        """
        spec_rows = self._read(
            "SELECT spec FROM interventions WHERE intervention_id = ?", [intervention_id]
        )
        events = self.events(EventFilter(intervention_id=intervention_id))
        if not spec_rows and not events:
            raise NotFoundError(
                f"no intervention {intervention_id!r} in {self.path}; list them with "
                "`workbench audit log --action proposed`"
            )
        effects = self._read(
            "SELECT metrics_before, metrics_after, reliance, event_seq FROM "
            "intervention_effects WHERE intervention_id = ? ORDER BY event_seq, row_no",
            [intervention_id],
        )
        spec = json_object(spec_rows[0][0], "spec")[0] if spec_rows else None
        return InterventionHistory(
            intervention_id=intervention_id,
            spec=spec,
            events=events,
            effects=[
                {"metrics_before": json_object(b, "metrics_before")[0],
                 "metrics_after": json_object(a, "metrics_after")[0],
                 "reliance": json_object(r, "reliance")[0] if r else None,
                 "event_seq": int(s)}
                for b, a, r, s in effects
            ],
        )

    def report_html(
        self, intervention_id: str, *, motivation: Sequence[Mapping[str, Any]] | None = None,
        workspace_label: str | None = None,
    ) -> str:
        """The intervention report (HTML, print-ready) of one intervention.

        Parameters
        ----------
        motivation
            Evidence rows gathered from the workspace's results by the caller (confounder
            rank, co-occurrence odds ratio with CI, TCAV with adjusted p); see
            :func:`store._report.render_report`.
        workspace_label
            Shown in the header (default: the store's folder name, never its full path).
        """
        history = self.intervention_history(intervention_id)
        return render_report(history, self.verify(), generated_at=utc_now_iso(),
                             workspace_label=workspace_label or self.path.parent.name,
                             motivation=motivation)

    def history_report_html(
        self, filters: EventFilter | None = None, *, workspace_label: str | None = None
    ) -> str:
        """The history report (HTML, print-ready) over ``filters`` (as for :meth:`export`)."""
        flt = filters or EventFilter()
        return render_history_report(
            self.events(flt), self.verify(), filters=flt.describe(), generated_at=utc_now_iso(),
            workspace_label=workspace_label or self.path.parent.name)

    def export(
        self, out: str | Path, fmt: str | None = None, *, actor: Actor,
        filters: EventFilter | None = None, overwrite: bool = False,
    ) -> ExportResult:
        """Export events (chain fields included) to csv, parquet or jsonl via DuckDB COPY.

        The file is written under a temporary name, recorded as an ``exported`` event
        (format, filters, row count, completeness, head, file sha256) and only then renamed
        into place; the head is also anchored (``anchors.jsonl``). ``out`` may never be the
        store, a workspace file, a directory or a link, nor an existing file unless
        ``overwrite`` (and then only an export/report file outside every workspace).

        Raises
        ------
        ValidationError
            ``out`` may not be written (see :func:`store._outpath.safe_output_path`).
        """
        check_permission(actor, Action.EXPORTED)
        target = self.safe_output(out, overwrite=overwrite)
        fmt_ = resolve_format(target, fmt)
        flt = filters or EventFilter()
        where, params = flt.where()
        try:
            with atomic_path(target, private=False) as tmp:
                with self._connection() as con:
                    meta = write_export(con, tmp, fmt_, where, params, flt.describe())
                sha = file_sha256(tmp)
                event = self.append_event(actor, Action.EXPORTED, evidence={
                    "format": fmt_, "file_name": target.name, "file_sha256": sha,
                    "n_rows": meta.n_rows, "first_seq": meta.first_seq, "last_seq": meta.last_seq,
                    "complete": meta.complete, "head_seq": meta.head_seq,
                    "head_hash": meta.head_hash, "filters": flt.describe()})
        except OSError as exc:
            raise StoreError(f"export to {target} failed: {exc}") from None
        append_anchor(self.anchors_path, meta.head_seq, meta.head_hash, "export", actor.id,
                      {"file_sha256": sha})
        return ExportResult(path=target, format=fmt_, n_rows=meta.n_rows, sha256=sha,
                            event=event)

    def safe_output(self, out: str | Path, *, overwrite: bool = False) -> Path:
        """``out`` checked for writing an export or report: never this store or its files.

        Raises
        ------
        ValidationError
            See :func:`store._outpath.safe_output_path`.
        """
        wal = self.path.with_name(self.path.name + ".wal")
        return safe_output_path(out, protected=(self.path, wal, self.anchors_path),
                                overwrite=overwrite)

    def write_report(self, out: str | Path, text: str, *, overwrite: bool = False) -> Path:
        """Write a report (HTML text) to ``out`` atomically, with the checks of :meth:`export`."""
        target = self.safe_output(out, overwrite=overwrite)
        write_atomic(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        return target


def _spec_obj(fields: Mapping[str, Any]) -> Any:
    """The parsed spec of validated event fields."""
    return json_object(fields["spec"], "spec")[0]


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
