"""Canonical JSON (RFC 8785 style) and validation of the values the store accepts.

Canonical form, as hashed by the event chain:

* object keys sorted by their UTF-16 code units (RFC 8785 §3.2.3), no whitespace;
* strings as JSON.stringify writes them: ``"`` and ``\\`` escaped, control characters as
  ``\\b \\t \\n \\f \\r`` or ``\\u00xx``, everything else literal (``ensure_ascii=False``),
  encoded as UTF-8;
* numbers: Python ``int`` exactly (arbitrary precision), ``float`` formatted like
  ECMAScript's ``Number.prototype.toString`` (shortest round-trip digits; ``1.0`` -> ``1``,
  ``1e21`` -> ``1e+21``, ``-0.0`` -> ``0``);
* ``true``, ``false``, ``null``.

Non-finite floats (NaN, +/-inf) have no JSON form. **Decision:** the store refuses them with a
:class:`~store.ValidationError` that names the offending path (``evidence.p_adj``); it never
stores them as strings or nulls on its own, so the stored value is always the caller's value.
A caller that prefers nulls calls :func:`replace_nonfinite` explicitly, which returns the
cleaned value and the list of paths it changed (to record in a note, for instance).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import sys
from collections.abc import Mapping
from typing import Any

from store._errors import ValidationError

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "canonical_json",
    "check_text",
    "normalise_json",
    "replace_nonfinite",
    "sha256_hex",
]

#: Largest accepted serialised size of one JSON field (spec, evidence, metric deltas): 1 MiB.
MAX_JSON_BYTES = 1 << 20
#: Deepest accepted nesting of a JSON field.
MAX_JSON_DEPTH = 64

JsonValue = Any  # None | bool | int | float | str | list[JsonValue] | dict[str, JsonValue]


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _es_number(x: float) -> str:
    """Format a finite float like ECMAScript ``Number.prototype.toString``."""
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    r = repr(abs(x))  # shortest round-trip digits, same as ECMAScript's
    mant, _, exp_s = r.partition("e")
    exp = int(exp_s) if exp_s else 0
    int_part, _, frac_part = mant.partition(".")
    digits = (int_part + frac_part).lstrip("0")
    # position of the decimal point relative to the first significant digit
    lead_zeros = len(int_part + frac_part) - len((int_part + frac_part).lstrip("0"))
    n = len(int_part) + exp - lead_zeros
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        e_s = ("+" if e > 0 else "-") + str(abs(e))
        out = digits + "e" + e_s if k == 1 else digits[0] + "." + digits[1:] + "e" + e_s
    return sign + out


def _utf16_key(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


def _canon(obj: JsonValue, out: list[str]) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, str):
        out.append(json.dumps(obj, ensure_ascii=False))
    elif isinstance(obj, int):
        out.append(str(int(obj)))
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValidationError(
                f"{obj!r} is not valid JSON; replace non-finite numbers with None "
                "(store.replace_nonfinite does this) before storing"
            )
        out.append(_es_number(obj))
    elif isinstance(obj, Mapping):
        out.append("{")
        for i, key in enumerate(sorted(obj, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _canon(obj[key], out)
        out.append("}")
    elif isinstance(obj, list | tuple):
        out.append("[")
        for i, item in enumerate(obj):
            if i:
                out.append(",")
            _canon(item, out)
        out.append("]")
    else:  # pragma: no cover - normalise_json guarantees JSON types
        raise ValidationError(f"{type(obj).__name__} is not JSON-serialisable")


def canonical_json(obj: JsonValue) -> bytes:
    """Canonical UTF-8 JSON bytes of an already-normalised JSON value.

    Raises
    ------
    ValidationError
        For non-finite floats or strings that are not valid Unicode (lone surrogates).
    """
    out: list[str] = []
    _canon(obj, out)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            "text contains a lone surrogate (not valid Unicode); decode the source with "
            "errors='strict' or fix the text"
        ) from exc


def check_text(value: object, what: str, *, max_bytes: int, allow_bytes: bool = False) -> str:
    """Validate a text field and return it as ``str``.

    Parameters
    ----------
    value
        A ``str`` (or, when ``allow_bytes``, UTF-8 ``bytes``).
    what
        Name used in messages (``"rationale"``).
    max_bytes
        Largest accepted UTF-8 size.
    allow_bytes
        Accept ``bytes``/``bytearray`` that decode as strict UTF-8.

    Raises
    ------
    ValidationError
        Wrong type, invalid UTF-8, lone surrogates, or too large.
    """
    if allow_bytes and isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"{what} is not valid UTF-8 (bad byte at offset {exc.start}); "
                "decode it with the right encoding and pass a str"
            ) from None
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a str, not {type(value).__name__}")
    try:
        size = len(value.encode("utf-8", errors="strict"))
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"{what} contains a lone surrogate at index {exc.start} (not valid Unicode); "
            "fix the text before storing it"
        ) from None
    if size > max_bytes:
        raise ValidationError(
            f"{what} is {size:,} bytes of UTF-8; the limit is {max_bytes:,} bytes. "
            "Shorten it, or store the long document elsewhere and reference it by its sha256"
        )
    return value


def normalise_json(value: object, what: str) -> JsonValue:
    """Return ``value`` as plain JSON types (dict/list/str/int/float/bool/None).

    numpy scalars and other ``numbers`` types become ``int``/``float``; tuples become lists.
    Everything is checked: string keys only, finite numbers, valid Unicode, depth and size
    limits.

    Raises
    ------
    ValidationError
        With the path of the first offending element (``evidence.runs[3]``).
    """
    result = _norm(value, what, 0)
    size = len(canonical_json(result))
    if size > MAX_JSON_BYTES:
        raise ValidationError(
            f"{what} is {size:,} bytes as JSON; the limit is {MAX_JSON_BYTES:,} bytes. "
            "Store large tables with the record_* methods instead"
        )
    return result


def _norm(value: object, path: str, depth: int) -> JsonValue:
    if depth > MAX_JSON_DEPTH:
        raise ValidationError(f"{path}: nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return check_text(value, path, max_bytes=MAX_JSON_BYTES)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        if not math.isfinite(f):
            raise ValidationError(
                f"{path} is {f!r}, which is not valid JSON; replace non-finite numbers with "
                "None (store.replace_nonfinite does this and lists the paths) before storing"
            )
        return f
    np = sys.modules.get("numpy")  # a numpy bool exists only once numpy is loaded
    if np is not None and isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Mapping):
        out: dict[str, JsonValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(
                    f"{path}: key {key!r} is a {type(key).__name__}; JSON object keys must be str"
                )
            check_text(key, f"{path} key", max_bytes=MAX_JSON_BYTES)
            out[key] = _norm(item, f"{path}.{key}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_norm(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise ValidationError(
        f"{path} is a {type(value).__name__}, which is not JSON-serialisable; "
        "pass dicts, lists, str, int, float, bool or None"
    )


def replace_nonfinite(value: object, path: str = "$") -> tuple[Any, list[str]]:
    """Replace NaN/inf floats by ``None``, returning the new value and the changed paths.

    Use this explicitly before storing values that may hold undefined statistics (a p-value
    of NaN, say), and record the returned paths in a note if they matter.

    Examples
    --------
    >>> replace_nonfinite({"p": float("nan"), "n": [1.0, float("inf")]})
    ({'p': None, 'n': [1.0, None]}, ['$.p', '$.n[1]'])
    """
    changed: list[str] = []

    def walk(v: object, p: str) -> object:
        if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):
            if not math.isfinite(float(v)):
                changed.append(p)
                return None
            return v
        if isinstance(v, Mapping):
            return {k: walk(item, f"{p}.{k}") for k, item in v.items()}
        if isinstance(v, list | tuple):
            return [walk(item, f"{p}[{i}]") for i, item in enumerate(v)]
        return v

    return walk(value, path), changed


def dumps_stored(value: JsonValue) -> str:
    """The text stored in a JSON column: sorted keys, compact, floats kept as floats."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False)


def _reject_constant(name: str) -> None:
    raise ValidationError(f"{name} is not valid JSON; use null for missing numbers")


def loads_json(text: str, what: str) -> JsonValue:
    """Parse JSON text strictly (``NaN``/``Infinity`` literals refused)."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValidationError(f"{what}: nested too deeply") from None
