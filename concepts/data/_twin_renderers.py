"""Twin renderers: data sources that can re-draw a case with an artifact added or removed.

A synthetic data source whose cases can be re-rendered exactly (DermSynth) registers a renderer
here; the analysis code (:mod:`concepts.discovery`) looks one up for a data set and never imports
the generator itself. Data without a renderer need twins made from the data (user-supplied pairs,
or artifact transplant with masks: :func:`concepts.bank.real_twins`).

The built-in sources register themselves when their module is imported; :func:`find_twin_renderer`
imports them first, by the fixed module names in :data:`_BUILTIN_SOURCES` (a code constant:
nothing read from a file or a data set ever names a module to import).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from concepts._errors import DataError
from concepts.data._dataset import Dataset

__all__ = ["TwinRenderer", "find_twin_renderer", "register_twin_renderer"]


class TwinRenderer(Protocol):
    """``render(dataset, idx, artifact, present)`` -> ``(len(idx), S, S, 3)`` uint8 twins.

    Rows ``idx`` of ``dataset`` re-drawn with ``artifact`` present (True) or absent (False),
    everything else exactly as in the original.
    """

    def __call__(self, dataset: Dataset, idx: np.ndarray, artifact: str, present: bool) -> np.ndarray: ...


@dataclass(frozen=True)
class _Source:
    """A registered data source: which data sets it made, and how to re-draw their twins."""

    name: str
    recognizes: Callable[[Dataset], bool]
    render: TwinRenderer


#: Modules that register a twin renderer when imported (fixed here, never taken from input).
_BUILTIN_SOURCES: tuple[str, ...] = ("concepts.dermsynth._twins",)

_SOURCES: dict[str, _Source] = {}
_loaded: list[bool] = [False]


def register_twin_renderer(name: str, recognizes: Callable[[Dataset], bool], render: TwinRenderer) -> None:
    """Register (or replace) the twin renderer of a data source.

    Parameters
    ----------
    name
        The source's name (e.g. ``"dermsynth"``); registering a name again replaces it.
    recognizes
        True for the data sets this source made (e.g. by a column only it writes).
    render
        The :class:`TwinRenderer`.

    Raises
    ------
    DataError
        An empty name, or ``recognizes``/``render`` not callable.
    """
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"a twin renderer needs a non-empty source name, got {name!r}")
    if not callable(recognizes) or not callable(render):
        raise DataError(f"twin renderer {name!r}: recognizes and render must be callables")
    _SOURCES[name] = _Source(name, recognizes, render)


def _load_builtin_sources() -> None:
    if _loaded[0]:
        return
    for module in _BUILTIN_SOURCES:
        importlib.import_module(module)
    _loaded[0] = True


def find_twin_renderer(dataset: Dataset) -> TwinRenderer | None:
    """The twin renderer of the source that made ``dataset``, or None (twins must come from the data).

    Parameters
    ----------
    dataset
        Any data set.

    Returns
    -------
    TwinRenderer or None
        The first registered source that recognizes the data set (in registration order).
    """
    _load_builtin_sources()
    for source in _SOURCES.values():
        if source.recognizes(dataset):
            return source.render
    return None
