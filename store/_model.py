"""Result types: events, filters, intervention histories, export results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from store._canonical import loads_json
from store._errors import ValidationError
from store._schema import EVENT_COLUMNS, JSON_EVENT_COLUMNS, utc_now_iso

__all__ = ["Event", "EventFilter", "ExportResult", "InterventionHistory"]


@dataclass(frozen=True)
class Event:
    """One row of the event log, with JSON columns parsed.

    Attributes mirror the ``events`` table (see ``store/migrations/0001_init.sql``);
    ``spec``, ``evidence``, ``metric_deltas`` and ``records`` are dicts or None.
    """

    seq: int
    event_id: str
    ts: str
    actor_id: str
    actor_role: str
    actor_name: str
    actor_source: str
    action: str
    model_id: str | None
    weights_sha_before: str | None
    weights_sha_after: str | None
    dataset_hash: str | None
    intervention_id: str | None
    concept: str | None
    spec: dict[str, Any] | None
    rationale: str | None
    evidence: dict[str, Any] | None
    metric_deltas: dict[str, Any] | None
    records: dict[str, Any] | None
    project_version: str
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | Sequence[Any]) -> Event:
        """Build from a stored row (mapping, or a tuple in ``EVENT_COLUMNS`` order)."""
        values: dict[str, Any] = dict(row) if isinstance(row, Mapping) else dict(zip(EVENT_COLUMNS, row, strict=True))
        for col in JSON_EVENT_COLUMNS:
            if isinstance(values.get(col), str):
                values[col] = loads_json(values[col], col)
        values["seq"] = int(values["seq"])
        kwargs: dict[str, Any] = {c: values.get(c) for c in EVENT_COLUMNS}
        return cls(**kwargs)

    def __hash__(self) -> int:  # dict fields are unhashable; the event id is unique
        return hash(self.event_id)

    @property
    def timestamp(self) -> datetime:
        """``ts`` as an aware UTC datetime."""
        return datetime.fromisoformat(self.ts)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-able dict."""
        return asdict(self)


def _parse_time(value: datetime | date | str, what: str, *, end: bool) -> str:
    """Normalise a bound to the stored timestamp text format (UTC, fixed width)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            # a bare date: since -> its start, until -> its end
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(
                f"{what} {value!r} is not an ISO date or timestamp; use e.g. 2026-01-31 or "
                "2026-01-31T12:00:00Z"
            ) from None
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)  # naive = UTC
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day, tzinfo=UTC)
        if end:
            dt = dt + timedelta(days=1) - timedelta(microseconds=1)
    else:
        raise ValidationError(f"{what} must be a datetime, date or ISO string")
    return utc_now_iso(dt)


@dataclass(frozen=True)
class EventFilter:
    """Filters for :meth:`Store.events` and :meth:`Store.export` (all optional, ANDed).

    Attributes
    ----------
    since, until
        Inclusive time bounds: datetimes (naive ones are taken as UTC), dates (``until`` a
        date includes that whole day) or ISO strings.
    actor
        Actor id.
    concept
        Concept name/id recorded on the event.
    model
        Model id.
    action
        Action name (``"applied"``).
    intervention_id
        Intervention id.
    """

    since: datetime | date | str | None = None
    until: datetime | date | str | None = None
    actor: str | None = None
    concept: str | None = None
    model: str | None = None
    action: str | None = None
    intervention_id: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        """SQL ``WHERE`` clause (with ``?`` placeholders) and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.since is not None:
            clauses.append("ts >= ?")
            params.append(_parse_time(self.since, "since", end=False))
        if self.until is not None:
            clauses.append("ts <= ?")
            params.append(_parse_time(self.until, "until", end=True))
        for column, value in (
            ("actor_id", self.actor),
            ("concept", self.concept),
            ("model_id", self.model),
            ("action", self.action),
            ("intervention_id", self.intervention_id),
        ):
            if value is not None:
                if not isinstance(value, str):
                    raise ValidationError(f"filter {column} must be a str, got {value!r}")
                clauses.append(f"{column} = ?")
                params.append(value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def describe(self) -> dict[str, str]:
        """The filters that are set, as strings (recorded in ``exported`` events)."""
        return {k: str(v) for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class InterventionHistory:
    """Everything recorded about one intervention.

    Attributes
    ----------
    intervention_id
        The id.
    spec
        The proposed spec (None if only events without a proposal exist).
    events
        Events about the intervention, in seq order.
    effects
        Recorded effects: dicts with ``metrics_before``, ``metrics_after``, ``reliance``,
        ``event_seq``.
    """

    intervention_id: str
    spec: dict[str, Any] | None
    events: list[Event] = field(default_factory=list)
    effects: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ExportResult:
    """What :meth:`Store.export` wrote.

    Attributes
    ----------
    path
        The file written.
    format
        ``"csv"``, ``"parquet"`` or ``"jsonl"``.
    n_rows
        Events exported.
    sha256
        sha256 of the file (also recorded in the ``exported`` event).
    event
        The ``exported`` event appended after writing.
    """

    path: Path
    format: str
    n_rows: int
    sha256: str
    event: Event
