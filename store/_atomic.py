"""Write a file atomically: into a temporary sibling first, then rename it over the target.

The one helper every package uses (``store`` is the lowest layer, so ``concepts``, ``graph``,
``interventions`` and ``workbench`` can all import it). A reader never sees a half-written file:
the target is either the complete new file or untouched.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path"]


@contextmanager
def atomic_path(
    target: str | Path,
    *,
    prefix: str | None = None,
    suffix: str = ".tmp",
    private: bool = True,
    mode: int | None = None,
) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on a clean exit rename it onto ``target``.

    Write the new content to the yielded path inside the ``with`` block (any writer that takes
    a path: ``np.save``, ``DataFrame.to_parquet``, ``Path.write_text``, ...). When the block
    raises, the temporary file is removed and ``target`` is left as it was.

    Parameters
    ----------
    target
        The file to write; its folder must exist.
    prefix, suffix
        Name of the temporary file: ``<prefix><random><suffix>`` in ``target``'s folder;
        default prefix ``.<target name>.``. ``np.save`` needs ``suffix=".npy"`` (it appends
        ``.npy`` to any other name).
    private
        ``True``: the temporary file is created at once with mode ``0o600`` (as
        :func:`tempfile.mkstemp`), so the target ends up readable by its owner only unless
        ``mode`` says otherwise. ``False``: only a fresh unused name is chosen and the writer
        creates the file (the usual ``0o666`` less the umask); for writers that must create
        the file themselves (e.g. a database engine).
    mode
        Permission bits set on the file before the rename (e.g. those of the file replaced).

    Yields
    ------
    pathlib.Path
        The temporary file to write.
    """
    target = Path(target)
    head = f".{target.name}." if prefix is None else prefix
    if private:
        fd, name = tempfile.mkstemp(prefix=head, suffix=suffix, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    else:
        tmp = target.with_name(f"{head}{uuid.uuid4().hex}{suffix}")
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
