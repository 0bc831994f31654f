"""``workbench audit ...``: verify, anchor, export and report the intervention history.

Registered by the main CLI as ``app.add_typer(audit_app, name="audit")``. The acting user is
the OS user with a role the workspace grants them (``workbench.auth._identity``: its
``roles.toml`` ``[os_users]`` table, else the workspace owner holds every role); ``--role``
only chooses among granted roles. Exports are recorded in the log as ``exported`` events (the
one append auditors may make). Exports and reports never write over the store, a workspace
file, a directory or a link, nor over an existing file without ``--overwrite``.
Errors are one line on stderr and exit code 1, never a traceback. The store is opened with
short-lived connections, so these commands work while the UI server runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from store import EXPORT_FORMATS, Role, StoreError, write_atomic  # no duckdb: `--help` stays fast
from workbench.auth._identity import cli_actor
from workbench.cli._console import cli_errors

if TYPE_CHECKING:
    from store import Event, Store, VerifyResult

__all__ = ["audit_app"]

audit_app = typer.Typer(
    help="Verify, export and report the intervention history (a tamper-evident event log).",
    no_args_is_help=True,
    add_completion=False,
)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

WorkspaceOpt = Annotated[
    Path, typer.Option("--workspace", "-w", help="Workspace directory (holds store.duckdb).")
]
RoleOpt = Annotated[
    str | None,
    typer.Option("--role", help="Which of your granted roles to act in (roles.toml [os_users]; "
                 "default auditor if granted)."),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace an existing export/report file (never the store "
                 "or a file inside a workspace)."),
]
TimeoutOpt = Annotated[
    float,
    typer.Option("--busy-timeout", help="Seconds to wait while another process uses the store."),
]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Only events at/after this UTC date or time.")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Only events up to this UTC date (whole day) or time.")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="Only events by this actor id.")]
ConceptOpt = Annotated[str | None, typer.Option("--concept", help="Only events about this concept.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Only events about this model id.")]


def _open(workspace: Path, busy_timeout: float) -> Store:
    from store import Store

    return Store.for_workspace(workspace, create=False, busy_timeout=busy_timeout)


def _safe(value: object, limit: int = 80) -> Text:
    """Terminal-safe cell: control characters shown as escapes, no rich markup, truncated."""
    if value is None:
        return Text("")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value)).replace("\n", "⏎")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return Text(text)


@audit_app.command()
@cli_errors
def verify(
    workspace: Annotated[
        Path | None,
        typer.Option("--workspace", "-w", help="Workspace whose store to verify (default ./workspace)."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="An exported file (csv, parquet, jsonl) to verify."),
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="Format of --file (default: from extension).")
    ] = None,
    expect_head: Annotated[
        str | None,
        typer.Option("--expect-head", help="A head hash anchored earlier; it must be in the chain."),
    ] = None,
    busy_timeout: TimeoutOpt = 10.0,
) -> None:
    """Recompute the hash chain and name the first bad row (exit code 1 if any)."""
    if file is not None and workspace is not None:
        raise StoreError("give either --workspace DIR or --file FILE, not both")
    if file is not None:
        from store import verify_file

        result = verify_file(file, fmt, expected_head=expect_head)
    else:
        result = _open(workspace or Path("workspace"), busy_timeout).verify(
            expected_head=expect_head
        )
    if result.ok:
        typer.echo(result.summary())
        if file is None and result.unanchored:
            typer.echo(_anchor_note(result))
        return
    typer.echo(f"error: {result.summary()}", err=True)
    raise typer.Exit(1)


def _anchor_note(result: VerifyResult) -> str:
    if result.anchored_seq == 0:
        return (f"note: no head was anchored before; events up to #{result.head_seq} are "
                "verified by the chain alone (head now anchored in anchors.jsonl)")
    return (f"note: anchored up to #{result.anchored_seq}; events #{result.anchored_seq + 1}.."
            f"#{result.head_seq} are verified by the chain alone (head now anchored)")


@audit_app.command()
@cli_errors
def head(
    workspace: WorkspaceOpt = Path("workspace"),
    as_json: Annotated[bool, typer.Option("--json", help="Print seq and hash as JSON.")] = False,
    busy_timeout: TimeoutOpt = 10.0,
) -> None:
    """Print the head hash, to anchor outside the database (ticket, signed e-mail, ...)."""
    seq, hash_ = _open(workspace, busy_timeout).head()
    if as_json:
        typer.echo(json.dumps({"seq": seq, "hash": hash_}))
    else:
        typer.echo(hash_)


@audit_app.command()
@cli_errors
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write.")],
    workspace: WorkspaceOpt = Path("workspace"),
    fmt: Annotated[
        str | None,
        typer.Option("--format", help=f"{' | '.join(EXPORT_FORMATS)} (default: from --out's extension)."),
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    actor: ActorOpt = None,
    concept: ConceptOpt = None,
    model: ModelOpt = None,
    role: RoleOpt = None,
    overwrite: OverwriteOpt = False,
    busy_timeout: TimeoutOpt = 10.0,
) -> None:
    """Export events with their chain fields (verifiable alone with `audit verify --file`)."""
    from store import EventFilter

    store = _open(workspace, busy_timeout)
    me = cli_actor(workspace, role, default=(Role.AUDITOR, Role.ENGINEER, Role.DERMATOLOGIST))
    flt = EventFilter(since=since, until=until, actor=actor, concept=concept, model=model)
    res = store.export(out, fmt, actor=me, filters=flt, overwrite=overwrite)
    typer.echo(
        f"exported {res.n_rows} events to {res.path} ({res.format}, sha256 {res.sha256}); "
        f"recorded as event {res.event.seq}"
    )


@audit_app.command()
@cli_errors
def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (.html or .pdf).")],
    intervention: Annotated[
        str | None,
        typer.Option("--intervention", "-i", help="Intervention id (without it: the history "
                     "report over the filters)."),
    ] = None,
    workspace: WorkspaceOpt = Path("workspace"),
    since: SinceOpt = None,
    until: UntilOpt = None,
    actor: ActorOpt = None,
    concept: ConceptOpt = None,
    model: ModelOpt = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="html or pdf (default: from --out's extension; pdf needs "
                     "Playwright and Chromium)."),
    ] = None,
    overwrite: OverwriteOpt = False,
    busy_timeout: TimeoutOpt = 10.0,
) -> None:
    """Write an auditor's report: one intervention (-i ID) or the history over the filters.

    Both are print-ready HTML (A4/Letter, page numbers): open in a browser and Print → PDF,
    or pass --format pdf where Playwright and Chromium are installed.
    """
    from store import EventFilter
    from workbench.services._audit_reports import history_report, html_to_pdf, intervention_report

    kind = (fmt or ("pdf" if out.suffix.lower() == ".pdf" else "html")).strip().lower()
    if kind not in ("html", "pdf"):
        raise StoreError(f"unknown report format {fmt!r}; use html or pdf")
    store = _open(workspace, busy_timeout)
    store.safe_output(out, overwrite=overwrite)  # refuse before the work
    if intervention is not None:
        if any(v is not None for v in (since, until, actor, concept, model)):
            raise StoreError("filters apply to the history report; drop them or --intervention")
        page = intervention_report(store, workspace, intervention)
    else:
        flt = EventFilter(since=since, until=until, actor=actor, concept=concept, model=model)
        page = history_report(store, workspace, flt)
    if kind == "html":
        path = store.write_report(out, page, overwrite=overwrite)
    else:
        target = store.safe_output(out, overwrite=overwrite)
        write_atomic(target, lambda tmp: html_to_pdf(page, tmp))
        path = target
    typer.echo(f"wrote {path}")


_ROLE_ABBR = {"dermatologist": "derm", "engineer": "eng", "auditor": "aud"}
_LOG_FIELDS = ("seq", "ts", "actor_id", "actor_name", "actor_role", "action", "intervention_id",
               "concept", "model_id", "rationale", "hash")


def _subject(ev: Event) -> str:
    return ev.intervention_id or ev.concept or ev.model_id or ""


def _who(ev: Event) -> str:
    return f"{ev.actor_name} ({_ROLE_ABBR.get(ev.actor_role, ev.actor_role)})"


def _log_widths(events: list[Event], width: int) -> tuple[dict[str, int], int]:
    """Column widths that fit ``width``: text columns shrink (then "about" goes) before the
    rationale drops under 20 characters."""
    def longest(values: list[str], cap: int) -> int:
        return min(cap, max([0, *(len(v) for v in values)]))

    w = {"seq": max([3, *(len(str(ev.seq)) for ev in events)]), "time (UTC)": 16,
         "who": max(10, longest([_who(ev) for ev in events], 26)),
         "action": max(10, longest([ev.action for ev in events], 16)),
         "about": max(8, longest([_subject(ev) for ev in events], 22))}
    floor = {"who": 10, "action": 10, "about": 8}

    def rest() -> int:
        return width - sum(w.values()) - 3 * len(w) - 1  # padding + divider per column

    while rest() < 20 and any(w[k] > floor[k] for k in floor if k in w):
        k = max((k for k in floor if k in w), key=lambda c: w[c] - floor[c])
        w[k] -= 1
    if rest() < 10:  # narrow terminal: drop the subject column
        w.pop("about")
    return w, max(rest(), 8)


def _log_table(events: list[Event], width: int) -> Table:
    """One line per event at any terminal width: long text is cut with an ellipsis."""
    fixed, rest = _log_widths(events, width)
    table = Table(title=f"{len(events)} events", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, caption="full text: --format json or csv", expand=False)
    for col, w in fixed.items():
        table.add_column(col, no_wrap=True, overflow="ellipsis", width=w,
                         justify="right" if col == "seq" else "left")
    table.add_column("rationale", no_wrap=True, overflow="ellipsis", width=rest)
    for ev in events:
        cells: list[str | Text] = [str(ev.seq), ev.ts[:16].replace("T", " "), _safe(_who(ev), 60),
                                   _safe(ev.action, 40)]
        if "about" in fixed:
            cells.append(_safe(_subject(ev), 60))
        table.add_row(*cells, _safe(ev.rationale, 400))
    return table


def _log_csv(events: list[Event]) -> None:
    import csv
    import sys

    from store import neutralise_csv_cell

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(_LOG_FIELDS)
    for ev in events:
        d = ev.to_dict()
        writer.writerow([neutralise_csv_cell(str(v)) if isinstance(v, str) else
                         ("" if v is None else v) for v in (d.get(f) for f in _LOG_FIELDS)])


@audit_app.command()
@cli_errors
def log(
    workspace: WorkspaceOpt = Path("workspace"),
    since: SinceOpt = None,
    until: UntilOpt = None,
    actor: ActorOpt = None,
    concept: ConceptOpt = None,
    model: ModelOpt = None,
    action: Annotated[str | None, typer.Option("--action", help="Only this action.")] = None,
    intervention: Annotated[
        str | None, typer.Option("--intervention", "-i", help="Only this intervention.")
    ] = None,
    last: Annotated[int, typer.Option("--last", "-n", help="Show the last N matching events.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per event.")] = False,
    fmt: Annotated[
        str, typer.Option("--format", help="table (one line per event), json (JSON lines, full "
                          "text) or csv (full text; formula cells neutralised).")
    ] = "table",
    busy_timeout: TimeoutOpt = 10.0,
) -> None:
    """Show the event log: a table with one line per event (or JSON lines / CSV)."""
    kind = "json" if as_json else fmt.strip().lower()
    if kind not in ("table", "json", "csv"):
        raise StoreError(f"unknown format {fmt!r}; use table, json or csv")
    from store import EventFilter

    flt = EventFilter(since=since, until=until, actor=actor, concept=concept, model=model,
                      action=action, intervention_id=intervention)
    events = _open(workspace, busy_timeout).events(flt, last=last)
    if kind == "json":
        for ev in events:
            typer.echo(json.dumps(ev.to_dict(), ensure_ascii=False, sort_keys=True))
    elif kind == "csv":
        _log_csv(events)
    else:
        con = Console(soft_wrap=False)
        con.print(_log_table(events, con.width))
