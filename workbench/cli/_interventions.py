"""``workbench intervene | apply | predict``: interventions from the command line.

Top-level commands of ``workbench`` (``workbench.cli._app.COMMANDS``); ``fix`` is in
``workbench.cli._fix``. Errors are one line on stderr with exit code 1 (``cli_errors``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from concepts import Workspace
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

if TYPE_CHECKING:  # torch and sklearn: imported inside the commands (fast `workbench --help`)

    from concepts import ClassifierModel, Dataset
    from interventions import ConceptLibrary, EffectReport, InterventionSpec, Scope

__all__ = ["apply", "default_layer", "intervene", "parse_amplify", "predict"]



# ---------------------------------------------------------------------------------- helpers









def _delta(a: Any, b: Any) -> str:
    if a is None or b is None:
        return "—"
    return f"{100 * (float(a) - float(b)):+.1f}"


def parse_amplify(text: str) -> tuple[str, str, float, str | None]:
    """``CONCEPT[:GAMMA]`` -> (concept, operation, strength, level); GAMMA ``present`` moves the
    component to the present level (``set``), a number scales it (``amplify``, default 2)."""
    name, sep, tail = text.rpartition(":")
    if not sep:
        return text, "amplify", 2.0, None
    if tail == "present":
        return name, "set", 1.0, "present"
    try:
        return name, "amplify", float(tail), None
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: expected CONCEPT or CONCEPT:GAMMA (a number, or 'present')", param_hint="--amplify"
        ) from None


def default_layer(model: ClassifierModel, ws: Workspace) -> str:
    if "pool" in model.layers:
        return "pool"
    layers = [lay for lay in ws.layers() if lay in model.layers]
    if layers:
        return layers[-1]
    return model.layers[-2]


def _default_split(ds: Dataset) -> str:
    for s in ("test_debiased", "test", "val"):
        if s in ds.splits:
            return s
    return ds.splits[0]


def build_spec(
    library: ConceptLibrary,
    layer: str,
    masks: list[str],
    amplifies: list[str],
    *,
    scope: Scope | None = None,
    method: str | None = None,
    note: str = "",
) -> InterventionSpec:
    """A spec from ``--mask`` / ``--amplify`` values (directions from the concept bank)."""
    from interventions import ConceptEdit, InterventionError, InterventionSpec, Scope

    edits = [ConceptEdit(library.direction(c, layer, method), "mask", 1.0) for c in masks]
    for text in amplifies:
        name, op, strength, level = parse_amplify(text)
        edits.append(ConceptEdit(library.direction(name, layer, method), op, strength, level))
    if not edits:
        raise InterventionError("give at least one --mask CONCEPT or --amplify CONCEPT[:GAMMA]")
    return InterventionSpec(library.model.model_id, layer, tuple(edits), scope or Scope(), note=note)


# ---------------------------------------------------------------------------------- tables
def _effect_tables(report: EffectReport) -> list[Table]:
    from interventions import METRIC_KEYS

    t = Table(title=f"{report.spec.describe()} — split {report.split} (n={report.before.get('n')})")
    t.add_column("metric")
    for c in ("before", "after", "Δ points"):
        t.add_column(c, justify="right")
    for k in METRIC_KEYS:
        t.add_row(k, pct(report.before.get(k)), pct(report.after.get(k)),
                  _delta(report.after.get(k), report.before.get(k)))
    for art, fr in report.reliance.get("flip_rates", {}).items():
        red = fr.get("reduction")
        t.add_row(f"flip rate: {fr.get('direction', 'add')} {fr.get('artifact', art)} (n={fr['n']})",
                  pct(fr["before"]), pct(fr["after"]),
                  _delta(fr["after"], fr["before"]) + ("" if red is None else f" ({100 * red:.0f}% less)"))
    t.add_row("flipped cases", "", str(len(report.flipped_cases)), "")
    console.print(f"positive class {report.before.get('positive_class')}; worst group "
                  f"{report.before.get('worst_group')} → {report.after.get('worst_group')}", highlight=False)
    methods = {k: fr.get("method") for k, fr in report.reliance.get("flip_rates", {}).items()}
    if any(m not in (None, "render") for m in methods.values()):
        console.print("twins: " + "; ".join(f"{k} from {m}" for k, m in methods.items()), highlight=False)
    if report.reliance.get("twins_note"):
        console.print(f"note: {report.reliance['twins_note']}", highlight=False)
    tables = [t]
    tc = report.reliance.get("tcav") or {}
    if tc.get("rows"):
        tt = Table(title=f"TCAV at {tc['layer']} ({tc['runs']} runs), before → after")
        for c in ("concept", "class", "TCAV before", "TCAV after", "significant", "alignment"):
            tt.add_column(c)
        for r in tc["rows"]:
            al = tc.get("alignment", {}).get(r["concept"], {})
            tt.add_row(r["concept"], r["class"], f"{r['score_before']:.2f}", f"{r['score_after']:.2f}",
                       f"{r['significant_before']} → {r['significant_after']}",
                       f"{al.get('before')} → {al.get('after')}")
        tables.append(tt)
    elif tc.get("error"):
        console.print(f"TCAV not measured: {tc['error']}")
    if report.slices:
        st = Table(title="slices: accuracy before → after")
        for c in ("slice", "n", "accuracy", "sensitivity", "specificity"):
            st.add_column(c)
        for s in report.slices:
            st.add_row(f"{s['column']}: {s['value']}", str(s["n"]),
                       f"{pct(s['accuracy_before'])} → {pct(s['accuracy_after'])}",
                       f"{pct(s['sensitivity_before'])} → {pct(s['sensitivity_after'])}",
                       f"{pct(s['specificity_before'])} → {pct(s['specificity_after'])}")
        tables.append(st)
    if report.flipped_cases:
        ft = Table(title=f"flipped cases (first 20 of {len(report.flipped_cases)})")
        for c in ("case", "label", "before", "after"):
            ft.add_column(c)
        for f in report.flipped_cases[:20]:
            ft.add_row(f["case_id"], f["label"], f["before"], f["after"])
        tables.append(ft)
    return tables


# ---------------------------------------------------------------------------------- commands
@cli_errors
def intervene(
    workspace: WorkspaceOpt = Path("workspace"),
    mask: Annotated[list[str] | None, typer.Option("--mask", help="Concept to mask (repeatable).")] = None,
    amplify: Annotated[
        list[str] | None,
        typer.Option("--amplify", help="CONCEPT[:GAMMA] to amplify (default gamma 2; 'present' moves it "
                     "to the present level). Repeatable."),
    ] = None,
    layer: Annotated[str | None, typer.Option(help="Layer to intervene at (default pool); 'best': the "
                                              "workspace layer where the concepts' directions separate "
                                              "best.")] = None,
    split: Annotated[str | None, typer.Option(help="Split to evaluate (default test_debiased).")] = None,
    method: Annotated[str, typer.Option(help="Concept direction: pattern (default), twin, transplant "
                                        "(twin-difference from the artifact pasted into clean train "
                                        "cases with the mask column), ridge, logistic, sgd.")] = "pattern",
    scope_class: Annotated[str | None, typer.Option("--scope-class", help="Only inputs the model "
                                                    "predicts as this class.")] = None,
    tcav: Annotated[bool, typer.Option("--tcav/--no-tcav", help="Re-run TCAV of the concepts on the "
                                       "patched model.")] = True,
    tcav_runs: Annotated[int, typer.Option(help="TCAV random runs.")] = 10,
    positive_class: Annotated[str | None, typer.Option("--positive-class", help="Class of sensitivity/"
                                                       "specificity/AUC (default melanoma where present).")] = None,
    twins: Annotated[str | None, typer.Option("--twins", help="Column naming each case's twin (case id or "
                                              "image path) for flip rates on real data.")] = None,
    masks: Annotated[str | None, typer.Option("--masks", help="Column of artifact mask paths: flip rates "
                                              "on twins with the artifact transplanted / inpainted.")] = None,
    mask_level: Annotated[str, typer.Option("--mask-level", help="Where --mask moves a concept: absent "
                                            "(its absent level, default), balanced (its class-balanced "
                                            "train mean) or mean (its train mean).")] = "absent",
    spec_out: Annotated[Path | None, typer.Option("--spec-out", help="Also write the spec JSON here.")] = None,
    save: Annotated[bool, typer.Option("--save", help="Record it in the store (needs --rationale).")] = False,
    rationale: Annotated[str | None, typer.Option(help="Why (recorded with --save).")] = None,
    role: Annotated[str, typer.Option(help="Your role for the store.")] = "dermatologist",
    fmt: FormatOpt = "table",
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
) -> None:
    """Mask or amplify concepts and print the before/after metrics, flips and reliance."""
    from interventions import record_effect

    check_format(fmt)
    if save and not (rationale and rationale.strip()):
        raise typer.BadParameter("--save needs --rationale TEXT (why this intervention)", param_hint="--rationale")
    ws = Workspace(workspace, compute=compute_settings(engine, ray_address, device, precision))
    model = ws.model()
    with progress_bars(fmt == "table") as progress:
        spec, report = _measure_intervention(
            ws, model, layer=layer, split=split, method=method, mask=list(mask or []),
            amplify=list(amplify or []), scope_class=scope_class, mask_level=mask_level, tcav=tcav,
            tcav_runs=tcav_runs, positive_class=positive_class, twins=twins, masks=masks,
            show_layer=fmt == "table", progress=progress,
        )
    if spec_out is not None:
        spec.save(spec_out)
    event = None
    if save:
        from store import Store
        from workbench.auth._identity import cli_actor

        store = Store.for_workspace(ws.root)
        event = record_effect(report, store, cli_actor(ws.root, role), str(rationale), model=model)
    if fmt == "json":
        out = report.to_json()
        if event is not None:
            out["event"] = {"seq": event.seq, "intervention_id": event.intervention_id, "hash": event.hash}
        emit_json(out)
        return
    for t in _effect_tables(report):
        console.print(t)
    if spec_out is not None:
        console.print(f"spec written to {spec_out}")
    if event is not None:
        console.print(f"recorded: event {event.seq} ({event.action}, {event.intervention_id})")


@cli_errors
def apply(
    model_dir: Annotated[Path, typer.Option("--model", help="Model directory (model.json + weights.pt).")],
    spec_path: Annotated[Path, typer.Option("--spec", help="Intervention spec JSON.")],
    out: Annotated[Path, typer.Option("--out", help="Artifact directory to write.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing artifact written by `workbench apply` "
                                            "(never any other folder).")] = False,
    export: Annotated[bool, typer.Option("--export", help="Also write program.pt2: the patched model as a "
                                         "torch.export program, to deploy with plain torch.")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Write a patched model: base weights + spec + checksums, loadable with weights_only."""
    from concepts.models import ClassifierModel
    from interventions import InterventionSpec, patch

    check_format(fmt)
    spec = InterventionSpec.load(spec_path)
    model = ClassifierModel.load(model_dir)
    patched = patch(model, spec)
    path = patched.save(out, overwrite=overwrite, export=export)
    info = {"out": str(path), "model_id": patched.model_id, "spec_id": spec.spec_id,
            "patched_id": patched.patched_id, "description": spec.describe(),
            "program": str(path / "program.pt2") if export else None}
    if fmt == "json":
        emit_json(info)
    else:
        console.print(f"patched model written to {path}: {spec.describe()} "
                      f"(model {patched.model_id}, patched id {patched.patched_id})", markup=False)
        if export:
            pp = model.preprocess
            console.print(f"torch.export program: {path / 'program.pt2'} — torch.export.load(path).module()(x), "
                          f"x float32 (N, 3, {pp.size}, {pp.size}) = (RGB/255 - {list(pp.mean)}) / {list(pp.std)}",
                          markup=False)


