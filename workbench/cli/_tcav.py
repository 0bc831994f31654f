"""``workbench tcav``: directional sensitivity of the class logits to the bank's concepts (TCAV), with significance."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from concepts import Workspace
from concepts.tcav import CORRECTIONS, MAX_INPUTS_PER_CLASS, PROBES, STATISTICS, TESTS
from workbench.cli._compute import (
    DeviceOpt,
    EngineOpt,
    PrecisionOpt,
    RayAddressOpt,
    compute_settings,
)
from workbench.cli._console import cli_errors, err_console, print_frame, progress_bars
from workbench.cli._tables import print_fit_table

if TYPE_CHECKING:
    from concepts.tcav import SignificanceConfig, TCAVReport

__all__ = ["JSON_COLUMNS", "tcav_command"]

#: Columns printed by ``--format json|csv`` (``table`` prints a shorter selection).
JSON_COLUMNS: tuple[str, ...] = (
    "concept", "group", "class", "layer", "score_mean", "score_std", "random_mean", "effect",
    "derivative_mean", "random_derivative_mean", "statistic", "test_z",
    "p_value", "p_adjusted", "cav_accuracy", "stability", "probe_cosine", "confounded",
    "significant", "unstable", "verdict",
)
_TABLE_COLUMNS: tuple[str, ...] = (
    "concept", "class", "layer", "score_mean", "random_mean", "effect", "p_adjusted",
    "cav_accuracy", "stability", "significant", "verdict",
)


def _split_list(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return out or None


@cli_errors
def tcav_command(
    workspace: Annotated[
        Path, typer.Option("--workspace", "-w", help="Workspace directory (all state lives here).")
    ] = Path("workspace"),
    layers: Annotated[
        list[str] | None,
        typer.Option("--layers", "-l", help="Layers to analyse (repeatable or comma-separated; default: the workspace's)."),
    ] = None,
    runs: Annotated[int, typer.Option("--runs", "-r", min=2, help="Random counterparts per concept (R).")] = 20,
    probe: Annotated[str, typer.Option("--probe", "-p", help=f"CAV probe: {', '.join(PROBES)}.")] = "pattern",
    stability_probe: Annotated[
        str, typer.Option(help="Second probe whose conclusions must agree ('auto', a probe, or 'none').")
    ] = "auto",
    concept: Annotated[
        list[str] | None, typer.Option("--concept", "-c", help="Only these concepts (repeatable).")
    ] = None,
    counterpart: Annotated[
        str | None,
        typer.Option(help="Train CAVs against 'random' counterparts or the explicit 'negative' sets (twins)."),
    ] = None,
    split: Annotated[list[str] | None, typer.Option(help="Split(s) the class inputs come from.")] = None,
    inputs_per_class: Annotated[
        int, typer.Option(min=0, help="Class inputs kept per class, a seeded sample (0: all; their gradients "
                          "are held in memory).")
    ] = MAX_INPUTS_PER_CLASS,
    test: Annotated[
        str,
        typer.Option(help=f"Significance test: {', '.join(TESTS)} (prediction: the concept's mean against "
                     "the distribution of random pseudo-concepts; welch/mannwhitney: run-level, over-claim when runs share examples)."),
    ] = "prediction",
    statistic: Annotated[
        str,
        typer.Option(help=f"Per-run statistic tested: {', '.join(STATISTICS)} (derivative: mean directional "
                     "derivative of the unit CAV; sign_count: the TCAV score, which saturates near a linear head)."),
    ] = "derivative",
    correction: Annotated[str, typer.Option(help=f"Multiple-testing correction: {', '.join(CORRECTIONS)}.")] = "holm",
    alpha: Annotated[float, typer.Option(help="Level of the corrected test.")] = 0.05,
    target: Annotated[str, typer.Option(help="Differentiate the class 'logit' or the 'centered_logit'.")] = "logit",
    seed: Annotated[int, typer.Option(help="Seed of the random sets and CAV splits.")] = 0,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
    all_columns: Annotated[bool, typer.Option("--all-columns", help="Print every column of the result table.")] = False,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
) -> None:
    """TCAV: how sensitive each class logit is to each concept direction, against random directions.

    Directional sensitivity per (concept, class, layer) over R runs that each draw fresh
    examples, tested against random pseudo-concepts (prediction test, Holm correction).
    Sensitivity is not causal reliance: counterfactual flip rates measure that. Results are
    saved to ``<workspace>/results/tcav.parquet``; CAVs to ``results/cavs`` and reused when
    nothing changed.
    """
    from concepts.tcav import SignificanceConfig, run_tcav  # torch: here, not at `workbench --help`

    if fmt not in ("table", "json", "csv"):
        raise typer.BadParameter(f"unknown format {fmt!r}: use table, json or csv", param_hint="--format")
    sig = SignificanceConfig(alpha=alpha, test=test, correction=correction, statistic=statistic)
    splits = _split_list(split) or ["val"]
    ws = Workspace(workspace, compute=compute_settings(engine, ray_address, device, precision))
    with progress_bars(fmt == "table") as progress:
        report = run_tcav(
            ws,
            _split_list(layers),
            runs=runs,
            probe=probe,
            stability_probe=None if stability_probe == "none" else stability_probe,
            concepts=_split_list(concept),
            counterpart=counterpart,
            split=splits[0] if len(splits) == 1 else splits,
            inputs_per_class=inputs_per_class or None,
            significance=sig,
            target=target,
            seed=seed,
            progress=progress,
        )
    _print_report(report, fmt, all_columns=all_columns, runs=runs, sig=sig, saved=ws.results_dir)


def _print_report(report: TCAVReport, fmt: str, *, all_columns: bool, runs: int, sig: SignificanceConfig,
                  saved: Path) -> None:
    """The TCAV table (table, json or csv on stdout) and its warnings and summary (stderr)."""
    table = report.table
    cols = list(table.columns) if all_columns else list(JSON_COLUMNS if fmt != "table" else _TABLE_COLUMNS)
    title = f"TCAV ({report.settings['probe']} probe, R = {runs}, {sig.test} on {sig.statistic}, {sig.correction})"
    if fmt == "table":
        print_fit_table(table[cols], title=title)
    else:
        print_frame(table[cols], fmt, title=title)
    for w in report.warnings:  # stderr: keeps json/csv on stdout clean
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False)
    if fmt == "table":
        n_sig = int(table["significant"].sum())
        err_console.print(
            f"{n_sig} significant of {len(table)} (concept, class, layer) tests; "
            f"{int(table['unstable'].sum())} unstable across probes. Saved to {saved / 'tcav.parquet'}",
            highlight=False,
        )

