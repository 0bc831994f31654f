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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from store._anchors import Anchor, anchors_path, append_anchor, check_anchors, read_anchors
from store._atomic import atomic_path
from store._chain import GENESIS_HASH, VerifyResult, verify_event_rows
from store._conn import rollback_quietly
from store._errors import NotFoundError, StoreError, ValidationError
from store._fields import json_object
from store._model import Event, EventFilter, ExportResult, InterventionHistory
from store._outpath import safe_output_path, write_atomic
from store._refs import verify_refs
from store._roles import Action, Actor, check_permission
from store._schema import EVENT_COLUMNS, REF_TABLES, utc_now_iso
from store._store_append import AppendingStore
from store._store_base import STORE_FILENAME

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Store",
]

_COLS = ", ".join(EVENT_COLUMNS)


class Store(AppendingStore):
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

    @classmethod
    def for_workspace(cls, workspace: str | Path, **kwargs: Any) -> Store:
        """The store of a workspace directory (``<workspace>/store.duckdb``)."""
        return cls(Path(workspace) / STORE_FILENAME, **kwargs)

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
        import pandas as pd

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
        import pandas as pd

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
        from store._report import render_report  # imported here: `audit verify` starts faster

        return render_report(history, self.verify(), generated_at=utc_now_iso(),
                             workspace_label=workspace_label or self.path.parent.name,
                             motivation=motivation)

    def history_report_html(
        self, filters: EventFilter | None = None, *, workspace_label: str | None = None
    ) -> str:
        """The history report (HTML, print-ready) over ``filters`` (as for :meth:`export`)."""
        flt = filters or EventFilter()
        from store._report_history import render_history_report

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
        from store._export import file_sha256, resolve_format, write_export

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