@cli_errors
def predict(
    model_dir: Annotated[Path, typer.Option("--model", help="Patched artifact or model directory.")],
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 32,
    fmt: FormatOpt = "table",
) -> None:
    """Predict images with a patched (or plain) model: case, predicted class, probabilities."""
    import numpy as np

    from concepts.data import load_image_rgb
    from concepts.models import ClassifierModel
    from interventions import is_patched_artifact, load_patched

    check_format(fmt)
    if is_patched_artifact(model_dir):
        pm = load_patched(model_dir)
        model, classes = pm.model, pm.classes
    else:
        pm = None
        model = ClassifierModel.load(model_dir)
        classes = model.classes
    size = model.preprocess.size
    arr = np.stack([load_image_rgb(p, size=size) for p in images]) if images else np.zeros((0, size, size, 3), np.uint8)
    ids = [p.stem for p in images]
    if pm is not None:
        proba = pm.predict_proba(arr, case_ids=ids, batch_size=batch_size)
    else:
        proba = model.predict_proba(arr, batch_size=batch_size)
    rows: list[dict[str, Any]] = [
        {"case": cid, "path": str(p), "predicted": classes[int(pr.argmax())],
         "probabilities": {c: float(pr[k]) for k, c in enumerate(classes)}}
        for cid, p, pr in zip(ids, images, proba, strict=True)
    ]
    if fmt == "json":
        emit_json(rows)
        return
    t = Table(title=f"predictions ({'patched: ' + pm.spec.describe() if pm is not None else 'unpatched'})")
    t.add_column("case")
    t.add_column("predicted")
    for c in classes:
        t.add_column(f"p({c})", justify="right")
    for r in rows:
        t.add_row(r["case"], r["predicted"], *[f"{r['probabilities'][c]:.3f}" for c in classes])
    console.print(t)

