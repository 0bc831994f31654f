"""Validation of event fields and reference-table rows (everything before any write).

Decisions, documented here and in ``store/README.md``:

* rationale: ``str`` or UTF-8 ``bytes``; at most 64 KiB of UTF-8; invalid UTF-8 bytes or lone
  surrogates are refused; otherwise stored verbatim (SQL-looking text, NUL, emoji, newlines).
  Required (not blank) for ``applied``, ``reverted`` and ``fix_recorded``.
* identifiers (model id, concept, intervention id, hashes of data sets/examples): non-empty
  ``str`` of at most 256 characters without control characters; stored verbatim.
* weights sha256: 64 hex digits, stored lowercase.
* spec / evidence / metric deltas: JSON objects (a ``Mapping``, or ``str`` JSON text that
  parses to an object); at most 1 MiB each; non-finite numbers refused (see ``_canonical``).
"""

from __future__ import annotations

import math
import numbers
import re
import sys
from collections.abc import Mapping
from typing import Any

from store._canonical import (
    check_text,
    dumps_stored,
    loads_json,
    normalise_json,
)
from store._errors import ValidationError
from store._roles import Action, Actor
from store._schema import RefTable

__all__ = [
    "MAX_IDENT_CHARS",
    "MAX_RATIONALE_BYTES",
    "blank",
    "cell",
    "event_fields",
    "ident",
    "json_object",
    "rationale_text",
    "req_ident",
    "sha256_field",
]

#: Largest accepted rationale, in bytes of UTF-8 (64 KiB).
MAX_RATIONALE_BYTES = 64 * 1024
#: Longest accepted identifier.
MAX_IDENT_CHARS = 256
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)
_NEEDS_RATIONALE = {Action.APPLIED, Action.REVERTED, Action.FIX_RECORDED}


def ident(value: object, what: str, *, required: bool = False) -> str | None:
    """Validate an identifier field (None allowed unless ``required``)."""
    if value is None:
        if required:
            raise ValidationError(f"{what} is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a str, not {type(value).__name__}")
    text = check_text(value, what, max_bytes=4 * MAX_IDENT_CHARS)
    if not text.strip():
        raise ValidationError(f"{what} must not be blank")
    if len(text) > MAX_IDENT_CHARS:
        raise ValidationError(f"{what} is {len(text)} characters; the limit is {MAX_IDENT_CHARS}")
    if _CONTROL.search(text):
        raise ValidationError(f"{what} {text!r} contains control characters; remove them")
    return text


def req_ident(value: object, what: str) -> str:
    """Validate a required identifier."""
    text = ident(value, what, required=True)
    if text is None:  # pragma: no cover - ident(required=True) never returns None
        raise ValidationError(f"{what} is required")
    return text


def sha256_field(value: object, what: str, *, required: bool = False) -> str | None:
    """Validate a sha256 hex digest (returned lowercase)."""
    if value is None:
        if required:
            raise ValidationError(f"{what} is required")
        return None
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ValidationError(
            f"{what} must be a sha256 hex digest (64 hex digits), got {str(value)[:80]!r}"
        )
    return value.lower()


def rationale_text(value: object, *, required: bool, action: str) -> str | None:
    """Validate a rationale (``str`` or UTF-8 ``bytes``)."""
    if value is None:
        if required:
            raise ValidationError(
                f"a rationale is required to record '{action}': say why, in a sentence or two"
            )
        return None
    text = check_text(value, "rationale", max_bytes=MAX_RATIONALE_BYTES, allow_bytes=True)
    if required and not text.strip():
        raise ValidationError(
            f"a rationale is required to record '{action}' and it is blank: say why"
        )
    return text


def json_object(value: object, what: str) -> tuple[dict[str, Any] | None, str | None]:
    """Validate a JSON-object field; return (normalised value, stored text)."""
    if value is None:
        return None, None
    if isinstance(value, str):
        value = loads_json(check_text(value, what, max_bytes=1 << 20), what)
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"{what} must be a JSON object (a dict), not {type(value).__name__}"
        )
    norm = normalise_json(value, what)
    return norm, dumps_stored(norm)


