"""``workbench concepts list|build|add|remove``: the workspace's concept bank from the CLI.

The lead registers the sub-app with ``app.add_typer(concepts_app, name="concepts")``.

- ``list``: every concept with its examples, what its CAVs train against and its label check.
- ``build``: concepts from the annotated 0/1 columns of the active data set — positives have the
  column, negatives lack it, the same class mix on both sides — and a random pool kept apart
  from them. Existing concepts of the same name are replaced only with ``--replace``; other
  concepts of the bank are kept.
- ``add``: a concept from a folder of the user's own example images, or from case ids (negatives
  then drawn from the other cases with the positives' class mix).
- ``remove``: drop a concept.

Every change is recorded in the workspace's store: ``add`` as a ``concept_named`` event (a
person named a concept), ``build`` and ``remove`` as ``concept_registered`` records.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from concepts import ConceptError, Workspace, WorkspaceError
from workbench.cli._console import WorkspaceOpt, cli_errors, err_console, print_frame

if TYPE_CHECKING:
    import pandas as pd

    from concepts import ConceptBank

__all__ = ["concepts_app"]

concepts_app = typer.Typer(no_args_is_help=True, help="List, build, add and remove the concepts of the bank.")

RoleOpt = Annotated[str, typer.Option("--role", help="Your role, recorded in the store.")]
RecordOpt = Annotated[bool, typer.Option("--record/--no-record", help="Record the change in the store.")]


def _workspace(path: Path) -> Workspace:
    ws = Workspace(path)
    if not ws.exists():
        raise WorkspaceError(
            f"{ws.root} is not a workspace (workspace.json missing) — import a data set into it "
            f"(`workbench import ... -w {path}`) or build one with `workbench demo --no-serve -w {path}`"
        )
    return ws


def _bank(ws: Workspace) -> ConceptBank:
    from concepts import ConceptBank

    if (Path(ws.concepts_dir) / ConceptBank.FILE).is_file():
        return ConceptBank.load(ws.concepts_dir, datasets_dir=ws.datasets_dir)
    return ConceptBank.for_workspace(ws)


def _record(ws: Workspace, role: str, op: str, bank: ConceptBank, names: list[str], **spec: Any) -> None:
    """``concept_named`` for ``add``; ``concept_registered`` (one per concept) otherwise."""
    from store import Store
    from workbench.auth._identity import cli_actor

    actor = cli_actor(ws.root, role)
    st = Store.for_workspace(ws.root)
    present = {c.name: c for c in bank}
    for name in names:
        con = present.get(name)
        meta = {"op": op, "name": name, "bank_revision": bank.revision, **spec}
        if con is not None:
            meta |= {"group": con.group, "origin": con.origin, "counterpart": con.counterpart,
                     "n_positive": len(con.positive),
                     "n_negative": len(con.negative) if con.negative is not None else 0}
        if op == "added" and con is not None:
            st.append_event(actor, "concept_named", concept=name, spec={**meta, "concept_id": con.id},
                            rationale=con.description or None)
        else:
            cid = con.id if con is not None else str(spec.get("concept_id", name))
            st.register_concept(actor, cid, bank.revision, con.positive.key if con is not None else cid, meta=meta)


def _rows(bank: ConceptBank) -> pd.DataFrame:
    rows = []
    for c in bank:
        diff = bank.confounding(c)
        rows.append({
            "name": c.name, "group": c.group, "origin": c.origin, "positives": len(c.positive),
            "negatives": len(c.negative) if c.negative is not None else 0,
            "trains_against": c.negative_name, "class_share_diff": diff,
            "label_confounded": bank.check_balance(c) is not None, "id": c.id,
        })
    import pandas as pd

    return pd.DataFrame(rows, columns=["name", "group", "origin", "positives", "negatives", "trains_against",
                                       "class_share_diff", "label_confounded", "id"])


@concepts_app.command("list")
@cli_errors
def list_command(
    workspace: WorkspaceOpt = Path("workspace"),
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
) -> None:
    """The concepts of the bank (built from the annotated columns on first use)."""
    if fmt not in ("table", "json", "csv"):
        raise typer.BadParameter(f"unknown format {fmt!r}: use table, json or csv", param_hint="--format")
    bank = _bank(_workspace(workspace))
    pool = len(bank.random_pool) if bank.random_pool is not None else 0
    print_frame(_rows(bank), fmt, title=f"Concept bank (revision {bank.revision}, random pool {pool})")


@concepts_app.command("build")
@cli_errors
def build_command(
    workspace: WorkspaceOpt = Path("workspace"),
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns (default: all annotated).")] = None,
    split: Annotated[str, typer.Option(help="Split the example sets come from.")] = "train",
    max_per_class: Annotated[int, typer.Option(min=5, help="Most positives (and negatives) per class.")] = 100,
    pool_size: Annotated[int, typer.Option(min=16, help="Size of the random pool.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the sampling.")] = 0,
    replace: Annotated[bool, typer.Option("--replace", help="Replace concepts of the same name.")] = False,
    role: RoleOpt = "dermatologist",
    record: RecordOpt = True,
) -> None:
    """Concepts from annotated columns, matched per class, with a random pool kept apart."""
    from concepts import ConceptBank

    ws = _workspace(workspace)
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    built = ConceptBank.from_columns(ws.dataset(), cols, split=split, max_per_class=max_per_class,
                                     pool_size=pool_size, seed=seed)
    if len(built) == 0:
        raise ConceptError("no annotated column has enough class-matched cases — add concepts with "
                           "`workbench concepts add`")
    bank = _bank(ws) if (Path(ws.concepts_dir) / ConceptBank.FILE).is_file() else ConceptBank(
        root=ws.concepts_dir, datasets_dir=ws.datasets_dir)
    clash = [c.name for c in built if c.name in bank]
    if clash and not replace:
        raise ConceptError(f"the bank already has {', '.join(clash)} — pass --replace to rebuild them")
    for c in built:
        bank.add(c, replace=True)
    bank.register_dataset(ws.dataset())
    bank.random_pool = built.random_pool
    bank.save()
    if record:
        _record(ws, role, "built", bank, built.names, split=split, max_per_class=max_per_class)
    print_frame(_rows(bank), "table", title=f"Concept bank (revision {bank.revision})")


@concepts_app.command("add")
@cli_errors
def add_command(
    name: Annotated[str, typer.Argument(help="Concept name, e.g. ink_marks.")],
    workspace: WorkspaceOpt = Path("workspace"),
    folder: Annotated[Path | None, typer.Option(help="Folder of example images showing the concept.")] = None,
    negative_folder: Annotated[
        Path | None, typer.Option(help="Folder of images without it (default: random counterparts).")
    ] = None,
    cases: Annotated[str | None, typer.Option(help="Comma-separated case ids of the active data set.")] = None,
    cases_file: Annotated[Path | None, typer.Option(help="Text file with one case id per line.")] = None,
    twins_of: Annotated[str | None, typer.Option(
        "--twins-of", help="Artifact column: paste it into clean train cases with the data set's own masks "
        "(or use its twin column); the twins are the positives, the same clean cases the negatives.")] = None,
    max_examples: Annotated[int, typer.Option(min=10, help="Most twins made with --twins-of.")] = 400,
    group: Annotated[str, typer.Option(help="custom, artifact or criterion.")] = "custom",
    description: Annotated[str, typer.Option(help="What the concept shows.")] = "",
    replace: Annotated[bool, typer.Option("--replace", help="Replace a concept of that name.")] = False,
    role: RoleOpt = "dermatologist",
    record: RecordOpt = True,
) -> None:
    """Add a concept from a folder of images, from case ids, or from twins of an artifact column."""
    ws = _workspace(workspace)
    ids = _case_ids(cases, cases_file)
    if sum(x is not None for x in (folder, ids, twins_of)) != 1:
        raise ConceptError("give exactly one of --folder, --cases/--cases-file or --twins-of")
    bank = _bank(ws)
    ds = ws.dataset()
    if twins_of is not None:
        con = bank.add_from_twins(ds, twins_of, name=name, description=description or None,
                                  max_examples=max_examples, replace=replace)
    elif folder is not None:
        con = bank.add_from_folder(name, folder, image_size=int(ds.info.image_size), group=group,
                                   description=description, negative_folder=negative_folder, replace=replace)
    else:
        con = bank.add_from_cases(name, group, description or f"{len(ids or [])} selected cases", ds,
                                  ids or [], replace=replace, match_classes=True)
    bank.save()
    if record:
        source = "twins" if twins_of is not None else "folder" if folder is not None else "cases"
        _record(ws, role, "added", bank, [name], source=source)
    sys.stdout.write(
        f"added concept {con.name!r} ({len(con.positive)} positives"
        + (f", {len(con.negative)} {'paired clean originals' if con.twins else 'class-matched negatives'}"
           if con.negative is not None else ", random counterparts")
        + f", id {con.id}) to {Path(ws.concepts_dir) / bank.FILE}\n"
    )
    from concepts.bank import few_examples_note

    if twins_of is None and (note := few_examples_note(len(con.positive), check=f"`workbench intervene --mask {name}`")):
        err_console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)


def _case_ids(cases: str | None, cases_file: Path | None) -> list[str] | None:
    ids: list[str] = []
    if cases:
        ids += [c.strip() for c in cases.split(",") if c.strip()]
    if cases_file is not None:
        if not cases_file.is_file():
            raise ConceptError(f"{cases_file} is not a file — give a text file with one case id per line")
        ids += [ln.strip() for ln in cases_file.read_text(errors="replace").splitlines() if ln.strip()]
    return ids or None


@concepts_app.command("remove")
@cli_errors
def remove_command(
    name: Annotated[str, typer.Argument(help="Concept to remove.")],
    workspace: WorkspaceOpt = Path("workspace"),
    role: RoleOpt = "dermatologist",
    record: RecordOpt = True,
) -> None:
    """Remove a concept from the bank (its cached CAVs are never reused)."""
    ws = _workspace(workspace)
    bank = _bank(ws)
    gone = bank.remove(name)
    bank.save()
    if record:
        _record(ws, role, "removed", bank, [name], concept_id=gone.id)
    sys.stdout.write(f"removed concept {name!r} (id {gone.id}); bank revision {bank.revision}\n")