def _measure_intervention(
    ws: Workspace, model: Any, *, layer: str | None, split: str | None, method: str, mask: list[str],
    amplify: list[str], scope_class: str | None, mask_level: str, tcav: bool, tcav_runs: int,
    positive_class: str | None, twins: str | None, masks: str | None, show_layer: bool, progress: Any,
) -> tuple[Any, Any]:
    """The spec of ``intervene`` (layer chosen, masks moved to ``mask_level``) and its measured effect."""
    from interventions import ConceptLibrary, InterventionSpec, Scope, mask_edit, measure_effect

    ds = ws.dataset()
    lay = layer or default_layer(model, ws)
    sp = split or _default_split(ds)
    library = ConceptLibrary.for_workspace(ws, model, method=method, progress=progress)
    if lay == "best":
        names = [*mask, *(parse_amplify(a)[0] for a in amplify)]
        cands = [c for c in ws.layers() if c in model.layers] or model.layers[-3:]
        lay, scores = library.best_layer(names, cands)
        if show_layer:
            console.print("layer " + lay + " (direction accuracy: "
                          + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()) + ")", highlight=False)
    scope = Scope.predicted(scope_class) if scope_class else Scope()
    spec = build_spec(library, lay, mask, amplify, scope=scope)
    if mask_level != "absent":
        edits = tuple(mask_edit(model, e.direction, mask_level, dataset=ds, cache=ws.activation_cache,
                                progress=progress) if e.operation == "mask" else e for e in spec.edits)
        spec = InterventionSpec(spec.model_id, spec.layer, edits, spec.scope, note=spec.note)
    report = measure_effect(
        model, spec, ds, sp, cache=ws.activation_cache, bank=library.bank if tcav else None,
        tcav_layers=ws.layers(), tcav_runs=tcav_runs, progress=progress,
        positive_class=positive_class, twin_column=twins, mask_column=masks,
    )
    return spec, report
