"""``workbench confounders``, ``workbench clusters`` and ``workbench name-cluster``.

They are top-level commands of ``workbench`` (``workbench.cli._app.COMMANDS``).

- ``confounders``: the ranked confounder report (co-occurrence x model reliance x clinical
  graph) of a workspace's data set, or its co-occurrence tables (``--table``). Reliance is the
  counterfactual flip rate where twins can be made, else TCAV sensitivity.
- ``clusters``: cluster a layer's activations (no annotations needed), rank the clusters by
  how strongly they ride with a class, save the result to ``results/clusters.json``.
- ``name-cluster``: a human names a saved cluster; it becomes a concept of the bank (and a
  ``concept_named`` event in the store).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from concepts import DataError, Workspace, WorkspaceError
from workbench.cli._compute import (
    DeviceOpt,
    EngineOpt,
    PrecisionOpt,
    RayAddressOpt,
    compute_settings,
)
from workbench.cli._console import WorkspaceOpt, cli_errors, err_console, print_frame, progress_bars
from workbench.cli._tables import print_fit_table

if TYPE_CHECKING:
    import pandas as pd

    from concepts.models import Compute

__all__ = [
    "CLUSTERS_FILE",
    "clusters_command",
    "confounders_command",
    "name_cluster_command",
]

#: Where ``workbench clusters`` saves its result (relative to the workspace's results folder).
CLUSTERS_FILE = "clusters.json"


class Fmt(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class TableKind(StrEnum):
    report = "report"
    cooccurrence = "cooccurrence"
    pairs = "pairs"


class Correction(StrEnum):
    holm = "holm"
    bh = "bh"
    none = "none"


class Method(StrEnum):
    kmeans = "kmeans"
    spectral = "spectral"


class Scope(StrEnum):
    within_class = "within_class"
    global_ = "global"


class Pooling(StrEnum):
    mean = "mean"
    max = "max"
    meanmax = "meanmax"
    block = "block"
    flatten = "flatten"


class Membership(StrEnum):
    probe = "probe"
    centroid = "centroid"


class Negatives(StrEnum):
    rest = "rest"
    random = "random"


FmtOpt = Annotated[Fmt, typer.Option("--format", help="table, json or csv.")]

_REPORT_TABLE_COLUMNS = [
    "rank", "concept", "class", "score", "odds_ratio", "p_adjusted", "reliance_strength",
    "reliance_source", "clinically_relevant", "relation",
]
_CLUSTER_TABLE_COLUMNS = [
    "rank", "cluster", "group", "size", "class", "purity", "lift", "odds_ratio", "p_adjusted",
    "suspicious", "exemplars",
]


def _workspace(path: Path, compute: Compute | None = None) -> Workspace:
    ws = Workspace(path, compute=compute)
    if not ws.exists():
        raise WorkspaceError(
            f"{ws.root} is not a workspace (workspace.json missing) — build one with "
            f"`workbench demo --no-serve --workspace {path}`"
        )
    return ws


@cli_errors
def confounders_command(
    workspace: WorkspaceOpt = Path("workspace"),
    fmt: FmtOpt = Fmt.table,
    table: Annotated[
        TableKind,
        typer.Option("--table", help="report (ranked confounders), cooccurrence (attribute x class) "
                     "or pairs (attribute x attribute)."),
    ] = TableKind.report,
    split: Annotated[
        str | None,
        typer.Option("--split", help="Split whose co-occurrence counts (default: train; 'all' pools "
                     "every case). For --table cooccurrence/pairs: only this split."),
    ] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Data set (default: the active one).")] = None,
    correction: Annotated[
        Correction, typer.Option("--correction", help="Multiple-testing correction: holm, bh or none.")
    ] = Correction.holm,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level.")] = 0.05,
    top: Annotated[
        int | None, typer.Option("--top", help="Show only the first N rows (table default: 20).")
    ] = None,
    twins: Annotated[
        bool, typer.Option("--twins/--no-twins", help="Measure reliance with counterfactual twins "
                           "of every annotated artifact (cached in results/); --no-twins: TCAV only.")
    ] = True,
    max_twins: Annotated[
        int, typer.Option("--max-twins", help="At most this many twins per artifact (evaluation split).")
    ] = 200,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
) -> None:
    """Rank the confounders of a workspace: co-occurrence x model reliance x clinical irrelevance.

    The score is the product of the three (defined in docs/confounders.md, "The score");
    reliance is the counterfactual flip rate where twins exist, else TCAV sensitivity
    (column reliance_source). Named clusters enter with their held-out association.
    """
    from concepts.discovery import attribute_class_table, attribute_pair_table
    from graph import workspace_confounders

    if not 0 < alpha < 1:
        raise DataError(f"--alpha must lie in (0, 1), got {alpha}")
    if max_twins < 1:
        raise DataError(f"--max-twins must be at least 1, got {max_twins}")
    ws = _workspace(workspace, compute_settings(engine, ray_address, device, precision))
    if table is TableKind.report:
        df = workspace_confounders(ws, dataset=dataset, split=split, correction=correction.value,
                                   alpha=alpha, flip_rates=twins, max_twins=max_twins)
        _reliance_note(df, (ws.results_dir / "tcav.parquet").is_file())
        title = "Ranked confounders"
        cols = _REPORT_TABLE_COLUMNS
    else:
        ds = ws.dataset(dataset)
        splits = [split] if split else None
        fn = attribute_class_table if table is TableKind.cooccurrence else attribute_pair_table
        df = fn(ds, splits=splits, correction=correction.value, alpha=alpha)
        if table is TableKind.pairs:
            df = df.assign(_abs=df["phi"].abs()).sort_values(
                ["split", "_abs"], ascending=[True, False], kind="stable", na_position="last"
            ).drop(columns="_abs").reset_index(drop=True)
            title = "Attribute co-occurrence (phi)"
            cols = ["split", "a", "b", "n11", "n", "phi", "odds_ratio", "p_adjusted", "note"]
        else:
            title = "Attribute x class co-occurrence"
            cols = ["split", "attribute", "class", "n_both", "n_class", "prevalence_class",
                    "prevalence_other", "lift", "odds_ratio", "p_adjusted", "note"]
    if fmt is Fmt.table:
        print_fit_table(df[cols].head(top if top is not None else 20), title=title)
    else:
        print_frame(df if top is None else df.head(top), fmt.value)


def _reliance_note(df: pd.DataFrame, has_tcav: bool) -> None:
    """One line on stderr: where the reliance of the report came from."""
    n_flip = int((df["reliance_source"] == "flip_rate").sum()) if len(df) else 0
    if n_flip == 0 and not has_tcav:
        err_console.print(
            "note: no twins and no TCAV results (results/tcav.parquet): reliance is unknown — "
            "run `workbench tcav`, or give the data twins (docs/confounders.md)", highlight=False,
        )
    elif n_flip == 0:
        err_console.print("note: no counterfactual twins could be made: reliance is TCAV "
                          "sensitivity only", highlight=False)


@cli_errors
def clusters_command(
    workspace: WorkspaceOpt = Path("workspace"),
    fmt: FmtOpt = Fmt.table,
    layer: Annotated[
        str | None, typer.Option("--layer", help="Layer to cluster (default: the features the model's head reads).")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Split the clusters are found on.")] = "train",
    test_split: Annotated[
        str, typer.Option("--test-split", help="Split their association is tested on: 'auto' (val when "
                          "present, else half of --split held out) or a split name.")
    ] = "auto",
    membership: Annotated[
        Membership, typer.Option("--membership", help="How a held-out case counts as a member: probe or centroid.")
    ] = Membership.probe,
    method: Annotated[Method, typer.Option("--method", help="kmeans or spectral.")] = Method.kmeans,
    scope: Annotated[
        Scope, typer.Option("--scope", help="within_class (each class on its own) or global.")
    ] = Scope.within_class,
    pooling: Annotated[Pooling, typer.Option("--pooling", help="How conv maps become vectors.")] = Pooling.meanmax,
    k: Annotated[int | None, typer.Option("--k", help="Fixed k (default: best silhouette).")] = None,
    k_min: Annotated[int, typer.Option("--k-min", help="Smallest k tried.")] = 2,
    k_max: Annotated[int, typer.Option("--k-max", help="Largest k tried.")] = 12,
    exemplars: Annotated[int, typer.Option("--exemplars", help="Exemplars per cluster.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
) -> None:
    """Cluster a layer's activations on one split; rank the clusters by class association on another.

    Needs no annotations. The default layer is the one the classifier's head reads (a shortcut
    the model learned must show there). The result is saved to results/clusters.json for
    `name-cluster`.
    """
    from concepts.discovery import cluster_dataset

    ws = _workspace(workspace, compute_settings(engine, ray_address, device, precision))
    ds = ws.dataset()
    model = ws.model()
    lay = layer or model.layers[-2]
    with progress_bars(fmt is Fmt.table) as progress:
        res = cluster_dataset(
            ds, model, lay, split=split, test_split=test_split, cache=ws.activation_cache,
            progress=progress, membership=membership.value, method=method.value, scope=scope.value, pooling=pooling.value, k=k,
            k_range=(k_min, k_max), n_exemplars=exemplars, seed=seed,
        )
    path = res.save(ws.results_dir / CLUSTERS_FILE)
    df = res.clusters.assign(
        exemplars=res.clusters["exemplar_case_ids"].map(lambda ids: " ".join(list(ids)[:4]))
    )
    if fmt is Fmt.table:
        print_frame(df[_CLUSTER_TABLE_COLUMNS], "table", title=f"Clusters of {lay} ({split})")
        err_console.print(res.k_selection, highlight=False)
        err_console.print(f"saved to {path}; name one with `workbench name-cluster --cluster ID "
                          "--name NAME --description TEXT`", highlight=False)
    else:
        print_frame(res.clusters, fmt.value)


@cli_errors
def name_cluster_command(
    cluster: Annotated[int, typer.Option("--cluster", help="Cluster id (column 'cluster').")],
    name: Annotated[str, typer.Option("--name", help="Concept name, e.g. ink_marks.")],
    description: Annotated[str, typer.Option("--description", help="What the cluster shows.")] = "",
    workspace: WorkspaceOpt = Path("workspace"),
    group: Annotated[str, typer.Option("--group", help="custom, artifact or criterion.")] = "custom",
    negatives: Annotated[
        Negatives, typer.Option("--negatives", help="rest (non-members) or random counterparts.")
    ] = Negatives.rest,
    role: Annotated[str, typer.Option("--role", help="Your role, recorded in the store.")] = "dermatologist",
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="Record a concept_named event in the store.")
    ] = True,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a concept of that name.")] = False,
) -> None:
    """Name a cluster saved by `workbench clusters`: it becomes a concept of the bank."""
    from concepts.discovery import ClusteringResult, name_cluster

    ws = _workspace(workspace)
    res = ClusteringResult.load(ws.results_dir / CLUSTERS_FILE)
    actor = None
    if record:
        from workbench.auth._identity import cli_actor

        actor = cli_actor(ws.root, role)
    concept = name_cluster(ws, res, cluster, name, description or f"cluster {cluster} of {res.layer}",
                           actor, group=group, negatives=negatives.value, replace=replace)
    sys.stdout.write(
        f"added concept {concept.name!r} ({len(concept.positive)} positives"
        + (f", {len(concept.negative)} negatives" if concept.negative is not None else "")
        + f", id {concept.id}) to {ws.concepts_dir / 'bank.json'}\n"
    )
