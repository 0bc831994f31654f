"""Workspace, data-set and model commands with no Python needed.

``workbench workspace init|show``, ``workbench datasets list|select``,
``workbench models list|select|add`` and ``workbench train`` (top-level entries of
``workbench.cli._app.COMMANDS``). Models enter a workspace only in formats that cannot run code when read:
a state dict (``.pt`` read with ``weights_only=True``, or ``.safetensors``) for a built-in or
entry-point architecture, or a checked ``torch.export`` program.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from concepts import ModelError, WorkbenchError, Workspace, WorkspaceError
from concepts.workspace import check_name
from workbench.cli._compute import (
    DeviceOpt,
    EngineOpt,
    PrecisionOpt,
    RayAddressOpt,
    compute_settings,
)
from workbench.cli._console import (
    FormatOpt,
    WorkspaceOpt,
    check_format,
    cli_errors,
    console,
    emit_json,
    pct,
    progress_bars,
)

if TYPE_CHECKING:  # torch: imported inside the commands that load or train a model (fast `workbench --help`)
    from concepts import ClassifierModel, Dataset, ProgressFn
    from concepts.models import Preprocessing

__all__ = ["analysis_layers", "datasets_app", "models_app", "train", "workspace_app"]


workspace_app = typer.Typer(help="Create and inspect a workspace.", no_args_is_help=True, add_completion=False)
datasets_app = typer.Typer(help="List and select the active data set.", no_args_is_help=True, add_completion=False)
models_app = typer.Typer(help="List, select and add models (safe formats only).", no_args_is_help=True,
                         add_completion=False)








def _line(text: str) -> None:
    """Print user-provided text literally (no rich markup)."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)





def analysis_layers(model: ClassifierModel) -> list[str]:
    """Layers analysed by default: the demo's for built-ins; for other models the last two
    coarsest modules with a spatial output (TCAV) and the features entering the head
    (interventions), found by one forward pass on a blank batch."""
    from workbench.services._demo import DEMO_LAYERS

    if model.architecture in DEMO_LAYERS:
        return list(DEMO_LAYERS[model.architecture])
    order = _output_shapes(model)
    spatial = [n for n, shape in order if len(shape) == 4]
    out: list[str] = []
    if spatial:
        depth = min(n.count(".") for n in spatial)
        out = [n for n in spatial if n.count(".") == depth][-2:]
    feats = [n for n, shape in order if len(shape) == 2 and shape[1] != len(model.classes)]
    below_head = feats[-1] if feats else model.layers[-2] if len(model.layers) >= 2 else model.layers[-1]
    return [*out, below_head] if below_head not in out else out


def _output_shapes(model: ClassifierModel) -> list[tuple[str, tuple[int, ...]]]:
    """(layer, output shape) in the order the layers finish, for a blank batch of two."""
    import torch

    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name: str) -> Callable[..., None]:
        def fn(_m: Any, _i: Any, o: Any) -> None:
            if isinstance(o, torch.Tensor) and name not in shapes:
                shapes[name] = tuple(o.shape)
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.module.named_modules() if n in set(model.layers)]
    try:
        with torch.no_grad():
            model.module(torch.zeros(2, 3, model.preprocess.size, model.preprocess.size))
    except Exception as exc:  # a user model that fails on a blank batch: say so in one line
        raise ModelError(f"the model fails on a blank batch of 2 images ({str(exc).splitlines()[0][:200]})") from exc
    finally:
        for h in handles:
            h.remove()
    return list(shapes.items())


def _register(ws: Workspace, model: ClassifierModel, ds: Dataset | None) -> None:
    """Record the model (and data set) in the workspace's store, as the demo does."""
    from store import Role, Store
    from workbench.auth._identity import cli_actor

    actor = cli_actor(ws.root, None, default=(Role.ENGINEER, Role.DERMATOLOGIST))
    store = Store.for_workspace(ws.root)
    with store.session():
        store.register_model(
            actor, model.model_id, model.architecture, model.weights_sha256,
            meta={"classes": list(model.classes), "preprocess": model.preprocess.key()},
        )
        if ds is not None:
            store.register_dataset(
                actor, ds.info.name, ds.info.content_hash,
                splits={s: len(ds.indices(s)) for s in ds.splits}, meta={"kind": ds.info.kind, "n": len(ds)},
            )


