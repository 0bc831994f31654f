"""The export formats, in a module that imports nothing (the CLI's help names them)."""

from __future__ import annotations

__all__ = ["EXPORT_FORMATS"]

#: Supported export formats.
EXPORT_FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")
