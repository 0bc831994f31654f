"""Importer of a folder of class sub-folders (no CSV): ``<root>/[<split>/]<class>/**/<image>``."""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from concepts._errors import DataError
from concepts.data import Dataset, DatasetInfo, check_name
from concepts.importers._common import (
    _SPLIT_ALIASES,
    IMAGE_EXTENSIONS,
    ProgressCallback,
    _ImageResolver,
    _RowError,
)
from concepts.importers._rows import (
    _check_classes,
    _check_common,
    _check_fractions,
    _Rows,
    stratified_split,
)

__all__ = ["import_class_folders"]


def import_class_folders(
    images_dir: str | Path,
    out_dir: str | Path,
    *,
    classes: Sequence[str] | None = None,
    image_size: int = 224,
    seed: int = 0,
    split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
    name: str | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> Dataset:
    """Import ``images_dir/<class>/**/<image>`` (no CSV) as a data set.

    If every sub-folder of ``images_dir`` is a split name (``train``, ``val``, ``test`` or an
    alias such as ``validation``), the layout is ``images_dir/<split>/<class>/**/<image>`` and
    the splits are kept; otherwise a deterministic stratified split is drawn. Files whose
    extension is not in :data:`IMAGE_EXTENSIONS` and hidden files/folders are ignored (their
    number is recorded in ``info.extra["ignored_files"]``). Case ids are image paths relative
    to ``images_dir`` without the extension.

    Parameters
    ----------
    images_dir
        The root folder.
    out_dir
        The data-set directory to create.
    classes
        Class names in class-index order; each must have a folder. Default: the sorted folder
        names.
    image_size, seed, split_fractions, name, overwrite, progress
        As for :func:`import_folder`.

    Returns
    -------
    Dataset
        The written data set (``kind="class_folders"``).

    Raises
    ------
    DataError
        Missing folder, images outside class folders, empty class folders, folder names outside
        ``classes``, or images that escape the root through symbolic links.
    ImageError
        When every problem is an image that cannot be decoded.
    """
    out = _check_common(image_size, out_dir, overwrite)
    _check_fractions(split_fractions)
    allowed = _check_classes(classes)
    resolver = _ImageResolver(Path(images_dir))
    root = resolver.root
    top, split_layout, groups = _class_groups(root)
    folder_classes = _check_class_folders(root, top, split_layout, groups, allowed)
    rows, ignored = _collect_class_images(resolver, groups)
    rows.check(by_line=False)
    cases = _class_cases(rows, split_layout, seed, split_fractions)
    info = DatasetInfo(
        name=name or out.name,
        kind="class_folders",
        classes=allowed if allowed is not None else tuple(folder_classes),
        image_size=image_size,
        extra={
            "importer": "class_folders",
            "images_dir": str(root),
            "split_source": "folders" if split_layout else "stratified",
            "seed": int(seed),
            "split_fractions": [float(f) for f in split_fractions],
            "ignored_files": ignored,
        },
    )
    return rows.write(out, info, cases, image_size, progress, overwrite)


def _class_cases(rows: _Rows, split_layout: bool, seed: int, split_fractions: Sequence[float]) -> pd.DataFrame:
    """The cases table: the folders' splits, or a stratified split drawn."""
    labels = rows.field("label")
    split_arr = (
        np.asarray(rows.field("split"), dtype=object)
        if split_layout
        else stratified_split(labels, rows.ids, fractions=split_fractions, seed=seed)
    )
    return pd.DataFrame({
        "case_id": rows.ids,
        "label": labels,
        "split": [str(x) for x in split_arr],
        "source_path": rows.rels,
    })


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the folder ({exc})") from exc


def _class_groups(root: Path) -> tuple[list[Path], bool, list[tuple[str | None, Path]]]:
    """``(top folders, split layout?, [(split, class folder)])`` of :func:`import_class_folders`."""
    top = _subdirs(root)
    split_layout = bool(top) and all(d.name.lower() in _SPLIT_ALIASES for d in top)
    groups: list[tuple[str | None, Path]] = []  # (split, class folder)
    if split_layout:
        for d in top:
            groups.extend((_SPLIT_ALIASES[d.name.lower()], c) for c in _subdirs(d))
    else:
        groups.extend((None, c) for c in top)
    if not groups:
        raise DataError(f"{root}: no class sub-folders — expected {root}/<class>/<image files>")
    return top, split_layout, groups


def _check_class_folders(
    root: Path,
    top: list[Path],
    split_layout: bool,
    groups: list[tuple[str | None, Path]],
    allowed: tuple[str, ...] | None,
) -> list[str]:
    """No image outside the class folders, valid folder names matching ``allowed``; the classes."""
    stray: list[str] = []
    for folder in [root, *(top if split_layout else [])]:
        with contextlib.suppress(OSError):
            stray.extend(
                f.name for f in folder.iterdir()
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
            )
    if stray:
        raise DataError(
            f"{root}: image files outside class folders ({', '.join(sorted(stray)[:3])}) — move "
            f"them into {root}/<class>/"
        )
    folder_classes = sorted({c.name for _, c in groups})
    for c in folder_classes:
        check_name(c, f"{root}: class folder")
    if allowed is not None:
        for c in folder_classes:
            if c not in allowed:
                raise DataError(f"{root}: folder {c!r} is not one of the classes {list(allowed)}")
        for c in allowed:
            if c not in folder_classes:
                raise DataError(f"{root}: no folder for class {c!r}")
    return folder_classes


def _collect_class_images(
    resolver: _ImageResolver, groups: list[tuple[str | None, Path]]
) -> tuple[_Rows, int]:
    """Every image of every class folder (sorted walk), and the number of files ignored."""
    root = resolver.root
    rows = _Rows(root, "images")
    ignored = 0
    for split, folder in groups:
        found = 0
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fname in sorted(filenames):
                if fname.startswith(".") or os.path.splitext(fname)[1].lower() not in IMAGE_EXTENSIONS:
                    ignored += 1
                    continue
                rel = (Path(dirpath) / fname).relative_to(root).as_posix()
                try:
                    path, rel = resolver.by_path(rel, "path")
                except _RowError as e:
                    rows.reject([_RowError(e.message)], file=Path(dirpath) / fname)
                    continue
                found += 1
                rows.accept(posixpath.splitext(rel)[0], path, rel, None, label=folder.name,
                            split=split or "")
        if not found:
            rows.reject([_RowError("class folder has no images")], file=folder)
    for dup_id in sorted(i for i, n in Counter(rows.ids).items() if n > 1):
        rows.reject([_RowError(f"several images share the id {dup_id!r} (same name, different extension)")])
    return rows, ignored
