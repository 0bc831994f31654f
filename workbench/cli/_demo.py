"""``workbench demo`` and ``workbench serve``: build the demo workspace, serve the UI."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from concepts import Workspace
from workbench.cli._console import WorkspaceOpt, cli_errors, console, emit_json, progress_bars

if TYPE_CHECKING:
    from concepts import ProgressFn

__all__ = ["demo", "serve"]


def _summary_table(summary: dict[str, object]) -> Table:
    table = Table(title="Demo workspace", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")

    def pct(x: object) -> str:
        return "—" if x is None else f"{100 * float(x):.1f}%"  # type: ignore[arg-type]

    table.add_row("images (main set)", str(summary["n_images"]))
    table.add_row("concept-set images", str(summary["n_concept_images"]))
    table.add_row("model", f"{summary['architecture']} ({summary['model_id']})")
    table.add_row("DermSynth generation", f"{summary['generation_seconds']} s")
    table.add_row("demo build (total)", f"{summary['build_seconds']} s")
    table.add_row("accuracy, biased val", pct(summary["val_accuracy"]))
    table.add_row("accuracy, debiased test", pct(summary["test_debiased_accuracy"]))
    table.add_row("worst-group accuracy, debiased test", pct(summary["test_debiased_worst_group_accuracy"]))
    flips = summary.get("flip_rates", {})
    for art, fr in (flips.items() if isinstance(flips, dict) else []):
        cls = fr["class"]
        table.add_row(f"flip rate: add {art} (to {cls})", f"{pct(fr['add'])} of {fr['add_n']}")
        table.add_row(f"flip rate: remove {art}", f"{pct(fr['remove'])} of {fr['remove_n']}")
    return table


@cli_errors
def demo(
    workspace: WorkspaceOpt = Path("workspace"),
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the UI after building.")] = True,
    confounder: Annotated[
        list[str] | None,
        typer.Option(
            "--confounder",
            "-c",
            help="Planted confounder ARTIFACT:CLASS[:PREVALENCE] (repeatable), e.g. ruler:melanoma:0.6. "
            "Default: ink:melanoma:0.6 and patch:nevus:0.6.",
        ),
    ] = None,
    n_images: Annotated[int, typer.Option(help="Images in the main DermSynth set.")] = 2000,
    image_size: Annotated[int, typer.Option(help="Image size in pixels.")] = 128,
    seed: Annotated[int, typer.Option(help="Random seed (deterministic build).")] = 0,
    architecture: Annotated[str, typer.Option(help="efficientnet-lite0 (default) or tiny-cnn.")] = "efficientnet-lite0",
    force: Annotated[bool, typer.Option(help="Rebuild even if a matching build exists.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    role: Annotated[str, typer.Option(help="Role in local mode.")] = "dermatologist",
) -> None:
    """Build the demo workspace (DermSynth + EfficientNet-Lite0) and serve the UI."""
    from concepts.dermsynth import DermSynthConfig, parse_confounder
    from workbench.services._demo import DemoConfig, build_demo

    ds_kwargs: dict[str, object] = {"n_images": n_images, "image_size": image_size, "seed": seed}
    if confounder:
        ds_kwargs["confounders"] = tuple(parse_confounder(c) for c in confounder)
    cfg = DemoConfig(dermsynth=DermSynthConfig(**ds_kwargs), architecture=architecture, seed=seed)  # type: ignore[arg-type]
    ws = Workspace(workspace)
    with progress_bars(fmt == "table") as progress:
        summary = build_demo(ws, cfg, force=force, progress=progress)
        if not summary.get("reused") or "analysis" not in ws.manifest():
            _post_build(ws, progress)
    if fmt == "json":
        emit_json(summary)
    else:
        if summary.get("reused"):
            console.print(f"Reusing the demo workspace at {ws.root} (same configuration).")
        console.print(_summary_table(summary))
    if serve:
        from workbench.auth._identity import check_local_role
        from workbench.cli._serve import serve_ui

        check_local_role(ws.root, host, role)
        serve_ui(ws, host=host, port=port, role=role)


def _post_build(ws: Workspace, progress: ProgressFn) -> None:
    """Analyses the demo precomputes after the model is built (TCAV, store registration)."""
    from workbench.services._demo import analyse_workspace

    analyse_workspace(ws, progress=progress)


@cli_errors
def serve(
    workspace: WorkspaceOpt = Path("workspace"),
    host: Annotated[str, typer.Option(help="Address to serve on (non-loopback needs sign-in).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8501,
    role: Annotated[str, typer.Option(help="dermatologist, engineer or auditor (local mode).")] = "dermatologist",
) -> None:
    """Serve the Streamlit UI for a workspace."""
    from workbench.auth._identity import check_local_role
    from workbench.cli._serve import serve_ui

    check_local_role(Workspace(workspace).root, host, role)
    serve_ui(Workspace(workspace), host=host, port=port, role=role)