def _active_dataset(ws: Workspace) -> Dataset | None:
    name = ws.manifest().get("dataset")
    if not name or name not in ws.dataset_names():
        return None
    return ws.dataset(str(name))


# ---------------------------------------------------------------------------------- workspace
@workspace_app.command("init")
@cli_errors
def init(workspace: WorkspaceOpt = Path("workspace")) -> None:
    """Create an empty workspace (folders and workspace.json)."""
    ws = Workspace(workspace)
    created = ws.init()
    _line(f"{'created' if created else 'already a workspace:'} {ws.root}")
    if created:
        _line(f"next: workbench import ... -w {ws.root}, then workbench train -w {ws.root}")


def _show(ws: Workspace) -> dict[str, Any]:
    man = ws.manifest()
    return {
        "workspace": str(ws.root),
        "dataset": man.get("dataset"),
        "model": man.get("model"),
        "layers": man.get("layers", []),
        "positive_class": man.get("positive_class"),
        "datasets": ws.dataset_names(),
        "models": ws.model_names(),
        "store": ws.store_path.is_file(),
        "tcav_precomputed": (ws.results_dir / "tcav.parquet").is_file(),
    }


@workspace_app.command("show")
@cli_errors
def show(workspace: WorkspaceOpt = Path("workspace"), fmt: FormatOpt = "table") -> None:
    """Show the active data set and model, and what the workspace holds."""
    check_format(fmt)
    info = _show(Workspace(workspace))
    if fmt == "json":
        emit_json(info)
        return
    t = Table(title=f"workspace {info['workspace']}", show_header=False)
    t.add_column("")
    t.add_column("")
    t.add_row("active data set", Text(str(info["dataset"] or "—")))
    t.add_row("active model", Text(str(info["model"] or "—")))
    t.add_row("positive class", Text(str(info["positive_class"] or "—")))
    t.add_row("analysis layers", Text(", ".join(info["layers"]) or "—"))
    t.add_row("data sets", Text(", ".join(info["datasets"]) or "none"))
    t.add_row("models", Text(", ".join(info["models"]) or "none"))
    t.add_row("TCAV precomputed", "yes" if info["tcav_precomputed"] else "no")
    console.print(t)


# ---------------------------------------------------------------------------------- data sets
@datasets_app.command("list")
@cli_errors
def datasets_list(workspace: WorkspaceOpt = Path("workspace"), fmt: FormatOpt = "table") -> None:
    """List the data sets (the active one is marked)."""
    check_format(fmt)
    ws = Workspace(workspace)
    active = ws.manifest().get("dataset")
    rows: list[dict[str, Any]] = []
    for name in ws.dataset_names():
        try:
            info = json.loads((ws.datasets_dir / name / "dataset.json").read_text())
        except (OSError, ValueError):
            info = {}
        rows.append({"name": name, "active": name == active, "kind": info.get("kind"),
                     "classes": list(info.get("classes", [])), "image_size": info.get("image_size")})
    if fmt == "json":
        emit_json(rows)
        return
    t = Table(title=f"data sets in {ws.root}")
    for c in ("", "name", "kind", "classes", "image size"):
        t.add_column(c)
    for r in rows:
        t.add_row("*" if r["active"] else "", Text(r["name"]), Text(str(r["kind"])),
                  Text(", ".join(map(str, r["classes"]))), str(r["image_size"]))
    console.print(t)


