"""``workbench import ...``: bring a data set into a workspace.

Registered by the main CLI as ``app.add_typer(import_app, name="import")``. Every command
writes ``<workspace>/datasets/<name>/`` atomically and prints a summary (cases per class and
split, the concept / artifact / metadata columns found). Errors are one line on stderr, exit
code 1.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from concepts import DataError, Workspace
from workbench.cli._console import (
    FormatOpt,
    WorkspaceOpt,
    check_format,
    cli_errors,
    console,
    emit_json,
    err_console,
)

if TYPE_CHECKING:  # the importers (PIL) load inside the commands: fast `workbench --help`
    from concepts.data import Dataset

__all__ = ["dataset_summary", "import_app"]

import_app = typer.Typer(
    help="Import a data set (folder + CSV, ISIC, class sub-folders) into a workspace.",
    no_args_is_help=True,
    add_completion=False,
)

P = ParamSpec("P")
R = TypeVar("R")

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

NameOpt = Annotated[
    str, typer.Option("--name", "-n", help="Data-set name: written to <workspace>/datasets/<name>/.")
]
ImageSizeOpt = Annotated[
    int, typer.Option("--image-size", help="Side in pixels of the stored square images.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the generated stratified split.")]
SplitFractionsOpt = Annotated[
    str,
    typer.Option("--split-fractions", help="train,val,test fractions of the generated split."),
]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing data set of the same name.")
]
ActiveOpt = Annotated[
    bool, typer.Option("--active/--no-active", help="Make the imported data set the active one (default).")
]


def _dataset_dir(workspace: Path, name: str) -> Path:
    if not _NAME_RE.fullmatch(name) or ".." in name:
        raise DataError(
            f"invalid data-set name {name!r} — use letters, digits, '.', '_' and '-' (starting "
            "with a letter or digit)"
        )
    return workspace.expanduser().resolve() / "datasets" / name


def _names(values: list[str] | None) -> list[str] | None:
    """Repeatable and/or comma-separated option values."""
    if not values:
        return None
    out = [v.strip() for value in values for v in value.split(",") if v.strip()]
    return out or None


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise DataError(f"--split-fractions must be three numbers such as 0.6,0.2,0.2, got {text!r}") from None



@contextmanager
def _image_progress(enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback; the bar (on stderr) appears with the first image."""
    bar: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if not enabled or not err_console.is_terminal:
            return  # no bar in logs and pipes: the summary says it all
        if not bar:
            bar["progress"] = Progress(
                TextColumn("[bold]decoding images"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
            )
            bar["progress"].start()
            bar["task"] = bar["progress"].add_task("images", total=max(total, 1))
        bar["progress"].update(bar["task"], completed=done, total=max(total, 1))

    try:
        yield update
    finally:
        if bar:
            bar["progress"].stop()


@dataclass(frozen=True)
class _Generated:
    """The options every importer with a generated split shares (``folder``, ``isic``,
    ``subfolders``), as the importers' keyword arguments."""

    name: str
    image_size: int
    seed: int
    split_fractions: str
    overwrite: bool

    def kwargs(self) -> dict[str, Any]:
        return {"name": self.name, "image_size": self.image_size, "seed": self.seed,
                "split_fractions": _fractions(self.split_fractions), "overwrite": self.overwrite}


def _run_import(workspace: Path, name: str, fmt: str, active: bool,
                importer: Callable[[Path, Callable[[int, int], None]], Dataset]) -> None:
    """Check the options, run ``importer(out_dir, progress)`` with a progress bar, print the
    summary and make the data set active (with ``--active``)."""
    check_format(fmt)
    out = _dataset_dir(workspace, name)
    with _image_progress(fmt == "table") as progress:
        ds = importer(out, progress)
    _print_summary(ds, fmt, workspace if active else None)


def dataset_summary(ds: Dataset) -> dict[str, Any]:
    """JSON-able summary of a data set: sizes, cases per class and split, columns.

    Parameters
    ----------
    ds
        A loaded data set.

    Returns
    -------
    dict
        ``name``, ``path``, ``kind``, ``n_cases``, ``image_size``, ``classes``, ``splits``,
        ``counts`` (``{class: {split: n}}``), ``concepts``, ``artifacts``, ``metadata``.
    """
    splits = [s for s in ("train", "val", "test") if s in set(ds.cases["split"])]
    splits += sorted(set(ds.cases["split"]) - set(splits))
    import pandas as pd

    counts = pd.crosstab(ds.cases["label"], ds.cases["split"])
    return {
        "name": ds.info.name,
        "path": str(ds.root),
        "kind": ds.info.kind,
        "n_cases": len(ds),
        "image_size": ds.info.image_size,
        "classes": list(ds.classes),
        "splits": splits,
        "counts": {
            c: {s: int(counts.at[c, s]) if c in counts.index and s in counts.columns else 0 for s in splits}
            for c in ds.classes
        },
        "concepts": list(ds.info.concepts),
        "artifacts": list(ds.info.artifacts),
        "metadata": list(ds.info.metadata),
    }


def _line(text: str) -> None:
    """Print user-provided text literally (no rich markup, no wrapping)."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def _activate(workspace: Path, ds: Dataset) -> None:
    """Make the imported data set the active one (creating the workspace manifest if missing)."""
    ws = Workspace(workspace)
    ws.ensure()
    ws.update_manifest(dataset=ds.info.name)


def _print_summary(ds: Dataset, fmt: str, workspace: Path | None = None) -> None:
    if workspace is not None:
        _activate(workspace, ds)
    summary = dataset_summary(ds)
    summary["active"] = workspace is not None
    if fmt == "json":
        emit_json(summary)
        return
    splits: list[str] = summary["splits"]
    _line(f"Imported {summary['name']!r}: {summary['n_cases']} cases ({summary['kind']})")
    table = Table()
    table.add_column("class")
    for s in splits:
        table.add_column(s, justify="right")
    table.add_column("total", justify="right")
    totals = dict.fromkeys(splits, 0)
    for c, row in summary["counts"].items():
        table.add_row(Text(c), *(str(row[s]) for s in splits), str(sum(row.values())))
        for s in splits:
            totals[s] += row[s]
    table.add_row("total", *(str(totals[s]) for s in splits), str(summary["n_cases"]), style="bold")
    console.print(table)

    def cols(xs: list[str]) -> str:
        return ", ".join(xs) if xs else "none"

    _line(f"concept columns:  {cols(summary['concepts'])}")
    _line(f"artifact columns: {cols(summary['artifacts'])}")
    _line(f"metadata columns: {cols(summary['metadata'])}")
    _line(f"images:           {summary['image_size']}x{summary['image_size']} px")
    _line(f"written to:       {summary['path']}")
    if workspace is not None:
        _line(f"active data set:  {summary['name']} (next: workbench train -w {Workspace(workspace).root})")


@import_app.command("folder")
@cli_errors
def folder(
    csv_file: Annotated[Path, typer.Argument(help="CSV with one row per case.", show_default=False)],
    name: NameOpt,
    workspace: WorkspaceOpt = Path("workspace"),
    images: Annotated[
        Path | None,
        typer.Option("--images", help="Image root folder (default: the CSV's folder)."),
    ] = None,
    id_col: Annotated[str, typer.Option("--id-col", help="Case-id column.")] = "case_id",
    path_col: Annotated[str, typer.Option("--path-col", help="Image-path column.")] = "path",
    label_col: Annotated[str, typer.Option("--label-col", help="Label column.")] = "label",
    split_col: Annotated[
        str | None,
        typer.Option("--split-col", help="Split column (default: 'split' if present, else generated)."),
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option("--classes", help="Comma-separated allowed labels, in class-index order."),
    ] = None,
    concept_col: Annotated[
        list[str] | None,
        typer.Option("--concept-col", help="Extra 0/1 column to treat as a concept (repeatable)."),
    ] = None,
    artifact_col: Annotated[
        list[str] | None,
        typer.Option("--artifact-col", help="Extra 0/1 column to treat as an artifact (repeatable)."),
    ] = None,
    delimiter: Annotated[str, typer.Option("--delimiter", help="CSV field separator.")] = ",",
    image_size: ImageSizeOpt = 224,
    seed: SeedOpt = 0,
    split_fractions: SplitFractionsOpt = "0.6,0.2,0.2",
    overwrite: OverwriteOpt = False,
    active: ActiveOpt = True,
    fmt: FormatOpt = "table",
) -> None:
    """Import a folder of images described by a CSV (id/path, label, 0/1 concept columns)."""
    from concepts.importers import import_folder

    shared = _Generated(name, image_size, seed, split_fractions, overwrite)
    _run_import(workspace, name, fmt, active, lambda out, progress: import_folder(
        csv_file, out, images_dir=images, id_col=id_col, path_col=path_col, label_col=label_col,
        split_col=split_col, classes=_names([classes] if classes else None),
        concept_cols=_names(concept_col), artifact_cols=_names(artifact_col), delimiter=delimiter,
        progress=progress, **shared.kwargs()))


@import_app.command("isic")
@cli_errors
def isic(
    gt_csv: Annotated[
        Path, typer.Argument(help="Ground-truth CSV: image id + one-hot diagnosis columns.", show_default=False)
    ],
    images: Annotated[Path, typer.Option("--images", help="Folder of <image>.jpg files.", show_default=False)],
    name: NameOpt,
    workspace: WorkspaceOpt = Path("workspace"),
    artifacts: Annotated[
        Path | None,
        typer.Option("--artifacts", help="Artifact annotation CSV (image id + 0/1 columns)."),
    ] = None,
    binary: Annotated[
        bool, typer.Option("--binary", help="MEL -> melanoma, everything else -> non_melanoma.")
    ] = False,
    drop_unannotated: Annotated[
        bool,
        typer.Option("--drop-unannotated", help="Drop images missing from the artifact CSV."),
    ] = False,
    split: Annotated[
        str | None,
        typer.Option("--split", help="Put every case in this split (train/val/test)."),
    ] = None,
    image_col: Annotated[
        str | None, typer.Option("--image-col", help="Image-id column of the ground truth.")
    ] = None,
    image_size: ImageSizeOpt = 224,
    seed: SeedOpt = 0,
    split_fractions: SplitFractionsOpt = "0.6,0.2,0.2",
    overwrite: OverwriteOpt = False,
    active: ActiveOpt = True,
    fmt: FormatOpt = "table",
) -> None:
    """Import an ISIC-challenge style data set (one-hot ground truth, image folder)."""
    from concepts.importers import import_isic

    shared = _Generated(name, image_size, seed, split_fractions, overwrite)
    _run_import(workspace, name, fmt, active, lambda out, progress: import_isic(
        gt_csv, images, out, artifacts_csv=artifacts, binary=binary, image_col=image_col,
        missing_artifacts="drop" if drop_unannotated else "error", split=split, progress=progress,
        **shared.kwargs()))


@import_app.command("subfolders")
@cli_errors
def subfolders(
    root: Annotated[
        Path, typer.Argument(help="Folder of <class>/ (or <split>/<class>/) image folders.", show_default=False)
    ],
    name: NameOpt,
    workspace: WorkspaceOpt = Path("workspace"),
    classes: Annotated[
        str | None,
        typer.Option("--classes", help="Comma-separated class folders, in class-index order."),
    ] = None,
    image_size: ImageSizeOpt = 224,
    seed: SeedOpt = 0,
    split_fractions: SplitFractionsOpt = "0.6,0.2,0.2",
    overwrite: OverwriteOpt = False,
    active: ActiveOpt = True,
    fmt: FormatOpt = "table",
) -> None:
    """Import a folder of class sub-folders of images (no CSV)."""
    from concepts.importers import import_class_folders

    shared = _Generated(name, image_size, seed, split_fractions, overwrite)
    _run_import(workspace, name, fmt, active, lambda out, progress: import_class_folders(
        root, out, classes=_names([classes] if classes else None), progress=progress, **shared.kwargs()))


@import_app.command("derm7pt")
@cli_errors
def derm7pt(
    root: Annotated[
        Path,
        typer.Argument(help="The derm7pt release folder (holding meta/ and images/).", show_default=False),
    ],
    name: NameOpt = "derm7pt",
    workspace: WorkspaceOpt = Path("workspace"),
    image_size: ImageSizeOpt = 224,
    overwrite: OverwriteOpt = False,
    active: ActiveOpt = True,
    fmt: FormatOpt = "table",
) -> None:
    """Import the derm7pt release (meta/meta.csv, the three index files, images/)."""
    from concepts.importers import import_derm7pt

    _run_import(workspace, name, fmt, active, lambda out, _progress: import_derm7pt(
        root, out, image_size=image_size, name=name, overwrite=overwrite))
