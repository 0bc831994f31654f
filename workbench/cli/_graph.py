"""``workbench graph ...``: checklist scores, graph export and the alignment report.

The lead registers the sub-app with ``app.add_typer(graph_app, name="graph")``.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from concepts import DataError, Workspace, WorkspaceError
from store import atomic_path
from workbench.cli._console import cli_errors, emit_json, print_frame

if TYPE_CHECKING:  # graph pulls sklearn: imported inside the commands (fast `workbench --help`)
    import pandas as pd

    from graph import ClinicalGraph

__all__ = ["graph_app"]

graph_app = typer.Typer(
    help="The clinical knowledge graph: 7-point scores, export, alignment with TCAV.",
    no_args_is_help=True,
)


class ScoreFormat(StrEnum):
    csv = "csv"
    json = "json"


class ExportFormat(StrEnum):
    json = "json"
    graphml = "graphml"


class AlignFormat(StrEnum):
    table = "table"
    json = "json"


_TAXONOMY_HELP = "A taxonomy file (.json/.csv) adding criteria, sub-labels, concepts or relations."


def _graph(taxonomy: Path | None) -> ClinicalGraph:
    from graph import ClinicalGraph, extend_graph

    g = ClinicalGraph.default()
    return extend_graph(g, taxonomy) if taxonomy is not None else g


def _read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the table ({exc})") from exc
    raise DataError(f"{path}: expected a .parquet or .csv table")


@graph_app.command("score")
@cli_errors
def score_cmd(
    derm7pt: Path = typer.Option(..., "--derm7pt", help="derm7pt's meta/meta.csv."),
    fmt: ScoreFormat = typer.Option(ScoreFormat.csv, "--format", help="csv or json."),
    taxonomy: Path | None = typer.Option(None, "--taxonomy", help=_TAXONOMY_HELP),
) -> None:
    """7-point score of every derm7pt case, computed by the graph from the raw labels.

    csv: ``case_num,seven_point_score,melanoma`` on stdout and the rule's summary line
    (sensitivity, specificity of score >= 3) on stderr, so stdout stays a clean CSV.
    json: ``{"cases": [...], "summary": {...}}`` on stdout.
    """
    from concepts.importers import read_derm7pt_meta
    from graph import checklist_scores, rule_summary

    g = _graph(taxonomy)
    scores = checklist_scores(read_derm7pt_meta(derm7pt), g)
    summary = rule_summary(scores["seven_point_score"], scores["melanoma"], g.threshold)
    cases = scores[["case_num", "seven_point_score", "melanoma"]]
    if fmt is ScoreFormat.json:
        emit_json({"cases": cases.to_dict(orient="records"), "summary": summary.to_dict()})
    else:
        sys.stdout.write(cases.to_csv(index=False))
        typer.echo(f"# {summary.describe()}", err=True)


@graph_app.command("export")
@cli_errors
def export_cmd(
    fmt: ExportFormat = typer.Option(ExportFormat.json, "--format", help="json (node-link) or graphml."),
    out: Path | None = typer.Option(None, "--out", help="Output file (default: stdout)."),
    taxonomy: Path | None = typer.Option(None, "--taxonomy", help=_TAXONOMY_HELP),
    dataset: Path | None = typer.Option(
        None, "--dataset", help="A data-set folder to learn criterion co-occurrence edges from."
    ),
    derm7pt: Path | None = typer.Option(
        None, "--derm7pt", help="derm7pt's meta/meta.csv to learn criterion co-occurrence from."
    ),
) -> None:
    """Export the clinical graph as node-link JSON or GraphML."""
    from concepts.data import Dataset
    from concepts.importers import read_derm7pt_meta
    from graph import add_cooccurrence, dump_graph

    g = _graph(taxonomy)
    if dataset is not None:
        ds = Dataset.load(dataset)
        g = add_cooccurrence(g, ds.cases, source=ds.info.name)
    if derm7pt is not None:
        g = add_cooccurrence(g, read_derm7pt_meta(derm7pt), source="derm7pt")
    text = dump_graph(g, fmt.value)
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out, private=False) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot write {out}: {exc.strerror or exc}") from exc
    typer.echo(f"wrote {out} ({g.nx.number_of_nodes()} nodes, {g.nx.number_of_edges()} edges)", err=True)


@graph_app.command("align")
@cli_errors
def align_cmd(
    workspace: Path = typer.Option(Path("workspace"), "--workspace", help="The workspace folder."),
    fmt: AlignFormat = typer.Option(AlignFormat.table, "--format", help="table or json."),
    taxonomy: Path | None = typer.Option(None, "--taxonomy", help=_TAXONOMY_HELP),
    cooccurrence: Path | None = typer.Option(
        None,
        "--cooccurrence",
        help="Co-occurrence evidence table (.parquet/.csv: attribute, class, lift, odds_ratio, p_adjusted).",
    ),
) -> None:
    """Alignment report: each concept's TCAV reliance against the clinical graph, ranked."""
    import pandas as pd

    from graph import alignment_report

    ws = Workspace(workspace)
    path = ws.results_dir / "tcav.parquet"
    if not path.is_file():
        raise WorkspaceError(
            f"no TCAV results at {path} — run `workbench tcav --workspace {workspace}` first"
        )
    try:
        tcav = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the TCAV results ({exc}) — rerun `workbench tcav`") from exc
    evidence = _read_table(cooccurrence) if cooccurrence is not None else None
    report = alignment_report(tcav, _graph(taxonomy), evidence)
    if fmt is AlignFormat.json:
        emit_json(report.to_json())
        return
    cols = ["rank", "concept", "category", "class", "direction", "effect", "p_adjusted", "expected_relation"]
    print_frame(report.to_frame()[cols], "table", title="Concept alignment with clinical knowledge")
    typer.echo(", ".join(f"{k}: {v}" for k, v in report.counts().items()))
