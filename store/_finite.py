"""Finite-float cleaning: NaN and infinities become ``None`` (JSON ``null``, SQL ``NULL``).

The one helper every package uses for JSON/DuckDB-safe numbers (``store`` is the lowest
layer). :func:`finite_or_none` cleans one value; :func:`to_jsonable` cleans a nested structure
and turns numpy values into plain Python ones. :func:`store.replace_nonfinite` is the variant
that also reports which paths it changed (for evidence that must record it).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

__all__ = ["finite_or_none", "to_jsonable"]


def finite_or_none(v: Any) -> float | None:
    """``float(v)`` when it is a finite number, else ``None`` (JSON-safe evidence values)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def to_jsonable(obj: Any) -> Any:
    """``obj`` with numpy/pandas scalars and arrays made plain and NaN/inf made ``None``.

    Mappings become dicts with ``str`` keys; lists, tuples and arrays become lists; everything
    else (``str``, ``int``, ``None``, ...) is returned as it is.
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    np = sys.modules.get("numpy")  # an array exists only once numpy is loaded: the CLI starts without it
    if np is not None and isinstance(obj, np.ndarray) and obj.ndim > 0:
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item) and not isinstance(obj, str | bytes):
        with suppress(ValueError, TypeError):
            obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