@datasets_app.command("select")
@cli_errors
def datasets_select(
    name: Annotated[str, typer.Argument(help="Data-set name (see `workbench datasets list`).")],
    workspace: WorkspaceOpt = Path("workspace"),
) -> None:
    """Make a data set the active one."""
    ws = Workspace(workspace)
    ws.manifest()
    ds = ws.select_dataset(name)
    _line(f"active data set: {ds.info.name} ({len(ds)} cases, classes {', '.join(ds.classes)})")


# ---------------------------------------------------------------------------------- models
@models_app.command("list")
@cli_errors
def models_list(workspace: WorkspaceOpt = Path("workspace"), fmt: FormatOpt = "table") -> None:
    """List the models (the active one is marked); reads model.json only."""
    check_format(fmt)
    ws = Workspace(workspace)
    active = ws.manifest().get("model")
    rows: list[dict[str, Any]] = []
    for name in ws.model_names():
        try:
            info = ws.model_info(name)
        except ModelError:
            info = {}
        rows.append({"name": name, "active": name == active, "architecture": info.get("architecture"),
                     "classes": list(info.get("classes", [])), "model_id": info.get("model_id"),
                     "image_size": (info.get("preprocess") or {}).get("size")})
    if fmt == "json":
        emit_json(rows)
        return
    t = Table(title=f"models in {ws.root}")
    for c in ("", "name", "architecture", "classes", "image size", "model id"):
        t.add_column(c)
    for r in rows:
        t.add_row("*" if r["active"] else "", Text(r["name"]), Text(str(r["architecture"])),
                  Text(", ".join(map(str, r["classes"]))), str(r["image_size"]), str(r["model_id"]))
    console.print(t)


def _activate_model(ws: Workspace, name: str) -> ClassifierModel:
    from concepts import ClassifierModel

    model = ClassifierModel.load(ws.models_dir / name)
    model = ws.select_model(name, analysis_layers(model))
    _register(ws, model, _active_dataset(ws))
    ds = _active_dataset(ws)
    if ds is not None and set(model.classes) != set(ds.classes):
        _line(f"note: the model's classes ({', '.join(model.classes)}) differ from the active data set's "
              f"({', '.join(ds.classes)})")
    return model


@models_app.command("select")
@cli_errors
def models_select(
    name: Annotated[str, typer.Argument(help="Model name (see `workbench models list`).")],
    workspace: WorkspaceOpt = Path("workspace"),
) -> None:
    """Make a model the active one (it is loaded and checked, and recorded in the store)."""
    ws = Workspace(workspace)
    ws.manifest()
    model = _activate_model(ws, check_name(name, "model name"))
    _line(f"active model: {name} ({model.architecture}, id {model.model_id})")


def _floats3(text: str | None, opt: str) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3:
        raise typer.BadParameter(f"expected three numbers such as 0.485,0.456,0.406, got {text!r}", param_hint=opt)
    return vals  # type: ignore[return-value]


