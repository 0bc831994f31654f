"""Tables that fit the terminal: one line per row, the most important columns first.

Used by ``confounders`` and ``tcav`` (``--format table``). Columns are taken in the order given
(most important first) while they fit the console width; long text is cut with an ellipsis;
the caption names the columns left out. ``--format json|csv`` always prints everything.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SHORT_HEADERS", "print_fit_table"]

#: Short headers of long column names.
SHORT_HEADERS: dict[str, str] = {
    "odds_ratio": "OR", "p_adjusted": "p adj", "p_value": "p", "clinically_relevant": "clin.",
    "score_mean": "score", "random_mean": "random", "cav_accuracy": "CAV acc",
    "stability": "stab.", "significant": "sig.", "prevalence_class": "prev cls",
    "prevalence_other": "prev oth", "reliance": "reliance", "relation": "relation",
}
_TEXT_CAP = 18  # widest a text column gets
_GAP = 3  # padding and divider per column


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        return f"{v:.2g}" if abs(v) < 1e-3 and v != 0 else f"{v:.3f}"
    return " ".join(str(v).split())


def _plan(df: pd.DataFrame, cells: dict[str, list[str]], width: int) -> list[tuple[str, int]]:
    chosen: list[tuple[str, int]] = []
    used = 0
    for col in df.columns:
        header = SHORT_HEADERS.get(str(col), str(col))
        longest = max([len(header), *(len(c) for c in cells[col])])
        w = min(longest, _TEXT_CAP)
        if used + w + _GAP > width and chosen:
            continue
        chosen.append((str(col), max(w, len(header))))
        used += chosen[-1][1] + _GAP
    return chosen


def print_fit_table(df: pd.DataFrame, *, title: str | None = None,
                    console: Console | None = None) -> None:
    """Print ``df`` on one line per row within the console width (see the module docstring)."""
    con = console or Console()
    cells = {c: [_cell(v) for v in df[c].tolist()] for c in df.columns}
    plan = _plan(df, cells, con.width - 1)
    left_out = [str(c) for c in df.columns if str(c) not in {p for p, _ in plan}]
    caption = (f"more columns: {', '.join(left_out)} (--format json|csv)" if left_out
               else "full values: --format json|csv")
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  caption=caption)
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    for col, w in plan:
        numeric = is_numeric_dtype(df[col]) and not is_bool_dtype(df[col])
        table.add_column(SHORT_HEADERS.get(col, col), width=w, no_wrap=True, overflow="ellipsis",
                         justify="right" if numeric else "left")
    for i in range(len(df)):
        table.add_row(*[cells[col][i] for col, _ in plan])
    con.print(table)
