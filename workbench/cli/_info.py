"""``workbench info``: what a workspace holds and what to run next, for any workspace.

The demo, or a user's imported data set with a model from ``workbench train`` or ``workbench
models add``: data set (source, cases per split, classes, annotated columns), active model
(architecture, layers, how it was made), the stored evaluation (worst-group accuracy over
diagnosis x annotated artifact, clean accuracy, positive class), the concept bank, what has been
computed (TCAV, confounders, clusters) and the next command. ``--format json`` prints the same
as one object (:func:`workbench.services._summary.workspace_summary`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from concepts import Workspace
from workbench.cli._console import (
    FormatOpt,
    WorkspaceOpt,
    check_format,
    cli_errors,
    console,
    emit_json,
    pct,
)

__all__ = ["info"]





def _kv_table(title: str) -> Table:
    t = Table(title=title, show_header=False, title_justify="left", title_style="bold")
    t.add_column("", style="dim")
    t.add_column("")
    return t


def _dataset_table(ds: Mapping[str, Any] | None) -> Table:
    t = _kv_table("Data set")
    if ds is None:
        t.add_row("active data set", "none — import one with `workbench import ...`")
        return t
    t.add_row("name", Text(str(ds["name"])))
    src = str(ds.get("source") or "?") + (f" ({ds['source_path']})" if ds.get("source_path") else "")
    t.add_row("source", Text(src))
    splits = ", ".join(f"{s} {n}" for s, n in ds["splits"].items())
    t.add_row("cases", Text(f"{ds['n']} ({splits})"))
    for cls, per in ds["counts"].items():
        t.add_row(f"  {cls}", Text(", ".join(f"{s} {n}" for s, n in per.items())))
    t.add_row("image size", f"{ds.get('image_size')} px")
    t.add_row("concept columns", Text(", ".join(ds["concepts"]) or "none"))
    t.add_row("artifact columns", Text(", ".join(ds["artifacts"]) or "none"))
    t.add_row("metadata columns", Text(", ".join(ds["metadata"]) or "none"))
    return t


def _model_table(model: Mapping[str, Any] | None, pos: str | None) -> Table:
    t = _kv_table("Active model")
    if model is None:
        t.add_row("active model", "none — `workbench train` or `workbench models add`")
        return t
    t.add_row("name", Text(str(model["name"])))
    t.add_row("architecture", Text(f"{model['architecture']} ({model.get('image_size')} px, id {model['model_id']})"))
    t.add_row("classes", Text(", ".join(model["classes"])))
    t.add_row("positive class", Text(str(pos or "—")))
    t.add_row("analysis layers", Text(", ".join(model["layers"]) or "—"))
    t.add_row("how made", Text(str(model["how"].get("text", ""))))
    return t


def _eval_table(head: Mapping[str, Any] | None, source: str | None) -> Table:
    t = _kv_table("Evaluation" + (f" ({source}, {head['split']} split)" if head else ""))
    if head is None:
        t.add_row("metrics", "not evaluated yet")
        return t
    pos = head.get("positive_class")
    t.add_row("accuracy", f"{pct(head['accuracy'])} of {head['n']}")
    t.add_row("balanced accuracy", pct(head["balanced_accuracy"]))
    t.add_row(f"sensitivity ({pos})", Text(pct(head["sensitivity"])))
    t.add_row("specificity", pct(head["specificity"]))
    t.add_row("AUC", "—" if head["auc"] is None else f"{head['auc']:.3f}")
    wg = head.get("worst_group")
    if wg is None and head.get("clean_accuracy") is None:  # no artifact column: no groups to score
        t.add_row("worst-group accuracy", "— (the data set annotates no artifact column)")
    else:
        t.add_row("worst-group accuracy", Text(f"{pct(head['worst_group_accuracy'])}"
                                               + (f" ({wg}, n={head.get('worst_group_n')})" if wg else "")))
        t.add_row("clean accuracy", Text(f"{pct(head['clean_accuracy'])} of {head.get('n_clean')} cases "
                                         "with no annotated artifact"))
    for g in head["groups"]:
        t.add_row(f"  {g['group']}", Text(f"{pct(g['accuracy'])} (n={g['n']})"))
    for split, acc in head["other_splits"].items():
        t.add_row(f"accuracy, {split}", pct(acc))
    return t


def _computed_table(comp: Mapping[str, Any], concepts: list[dict[str, Any]]) -> Table:
    t = _kv_table("Concepts and analyses")
    names = [f"{c['name']} ({c.get('group')})" for c in concepts]
    t.add_row("concept bank", Text(f"{len(names)}: " + ", ".join(names) if names else "empty"))
    tc = comp["tcav"]
    if tc.get("done"):
        state = "" if tc.get("current") else " — for another model, re-run `workbench tcav`"
        t.add_row("TCAV", Text(f"{tc.get('rows')} rows, {tc.get('significant')} significant after "
                               f"{tc.get('correction')} ({tc.get('runs')} runs, layers "
                               f"{', '.join(tc.get('layers') or [])}){state}"))
        al = tc.get("alignment") or {}
        t.add_row("graph alignment", Text(", ".join(f"{k} {v}" for k, v in al.items()) or "—"))
    else:
        t.add_row("TCAV", "not computed")
    cf = comp["confounders"]
    t.add_row("confounders", Text(f"ranked ({cf.get('rows')} rows); top: {', '.join(cf.get('top') or []) or 'none'}"
                                  if cf.get("done") else "not precomputed"))
    fl = comp["flip_rates"]
    t.add_row("flip rates", "no annotated artifact to measure" if fl.get("artifacts") == 0 and not fl.get("done")
              else ("measured" if fl.get("done") else "not measured"))
    cl = comp["clusters"]
    t.add_row("clusters", Text(f"{cl.get('n_clusters')} clusters at {cl.get('layer')}, {cl.get('suspicious')} suspicious"
                               if cl.get("current") else ("saved (results/clusters.json)" if cl.get("done")
                                                          else "not computed")))
    if comp.get("seconds") is not None:
        t.add_row("precomputation", f"{comp['seconds']:.0f} s")
    return t


@cli_errors
def info(
    workspace: WorkspaceOpt = Path("workspace"),
    fmt: FormatOpt = "table",
) -> None:
    """What the workspace holds: data set, model, evaluation, concepts, analyses, next step."""
    from workbench.services._summary import workspace_summary

    check_format(fmt)
    summary = workspace_summary(Workspace(workspace))
    if fmt == "json":
        emit_json(summary)
        return
    console.print(Text(f"Workspace {summary['workspace']}", style="bold"))
    console.print(_dataset_table(summary["dataset"]))
    console.print(_model_table(summary["model"], summary["positive_class"]))
    console.print(_eval_table(summary["headline"], (summary["evaluation"] or {}).get("source")))
    console.print(_computed_table(summary["computed"], summary["concepts"]))
    console.print(Text("next: ", style="bold") + Text(summary["next"]))
