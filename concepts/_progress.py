"""The progress-callback type shared by every long-running step (one definition for all packages)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ProgressFn"]

#: Called as ``progress(stage, done, total)``: a short stage name, the units done so far and the
#: total number of units of that stage.
ProgressFn = Callable[[str, int, int], None]
