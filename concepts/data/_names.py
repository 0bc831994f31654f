"""Names of classes, concepts and columns: what may name one (visible text, not a missing value)."""

from __future__ import annotations

import unicodedata

from concepts._errors import DataError

__all__ = ["check_name", "name_problem"]

#: Spellings of a missing value (pandas' default ``na_values``, compared case-insensitively):
#: never the name of a class, concept or column.
_MISSING_NAMES = frozenset({
    "", "#n/a", "#n/a n/a", "#na", "-1.#ind", "-1.#qnan", "-nan", "1.#ind", "1.#qnan", "<na>",
    "n/a", "na", "nan", "null", "none", "nat",
})
#: Unicode categories that display as nothing or reorder text: control (Cc), format (Cf: bidi
#: overrides and isolates, zero-width characters, BOM), surrogates, private use, unassigned,
#: line/paragraph separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def name_problem(value: object) -> str:
    """Why ``value`` cannot name a class, concept or column (``""`` when it can).

    Refused: non-strings, empty or blank names, leading/trailing white space, spellings of a
    missing value (``NaN``, ``nan``, ``None``, ``NA``, ...), and invisible or text-reordering
    characters (bidi controls, zero-width characters, control characters, spaces other than
    the plain one) that would make two names look alike or a name look like something else.
    """
    if not isinstance(value, str):
        return f"{value!r} is not text"
    if value.strip().lower() in _MISSING_NAMES:
        return f"{value!r} reads as a missing value"
    if value != value.strip():
        return f"{value!r} has leading or trailing white space"
    for ch in value:
        cat = unicodedata.category(ch)
        if cat in _INVISIBLE or (cat == "Zs" and ch != " "):
            return (
                f"{value!r} contains the invisible or text-reordering character U+{ord(ch):04X} "
                f"({unicodedata.name(ch, 'unnamed')})"
            )
    return ""


def check_name(value: object, what: str) -> str:
    """``value`` if :func:`name_problem` finds nothing; else :class:`DataError` naming ``what``."""
    problem = name_problem(value)
    if problem:
        raise DataError(f"{what} {problem} — use a visible name such as 'melanoma'")
    return str(value)
