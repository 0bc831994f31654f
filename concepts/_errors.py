"""Exceptions raised by the concepts package.

Every exception carries a message that says what went wrong *and* how to fix it.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error the workbench raises on purpose (user-facing)."""


class DataError(WorkbenchError, ValueError):
    """Bad input data: a CSV, an image, a data-set folder."""


class ImageError(DataError):
    """An image file that cannot be read, is truncated, or is too large."""


class ModelError(WorkbenchError, ValueError):
    """A model, checkpoint or layer that cannot be used."""


class UnsafeCheckpointError(ModelError):
    """A checkpoint that would need arbitrary unpickling to load."""


class ConceptError(WorkbenchError, KeyError):
    """An unknown or unusable concept."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class WorkspaceError(WorkbenchError, FileNotFoundError):
    """A workspace that is missing or incomplete."""


class ComputeError(WorkbenchError, RuntimeError):
    """A compute setting that cannot be honoured: an unknown or missing device, an engine that is
    not installed, a distributed run that did not produce every row."""
