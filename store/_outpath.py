"""Where exports and reports may be written: never over the store, a workspace or a directory.

Every file the store writes for a user (exports, reports) goes through
:func:`safe_output_path` and :func:`write_atomic`:

* symbolic links are refused (a link could point at the store), the folder is resolved;
* the store file, its write-ahead log, its anchor file and any file named like one
  (``store.duckdb*``, ``anchors.jsonl``, ``roles.toml``, ``workspace.json``) are refused,
  whether they exist or not;
* an existing target is refused unless ``overwrite`` is given, and even then only a plain
  file (one hard link) with an export/report extension that lies outside every workspace
  (a folder holding ``store.duckdb`` or ``workspace.json``) may be replaced;
* the bytes go to a temporary sibling first and are renamed into place, so a hard link to
  some other file is never written through and a failure leaves no partial file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from store._atomic import atomic_path
from store._errors import StoreError, ValidationError

__all__ = ["OUTPUT_EXTENSIONS", "PROTECTED_NAMES", "find_workspace_root", "safe_output_path",
           "write_atomic"]

#: Extensions an existing file may have to be replaced with ``overwrite``.
OUTPUT_EXTENSIONS: frozenset[str] = frozenset(
    {".csv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json", ".html", ".htm", ".pdf"}
)
#: File names that are never an export or a report (workspace and store files).
PROTECTED_NAMES: frozenset[str] = frozenset(
    {"store.duckdb", "store.duckdb.wal", "anchors.jsonl", "roles.toml", "workspace.json"}
)
_WORKSPACE_MARKERS = ("store.duckdb", "workspace.json")


def find_workspace_root(path: Path) -> Path | None:
    """The nearest folder at or above ``path`` that is a workspace (None when there is none)."""
    for folder in (path, *path.parents):
        if any((folder / m).exists() for m in _WORKSPACE_MARKERS):
            return folder
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_existing(target: Path, overwrite: bool) -> None:
    st = target.lstat()
    if stat.S_ISDIR(st.st_mode):
        raise ValidationError(f"{target} is a directory; give a file name for the output")
    if not stat.S_ISREG(st.st_mode):
        raise ValidationError(f"{target} is not a regular file; choose another output name")
    if not overwrite:
        raise ValidationError(f"{target} already exists; choose a new name or pass --overwrite")
    ws = find_workspace_root(target.parent)
    if ws is not None:
        raise ValidationError(
            f"{target} is an existing file inside the workspace {ws}; write exports and "
            "reports to a new file or outside the workspace"
        )
    if target.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise ValidationError(
            f"{target} is not an export or report file ({target.suffix or 'no extension'}); "
            "refusing to overwrite it"
        )
    if st.st_nlink > 1:
        raise ValidationError(f"{target} has other hard links; refusing to overwrite it")


def safe_output_path(
    out: str | os.PathLike[str], *, protected: Iterable[Path] = (), overwrite: bool = False
) -> Path:
    """Check that ``out`` may be written and return it as an absolute, resolved path.

    Parameters
    ----------
    out
        The file the user asked for.
    protected
        Files that must never be written (the store being exported, its anchor file).
    overwrite
        Allow replacing an existing export/report file outside any workspace.

    Raises
    ------
    ValidationError
        The target is the store, a workspace file, a directory, a link, an existing file
        (without ``overwrite``) or its folder does not exist.
    """
    raw = Path(out).expanduser()
    if raw.name in ("", ".", ".."):
        raise ValidationError(f"{out} is not a file name; give a file name for the output")
    if raw.is_symlink():
        raise ValidationError(f"{raw} is a symbolic link; give the path of a plain file")
    parent = raw.parent.resolve()
    if not parent.is_dir():
        raise ValidationError(f"the folder {raw.parent} does not exist; create it first")
    target = parent / raw.name
    lowered = target.name.lower()
    if lowered in PROTECTED_NAMES or lowered.startswith("store.duckdb"):
        raise ValidationError(
            f"{target} is a store or workspace file name; refusing to write over it"
        )
    for prot in protected:
        p = Path(prot)
        resolved = p.resolve() if p.exists() else p.absolute()
        if target == resolved or _same_file(target, p):
            raise ValidationError(f"{target} is the audit store or one of its files; "
                                  "refusing to write over it")
    if target.exists() or target.is_symlink():
        _check_existing(target, overwrite)
    return target


def write_atomic(target: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``target``, then rename it into place.

    ``target`` must come from :func:`safe_output_path`. The temporary file is removed on
    any failure, so ``target`` is either the complete new file or untouched.

    Raises
    ------
    StoreError
        The file could not be written or renamed.
    """
    try:
        with atomic_path(target, private=False) as tmp:
            write(tmp)
    except OSError as exc:
        raise StoreError(f"writing {target} failed: {exc}") from None