def pandas_missing(value: Any) -> bool:
    """True for pandas' ``NA`` and ``NaT``, without importing pandas (a value can only be one of
    them once pandas is loaded, so the CLI's store commands start without it)."""
    pd = sys.modules.get("pandas")
    return pd is not None and (value is pd.NA or value is pd.NaT)


def cell(
    value: Any, kind: str, where: str, *, nan_as_null: bool, notes: list[str]
) -> Any:
    """Validate one reference-table cell of ``kind`` ("text", "int", "float", "json").

    Returns the normalised value (JSON cells: the normalised object; ``dumps_stored`` gives
    the text). Missing values (None, pandas NA) become None. NaN/inf in numeric cells is
    refused unless ``nan_as_null``, in which case it becomes None and ``where`` is appended to
    ``notes``.
    """
    if value is None or pandas_missing(value):
        return None
    if kind == "text":
        if isinstance(value, float) and math.isnan(value):
            return None  # pandas' missing marker in string columns
        if not isinstance(value, str):
            return _bad(where, value, "a str")
        return check_text(value, where, max_bytes=1 << 20)
    if kind == "json":
        return normalise_json(value, where)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return _bad(where, value, "a number")
    f = float(value)
    if not math.isfinite(f):
        if nan_as_null:
            notes.append(where)
            return None
        raise ValidationError(
            f"{where} is {f!r}, which cannot be stored (not valid JSON, breaks the hash); "
            "pass nan_as_null=True to store it as null with a note, or fix the value"
        )
    if kind == "float":
        return f
    if isinstance(value, numbers.Integral) or f.is_integer():
        i = int(value) if isinstance(value, numbers.Integral) else int(f)
        if not _INT64[0] <= i <= _INT64[1]:
            raise ValidationError(f"{where} = {i} does not fit in 64 bits")
        return i
    return _bad(where, value, "an integer")


def _bad(where: str, value: Any, expected: str) -> Any:
    raise ValidationError(f"{where} must be {expected}, got {type(value).__name__} {value!r:.80}")


def check_int32(value: int | None, what: str) -> int | None:
    """Refuse integers that do not fit an INTEGER column."""
    if value is not None and not _INT32[0] <= value <= _INT32[1]:
        raise ValidationError(f"{what} = {value} does not fit in 32 bits")
    return value


def ref_row(table: RefTable, values: Mapping[str, Any], where: str, *, nan_as_null: bool,
            notes: list[str]) -> tuple[dict[str, Any], list[Any]]:
    """Validate a reference row; return (normalised payload for hashing, stored values)."""
    payload: dict[str, Any] = {}
    stored: list[Any] = []
    for col, kind in table.columns:
        v = cell(values.get(col), kind, f"{where}.{col}", nan_as_null=nan_as_null, notes=notes)
        payload[col] = v
        stored.append(dumps_stored(v) if kind == "json" and v is not None else v)
    return payload, stored


def event_fields(actor: Actor, act: Action, **kw: Any) -> dict[str, Any]:
    """Validated event columns (all but the chain fields) from ``append_event``'s keywords."""
    fields: dict[str, Any] = {
        "actor_id": actor.id,
        "actor_role": actor.role.value,
        "actor_name": actor.display_name,
        "actor_source": actor.source,
        "action": act.value,
        "model_id": ident(kw["model_id"], "model_id"),
        "weights_sha_before": sha256_field(kw["weights_sha_before"], "weights_sha_before"),
        "weights_sha_after": sha256_field(kw["weights_sha_after"], "weights_sha_after"),
        "dataset_hash": ident(kw["dataset_hash"], "dataset_hash"),
        "intervention_id": ident(kw["intervention_id"], "intervention_id"),
        "concept": ident(kw["concept"], "concept"),
        "rationale": rationale_text(
            kw["rationale"], required=act in _NEEDS_RATIONALE, action=act.value
        ),
        "records": None,
    }
    for name in ("spec", "evidence", "metric_deltas"):
        fields[name] = json_object(kw[name], name)[1]
    return fields


def blank(**given: Any) -> dict[str, Any]:
    """Event field keywords with the unspecified ones set to None."""
    keys = ("spec", "rationale", "evidence", "metric_deltas", "model_id", "weights_sha_before",
            "weights_sha_after", "dataset_hash", "intervention_id", "concept")
    return {k: given.get(k) for k in keys}
