"""Console helpers shared by the CLI commands: progress bars, error handling, output formats."""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from concepts import WorkbenchError
from store import to_jsonable

if TYPE_CHECKING:
    import pandas as pd

    from concepts import ProgressFn

__all__ = [
    "FormatOpt",
    "WorkspaceOpt",
    "check_format",
    "cli_errors",
    "console",
    "emit_json",
    "err_console",
    "pct",
    "print_frame",
    "progress_bars",
    "to_jsonable",
]

#: The ``--workspace`` option every command shares.
WorkspaceOpt = Annotated[
    Path, typer.Option("--workspace", "-w", help="Workspace directory (all state lives here).")
]

#: The ``--format`` option of the commands that print a table or JSON.
FormatOpt = Annotated[str, typer.Option("--format", help="Output format: table or json.")]

console = Console()
err_console = Console(stderr=True)


def check_format(fmt: str) -> None:
    """Refuse a ``--format`` other than ``table`` or ``json`` (usage error, exit code 2)."""
    if fmt not in ("table", "json"):
        raise typer.BadParameter(f"unknown format {fmt!r}: use table or json", param_hint="--format")


def emit_json(obj: Any) -> None:
    """Write ``obj`` to stdout as indented JSON (numpy values, NaN and paths made JSON-safe)."""
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2) + "\n")


def pct(x: Any) -> str:
    """A fraction as a percentage with one decimal; ``—`` for none."""
    return "—" if x is None else f"{100 * float(x):.1f}%"

P = ParamSpec("P")
R = TypeVar("R")


def _user_error_types() -> tuple[type[BaseException], ...]:
    """The errors a command reports in one line: the workbench's, the store's, and I/O errors
    (a missing file, a full disk, a directory where a file was expected)."""
    from store import StoreError  # store._errors alone: no duckdb

    return (WorkbenchError, StoreError, OSError)


def cli_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the workbench's own errors into a one-line message on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except _user_error_types() as exc:
            message = " ".join(str(exc).split())  # one line, whatever the exception holds
            err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[ProgressFn]:
    """A ``progress(stage, done, total)`` callback drawing one rich bar per stage (on stderr)."""
    if not enabled:
        yield lambda stage, done, total: None
        return
    prog = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = prog.add_task(stage, total=max(total, 1))
        prog.update(tasks[stage], completed=done, total=max(total, 1))

    with prog:
        yield update



def print_frame(df: pd.DataFrame, fmt: str, *, title: str | None = None) -> None:
    """Print a table as ``table`` (rich), ``json`` (a list of objects) or ``csv``."""
    if fmt == "json":
        records = to_jsonable(df.to_dict(orient="records"))
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
    elif fmt == "csv":
        sys.stdout.write(df.to_csv(index=False))
    elif fmt == "table":
        table = Table(title=title)
        for col in df.columns:
            table.add_column(str(col))
        for row in df.itertuples(index=False):
            table.add_row(*[_fmt_cell(v) for v in row])
        console.print(table)
    else:
        raise typer.BadParameter(f"unknown format {fmt!r}: use table, json or csv")


def _fmt_cell(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.3f}"
    return str(v)