def _kwargs(values: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--kwarg")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out


def _read_model(
    source: Path, program: bool, architecture: str | None, classes: tuple[str, ...], pp: Preprocessing | None,
    kwargs: dict[str, Any],
) -> ClassifierModel:
    from concepts import ClassifierModel

    if source.is_dir():
        return ClassifierModel.load(source)
    if program or source.suffix == ".pt2":
        if pp is None:
            raise typer.BadParameter("a program needs --image-size (and --mean/--std if not 0.5)",
                                     param_hint="--image-size")
        return ClassifierModel.from_program(source, classes, preprocess=pp)
    if not architecture:
        raise typer.BadParameter("give --architecture NAME for a state dict (built-in or entry point), "
                                 "or --program for a torch.export .pt2", param_hint="--architecture")
    return ClassifierModel.from_state_dict(architecture, classes, source, preprocess=pp, factory_kwargs=kwargs)


@models_app.command("add")
@cli_errors
def models_add(
    source: Annotated[Path, typer.Argument(help="State dict (.pt, .safetensors), torch.export program (.pt2) "
                                           "or a model folder (model.json + weights).", show_default=False)],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name: written to models/<name>/.")],
    workspace: WorkspaceOpt = Path("workspace"),
    architecture: Annotated[str | None, typer.Option(help="Built-in architecture (efficientnet-lite0, tiny-cnn) "
                                                     "or an installed entry-point name.")] = None,
    program: Annotated[bool, typer.Option("--program", help="SOURCE is a torch.export program (.pt2).")] = False,
    classes: Annotated[str | None, typer.Option(help="Comma-separated class names in logit order "
                                                "(default: the active data set's).")] = None,
    image_size: Annotated[int | None, typer.Option(help="Input size in pixels (default: the built-in's).")] = None,
    mean: Annotated[str | None, typer.Option(help="Normalisation mean R,G,B (default 0.5,0.5,0.5).")] = None,
    std: Annotated[str | None, typer.Option(help="Normalisation std R,G,B (default 0.5,0.5,0.5).")] = None,
    kwarg: Annotated[list[str] | None, typer.Option("--kwarg", help="Factory keyword KEY=VALUE (JSON scalar); "
                                                    "repeatable.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model of that name.")] = False,
    select: Annotated[bool, typer.Option("--select/--no-select", help="Make it the active model.")] = True,
    analyse: Annotated[bool, typer.Option("--precompute/--no-precompute", "--analyse/--no-analyse",
                                          help="Precompute what the UI pages show (when selected).")] = True,
    tcav_runs: Annotated[int, typer.Option(help="TCAV runs of the precomputation.")] = 20,
) -> None:
    """Register your own model (safe formats only) and make it the active one."""
    ws = Workspace(workspace)
    ws.manifest()
    check_name(name, "model name")
    ds = _active_dataset(ws)
    names = tuple(c.strip() for c in classes.split(",") if c.strip()) if classes else (ds.classes if ds else ())
    if not names and not source.is_dir():
        raise typer.BadParameter("give --classes (no active data set to take them from)", param_hint="--classes")
    pp = None
    if image_size is not None or mean is not None or std is not None:
        from concepts.models import BUILTIN_ARCHITECTURES, Preprocessing

        base = BUILTIN_ARCHITECTURES[architecture][1] if architecture in BUILTIN_ARCHITECTURES else Preprocessing(224)
        pp = Preprocessing(size=image_size or base.size, mean=_floats3(mean, "--mean") or base.mean,
                           std=_floats3(std, "--std") or base.std)
    model = _read_model(source, program, architecture, names, pp, _kwargs(kwarg))
    path = ws.save_model(model, name, overwrite=overwrite)
    _line(f"model {name!r} added: {model.architecture}, classes {', '.join(model.classes)}, "
          f"{model.preprocess.size} px, id {model.model_id} -> {path}")
    if select:
        _activate_model(ws, name)
        _line(f"active model: {name}")
        if analyse:
            with progress_bars(True) as progress:
                _line(_precompute(ws, tcav_runs, progress))


# ---------------------------------------------------------------------------------- train
def _metrics_table(result: Any) -> Table:
    t = Table(title=f"{result.model.architecture} ({result.mode}, {result.model.preprocess.size} px, "
                    f"{result.n_train} training cases, {result.seconds:.0f} s) — positive class "
                    f"{result.positive_class}")
    for c in ("split", "n", "accuracy", "balanced acc.", "sensitivity", "specificity", "AUC", "worst group"):
        t.add_column(c, justify="right" if c not in ("split", "worst group") else "left")
    for split, m in result.metrics.items():
        wg = "—" if m.worst_group_accuracy is None else f"{pct(m.worst_group_accuracy)} ({m.worst_group})"
        t.add_row(split, str(m.n), pct(m.accuracy), pct(m.balanced_accuracy), pct(m.sensitivity),
                  pct(m.specificity), "—" if m.auc is None else f"{m.auc:.3f}", Text(wg))
    return t


def _precompute(ws: Workspace, runs: int, progress: ProgressFn) -> str:
    """TCAV with significance, evaluation, confounder report and clusters for the UI (as the
    demo does); one line per note when a step cannot run."""
    from workbench.services._demo import analyse_workspace

    try:
        out = analyse_workspace(ws, runs=runs, progress=progress)
    except WorkbenchError as exc:  # e.g. too few inputs: the model still stands
        return f"not precomputed: {' '.join(str(exc).split())}"
    done = [label for key, label in (("evaluation", "evaluation"), ("confounders", "confounder report"),
                                     ("clusters", "clusters")) if out.get(key)]
    head = (f"TCAV precomputed: {out['tcav_rows']} rows, {out['tcav_significant']} significant"
            if out["tcav_rows"] else "TCAV not precomputed")
    lines = [f"{head}; also for the UI: {', '.join(done) or 'nothing'} ({out['seconds']:.0f} s in all)",
             *out.get("notes", [])]
    return "\n".join(lines)


@cli_errors
def train(
    workspace: WorkspaceOpt = Path("workspace"),
    architecture: Annotated[str, typer.Option(help="efficientnet-lite0 (frozen + linear head) or tiny-cnn "
                                              "(end to end).")] = "efficientnet-lite0",
    image_size: Annotated[int | None, typer.Option(help="Input size (default 224 EfficientNet / 64 tiny CNN, "
                                                   "at most the data set's).")] = None,
    balanced: Annotated[bool, typer.Option("--balanced/--no-balanced", help="Weight classes by inverse "
                                           "frequency.")] = True,
    epochs: Annotated[int, typer.Option(help="Epochs (tiny-cnn).")] = 10,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Model name (default DATASET-ARCHITECTURE).")] = None,
    positive_class: Annotated[str | None, typer.Option(help="Class whose sensitivity is reported (default "
                                                       "melanoma where present).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Data set (default: the active one).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model of that name.")] = False,
    analyse: Annotated[bool, typer.Option("--precompute/--no-precompute", "--analyse/--no-analyse",
                                          help="Precompute what the UI pages show (TCAV, evaluation, "
                                          "confounders, clusters).")] = True,
    tcav_runs: Annotated[int, typer.Option(help="TCAV runs of the precomputation.")] = 20,
    fmt: FormatOpt = "table",
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
) -> None:
    """Train a classifier on the active data set's train split, store it and make it active."""
    from concepts.models import TrainConfig, train_classifier

    check_format(fmt)
    ws = Workspace(workspace, compute=compute_settings(engine, ray_address, device, precision))
    ws.manifest()
    ds = ws.select_dataset(dataset) if dataset else _active_dataset(ws)
    if ds is None:
        raise WorkspaceError(f"{ws.root} has no active data set — import one with `workbench import ... -w {ws.root}`")
    model_name = check_name(name or f"{ds.info.name}-{architecture}", "model name")
    if model_name in ws.model_names() and not overwrite:
        raise WorkspaceError(f"model {model_name!r} exists — pass --overwrite or choose another --name")
    cfg = TrainConfig(architecture=architecture, image_size=image_size, balanced=balanced, epochs=epochs,
                      positive_class=positive_class, seed=seed)
    with progress_bars(fmt == "table") as progress:
        result = train_classifier(ds, cfg, cache=ws.activation_cache, progress=progress)
        ws.save_model(result.model, model_name, overwrite=overwrite)
        trained = dict(ws.manifest().get("trained") or {})
        trained[model_name] = result.to_json()
        ws.update_manifest(trained=trained, positive_class=result.positive_class)
        _activate_model(ws, model_name)
        note = _precompute(ws, tcav_runs, progress) if analyse else "not precomputed (--no-precompute)"
    if fmt == "json":
        emit_json({"model": model_name, **result.to_json(), "analysis": note})
        return
    console.print(_metrics_table(result))
    _line(f"model {model_name!r} stored in {ws.models_dir / model_name} and active (id {result.model.model_id})")
    _line(note)
