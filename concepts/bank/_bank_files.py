"""The bank on disk: ``bank.json`` (written atomically, its ``revision`` bumped when the content
changes) and the example image arrays next to it (``arrays/<sha>.npy``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from concepts._errors import ConceptError
from concepts.bank._concept import Concept, ExampleSet
from store import atomic_path

__all__ = ["read_bank_file", "write_array", "write_bank_file"]


def write_array(root: Path, fname: str, arr: np.ndarray) -> None:
    """Write ``root/arrays/fname`` atomically unless it exists (its name is its content hash)."""
    p = root / "arrays" / fname
    if p.is_file():
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p, prefix=".tmp-", suffix=".npy") as tmp:
        np.save(tmp, arr)


def write_bank_file(p: Path, body: dict[str, Any], revision: int) -> int:
    """Write ``body`` to ``p`` atomically and return its revision: ``revision``, or the file's
    revision + 1 when the content (all but the revision) differs from what ``p`` holds."""
    old: dict[str, Any] = {}
    if p.is_file():
        try:
            old = json.loads(p.read_text())
        except json.JSONDecodeError:
            old = {}
    strip = {k: v for k, v in body.items() if k != "revision"}
    if {k: v for k, v in old.items() if k != "revision"} != strip:
        revision = int(old.get("revision", revision)) + 1
    body["revision"] = revision
    with atomic_path(p, prefix=".bank-", suffix=".json") as tmp, open(tmp, "w") as f:
        json.dump(body, f, indent=1)
    return revision


def read_bank_file(p: Path) -> tuple[list[Concept], ExampleSet | None, int]:
    """The concepts, random pool and revision in ``p``.

    Raises
    ------
    ConceptError
        A missing or corrupt file.
    """
    if not p.is_file():
        raise ConceptError(f"no concept bank at {p} — build one with ConceptBank.from_concept_sets")
    try:
        d = json.loads(p.read_text())
        concepts = [Concept.from_json(c) for c in d.get("concepts", [])]
        pool = ExampleSet.from_json(d["random_pool"]) if d.get("random_pool") else None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConceptError(f"{p} is corrupt ({exc}) — delete it to rebuild the default bank") from exc
    return concepts, pool, int(d.get("revision", 0))
