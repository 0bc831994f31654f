"""The Case explorer's table at any size: filters applied on the server, one page of rows sent.

A split can hold tens of thousands of cases. The browser gets one page of the filtered table
(:func:`page_of`) and pickers list a bounded set of case ids (:func:`picker_options`); the
filtering itself runs in pandas on the cached table (:func:`filter_cases`), never per row in
Python. Nothing here draws widgets: the page (``workbench/pages/cases.py``) does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from concepts import Workspace
from workbench.ui._state import dataset, dataset_key

__all__ = [
    "PAGE_SIZES",
    "PICKER_LIMIT",
    "CaseFilter",
    "CasePage",
    "case_id_index",
    "filter_cases",
    "page_of",
    "picker_options",
    "unknown_ids",
]

#: Rows per page of the case table the user can choose.
PAGE_SIZES: tuple[int, ...] = (25, 50, 100, 200)
#: At most this many case ids are listed in a picker; above it the picker lists the chosen ids
#: and the cases on the table's current page, and takes any other id typed in full.
PICKER_LIMIT = 2000


@dataclass(frozen=True)
class CaseFilter:
    """What the Case explorer's filters ask for (empty / ``"all"``: no restriction)."""

    classes: tuple[str, ...] | None = None
    outcome: str = "all"
    artifacts: tuple[str, ...] = ()
    skin_tones: tuple[str, ...] = ()


def filter_cases(cases: pd.DataFrame, flt: CaseFilter) -> pd.DataFrame:
    """The rows of the case table (:func:`workbench.ui._concepts.case_table`) that ``flt`` keeps,
    in table order, as one boolean mask (vectorised: no per-row Python)."""
    keep = pd.Series(True, index=cases.index)
    if flt.classes is not None:
        keep &= cases["label"].isin(list(flt.classes))
    if flt.outcome == "correct":
        keep &= cases["correct"].astype(bool)
    elif flt.outcome == "incorrect":
        keep &= ~cases["correct"].astype(bool)
    for a in flt.artifacts:
        if a in cases:
            keep &= cases[a] == 1
    if flt.skin_tones and "skin_tone" in cases:
        keep &= cases["skin_tone"].isin(list(flt.skin_tones))
    return cases[keep]


@dataclass(frozen=True)
class CasePage:
    """One page of a filtered case table: its rows, which page it is, and how many there are."""

    rows: pd.DataFrame
    page: int
    n_pages: int
    size: int
    n_matching: int

    @property
    def first(self) -> int:
        """1-based position of the page's first row among the matching cases (0 when none)."""
        return (self.page - 1) * self.size + 1 if self.n_matching else 0

    @property
    def last(self) -> int:
        return (self.page - 1) * self.size + len(self.rows)

    def view_key(self, split: str) -> str:
        """Names what this page shows (split, page, size and a digest of its case ids): a table
        keyed by it starts with no ticked rows whenever other cases are shown."""
        ids = "|".join(self.rows["case_id"].astype(str)) if "case_id" in self.rows else ""
        digest = hashlib.sha256(ids.encode()).hexdigest()[:12]
        return f"{split}|{self.page}|{self.size}|{digest}"


def page_of(shown: pd.DataFrame, page: int, size: int) -> CasePage:
    """Page ``page`` (1-based, clamped to the pages there are) of ``size`` rows of ``shown``."""
    size = max(1, int(size))
    n_pages = max(1, -(-len(shown) // size))
    page = min(max(1, int(page)), n_pages)
    start = (page - 1) * size
    return CasePage(shown.iloc[start:start + size], page, n_pages, size, len(shown))


def picker_options(all_ids: Sequence[str], chosen: Iterable[str], visible: Iterable[str],
                   limit: int | None = None) -> tuple[list[str], bool]:
    """The options of a case-id picker and whether they are truncated.

    Up to ``limit`` ids: all of them, as before. Above: the ``chosen`` ids first, then the ids on
    the table's current page (``visible``, at most one page of rows); the picker then accepts
    other ids typed in full (checked with :func:`unknown_ids`). ``limit`` defaults to
    :data:`PICKER_LIMIT`."""
    limit = PICKER_LIMIT if limit is None else int(limit)
    chosen = [str(c) for c in chosen]
    if len(all_ids) <= limit:
        ids = [str(i) for i in all_ids]
        known = set(ids)
        return [*ids, *(c for c in chosen if c not in known)], False
    return list(dict.fromkeys([*chosen, *(str(v) for v in visible)])), True


def unknown_ids(ids: Iterable[str], known: pd.Index) -> list[str]:
    """The ids of ``ids`` that are not case ids of the data set (``known``: an index of the ids,
    whose hash table makes each look-up O(1))."""
    return [str(i) for i in ids if str(i) not in known]


@st.cache_resource(show_spinner=False, max_entries=4)
def _id_index(root: str, name: str, content_hash: str) -> pd.Index:
    return pd.Index(dataset(Workspace(root)).cases["case_id"].astype(str))


def case_id_index(ws: Workspace) -> pd.Index:
    """Every case id of the active data set (shared per content hash; never modified)."""
    name, h = dataset_key(ws)
    return _id_index(str(ws.root), name, h)
