"""``workbench intervene | apply | predict | fix``: interventions from the command line.

Top-level commands of ``workbench`` (``workbench.cli._app.COMMANDS``). Errors are one line on stderr with exit code 1 (``cli_errors``).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
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
from workbench.cli._console import WorkspaceOpt, cli_errors, console, progress_bars, to_jsonable

if TYPE_CHECKING:  # torch and sklearn: imported inside the commands (fast `workbench --help`)
    import numpy as np

    from concepts import ClassifierModel, Dataset
    from interventions import ConceptLibrary, EffectReport, FixProposal, InterventionSpec, Scope
    from store import Actor, Event

__all__ = ["apply", "fix", "intervene", "predict"]

FormatOpt = Annotated[str, typer.Option("--format", help="Output format: table or json.")]


# ---------------------------------------------------------------------------------- helpers
def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json"):
        raise typer.BadParameter(f"unknown format {fmt!r}: use table or json", param_hint="--format")


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2) + "\n")


def _pct(x: Any) -> str:
    return "—" if x is None else f"{100 * float(x):.1f}%"


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


def _default_layer(model: ClassifierModel, ws: Workspace) -> str:
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
        t.add_row(k, _pct(report.before.get(k)), _pct(report.after.get(k)),
                  _delta(report.after.get(k), report.before.get(k)))
    for art, fr in report.reliance.get("flip_rates", {}).items():
        red = fr.get("reduction")
        t.add_row(f"flip rate: {fr.get('direction', 'add')} {fr.get('artifact', art)} (n={fr['n']})",
                  _pct(fr["before"]), _pct(fr["after"]),
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
                       f"{_pct(s['accuracy_before'])} → {_pct(s['accuracy_after'])}",
                       f"{_pct(s['sensitivity_before'])} → {_pct(s['sensitivity_after'])}",
                       f"{_pct(s['specificity_before'])} → {_pct(s['specificity_after'])}")
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

    _check_format(fmt)
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
        _emit_json(out)
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

    _check_format(fmt)
    spec = InterventionSpec.load(spec_path)
    model = ClassifierModel.load(model_dir)
    patched = patch(model, spec)
    path = patched.save(out, overwrite=overwrite, export=export)
    info = {"out": str(path), "model_id": patched.model_id, "spec_id": spec.spec_id,
            "patched_id": patched.patched_id, "description": spec.describe(),
            "program": str(path / "program.pt2") if export else None}
    if fmt == "json":
        _emit_json(info)
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

    _check_format(fmt)
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
        _emit_json(rows)
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
    lay = layer or _default_layer(model, ws)
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



def _read_labelled(csv_path: Path, model: ClassifierModel, images_dir: Path | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images and class indices of a generic-import CSV (path,label columns)."""
    import numpy as np

    from concepts.importers import import_folder

    with tempfile.TemporaryDirectory(prefix="fewshot-") as tmp:
        ds = import_folder(
            csv_path, Path(tmp) / "fewshot", images_dir=images_dir, classes=model.classes,
            image_size=model.preprocess.size, split_fractions=(1.0, 0.0, 0.0), name="fewshot",
        )
        return np.array(ds.images), ds.labels(), ds.cases["case_id"].astype(str).tolist()


def _fix_tables(p: FixProposal) -> list[Table]:
    t = Table(title="concepts on the few-shot images (graph: artifacts masked, criteria amplified)")
    for c in ("concept", "edit", "direction", "supports", "fires wrong (source)", "shift z", "gradient",
              "strength (all shots)", "LOO stability", "proposed"):
        t.add_column(c)
    for r in p.ranking:
        t.add_row(r["concept"], r["operation"], r.get("method", ""), r["supports"],
                  f"{_pct(r['fire_rate_wrong_class'])} ({_pct(r['source_fire_rate_wrong_class'])})",
                  f"{r['shift']:+.1f}", f"{r['gradient']:+.3f}", f"{r['strength_all']:.2f}",
                  _pct(r["stability"]), "yes" if r["proposed"] else "")
    tables = [t]
    if p.edits:
        e = Table(title="proposed edits: leave-one-out stability and expected gain (points of the "
                  "left-out shots' balanced accuracy when the edit is dropped, 90% interval)")
        for c in ("edit", "strength", "stability", "expected gain", "interval", "log-lik. gain"):
            e.add_column(c)
        for r in p.edits:
            lo, hi = r.get("gain_interval") or (None, None)
            e.add_row(f"{r['operation']} {r['concept']}", f"{r['strength']:g}", _pct(r["stability"]),
                      "—" if r.get("gain_points") is None else f"{r['gain_points']:+.1f}",
                      "—" if lo is None else f"[{lo:+.1f}, {hi:+.1f}]",
                      "—" if r.get("gain_nats") is None else f"{r['gain_nats']:+.3f}")
        tables.append(e)
    m = Table(title=f"proposal: {p.spec.describe() if p.spec is not None else 'none'}")
    m.add_column("set")
    for c in ("accuracy before", "after", "balanced acc. before", "after"):
        m.add_column(c, justify="right")
    for name, d in (("few-shot", p.few_shot), ("held-out", p.held_out), ("source", p.source)):
        if d:
            b, a = d["before"], d["after"]
            m.add_row(name, _pct(b["accuracy"]), _pct(a["accuracy"]), _pct(b["balanced_accuracy"]),
                      _pct(a["balanced_accuracy"]))
    if p.source:
        m.add_row("source, no planted artifact", _pct(p.source["before"].get("clean_accuracy")),
                  _pct(p.source["after"].get("clean_accuracy")), "", "")
    tables.append(m)
    return tables


@cli_errors
def fix(
    few_shot: Annotated[Path, typer.Option("--few-shot", help="CSV (path,label) of labelled images of "
                                           "the new domain.")],
    workspace: WorkspaceOpt = Path("workspace"),
    k: Annotated[int, typer.Option(help="Images per class used to fit the fix; the rest of the CSV is "
                                   "held out.")] = 4,
    held_out: Annotated[Path | None, typer.Option("--held-out", help="CSV of held-out images of the new "
                                                  "domain.")] = None,
    images_dir: Annotated[Path | None, typer.Option(help="Root of the CSV paths (default: its folder).")] = None,
    layer: Annotated[str | None, typer.Option(help="Layer (default pool).")] = None,
    source_split: Annotated[str, typer.Option(help="Source-domain split guarding the accuracy.")] = "val",
    gamma: Annotated[float, typer.Option(help="Largest amplification searched for criteria.")] = 3.0,
    max_source_drop: Annotated[float, typer.Option(help="Largest source accuracy drop (0.02 = 2 points).")] = 0.02,
    seed: Annotated[int, typer.Option(help="Seed of the few-shot selection.")] = 0,
    survival: Annotated[str, typer.Option(help="When the fix counts as helping the left-out shots: gain "
                                          "(balanced accuracy or log-likelihood up) or strict (the "
                                          "log-likelihood gain's 90% interval above zero).")] = "gain",
    spec_out: Annotated[Path | None, typer.Option("--spec-out", help="Write the proposed spec here.")] = None,
    save: Annotated[bool, typer.Option("--save", help="Record the proposed fix in the store (action "
                                       "fix_recorded; needs --rationale).")] = False,
    rationale: Annotated[str | None, typer.Option(help="Why this fix is right for the new clinic "
                                                  "(recorded with --save).")] = None,
    role: Annotated[str | None, typer.Option(help="Your role for the store: engineer or dermatologist "
                                             "(default: the first of them you hold).")] = None,
    fmt: FormatOpt = "table",
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
) -> None:
    """Propose a test-time fix from k labelled images per class of a new domain; with --save,
    record it in the store (``fix_recorded``, engineer or dermatologist, rationale required)."""
    from interventions import InterventionError

    _check_format(fmt)
    if save and not (rationale and rationale.strip()):
        raise typer.BadParameter("--save needs --rationale TEXT (why this fix is right for the new clinic)",
                                 param_hint="--rationale")
    ws = Workspace(workspace, compute=compute_settings(engine, ray_address, device, precision))
    actor = None
    if save:
        from workbench.auth._identity import cli_actor

        actor = cli_actor(ws.root, role, default=("engineer", "dermatologist"))
    run = _propose_cli_fix(ws, few_shot, k=k, held_out=held_out, images_dir=images_dir, layer=layer,
                           source_split=source_split, gamma=gamma, max_source_drop=max_source_drop, seed=seed,
                           survival=survival, show=fmt == "table")
    proposal = run.proposal
    if spec_out is not None and proposal.spec is not None:
        proposal.spec.save(spec_out)
    event = None
    if actor is not None:
        if proposal.spec is None:
            raise InterventionError("nothing to save: no edit survived leave-one-out (see the notes); "
                                    "nothing was recorded")
        event = _save_fix(ws, actor, str(rationale).strip(), run, proposal.spec, few_shot, k=k, seed=seed,
                          source_split=source_split)
    if fmt == "json":
        out = proposal.to_json()
        out["few_shot_cases"] = [s["case_id"] for s in run.shots]
        out["source_split"] = source_split
        if event is not None:
            out["event"] = {"seq": event.seq, "intervention_id": event.intervention_id, "hash": event.hash}
        _emit_json(out)
        return
    _print_fix(proposal)
    if event is not None:
        console.print(f"recorded: event {event.seq} ({event.action}, {event.intervention_id})")


@dataclass(frozen=True)
class _CliFix:
    """A fix proposed from a CSV: the proposal, its layer, the shots (id, label, pixel sha256)
    and the number of held-out images."""

    proposal: FixProposal
    layer: str
    shots: list[dict[str, Any]]
    n_held: int


def _propose_cli_fix(
    ws: Workspace, few_shot: Path, *, k: int, held_out: Path | None, images_dir: Path | None,
    layer: str | None, source_split: str, gamma: float, max_source_drop: float, seed: int, survival: str,
    show: bool,
) -> _CliFix:
    """Read the labelled images, draw ``k`` per class and propose the fix they call for."""
    from concepts.models import extract_activations
    from interventions import ConceptLibrary, WhatIf, fix_directions, propose_fix, select_few_shot

    model = ws.model()
    lay = layer or _default_layer(model, ws)
    imgs, labels, ids = _read_labelled(few_shot, model, images_dir)
    few_idx, rest_idx = select_few_shot(labels, k, seed=seed)
    with progress_bars(show) as progress:
        library = ConceptLibrary.for_workspace(ws, model, progress=progress)
        directions = fix_directions(library, library.concepts, lay)
        acts = extract_activations(model, imgs, [lay], compute=ws.compute)[lay]
        source = WhatIf.from_dataset(model, ws.dataset(), source_split, lay, cache=ws.activation_cache,
                                     twin_artifacts=[], progress=progress)
        ho: WhatIf | None = None
        if held_out is not None:
            h_imgs, h_labels, h_ids = _read_labelled(held_out, model, images_dir)
            ho = WhatIf(model, lay, extract_activations(model, h_imgs, [lay], compute=ws.compute)[lay], h_labels, case_ids=h_ids)
        elif len(rest_idx):
            ho = WhatIf(model, lay, acts[rest_idx], labels[rest_idx], case_ids=[ids[i] for i in rest_idx])
        proposal = propose_fix(
            model, directions, acts[few_idx], labels[few_idx], source=source, held_out=ho, gamma=gamma,
            max_source_drop=max_source_drop, case_ids=[ids[i] for i in few_idx], survival=survival,
        )
    shots = [{"case_id": ids[i], "label": model.classes[int(labels[i])], "sha256": _pixels_sha(imgs[i])}
             for i in few_idx]
    return _CliFix(proposal, lay, shots, 0 if ho is None else len(ho.labels))


def _print_fix(proposal: FixProposal) -> None:
    for t in _fix_tables(proposal):
        console.print(t)
    if proposal.loo:
        lo, hi = proposal.loo["gain_interval"]
        console.print(f"leave-one-out over {proposal.loo['n_folds']} shots: {proposal.loo['gain_points']:+.1f} "
                      f"points balanced accuracy [{lo:+.1f}, {hi:+.1f}], {proposal.loo['gain_nats']:+.3f} nats")
    for n in proposal.notes:
        console.print(f"note: {n}")


def _pixels_sha(image: np.ndarray) -> str:
    import hashlib

    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def _save_fix(ws: Workspace, actor: Actor, rationale: str, run: _CliFix, spec: InterventionSpec,
              few_shot: Path, *, k: int, seed: int, source_split: str) -> Event:
    """Record a proposed fix as a ``fix_recorded`` event: the Test-time fix page's record
    (:func:`workbench.services.fix_record`), the shots identified by their pixels' sha256."""
    from store import Store
    from workbench.services import FixShots, fix_record, parts_sha256

    p, model = run.proposal, ws.model()
    shots = FixShots(source=f"CSV {few_shot.name}", dataset="uploaded images", split=None, k=k, rows=run.shots,
                     n_held=run.n_held,
                     shots_id=parts_sha256("cli", *(s["sha256"] for s in run.shots), str(k), str(seed)))
    metrics = {name: m for name, m in (("few-shot", p.few_shot), ("held-out", p.held_out), ("source", p.source))
               if m}
    fields = fix_record(p, spec, shots, layer=run.layer, metrics=metrics, source_split=source_split,
                        model_id=model.model_id, weights_sha=model.weights_sha256)
    return Store.for_workspace(ws.root).record_fix(actor, fields.pop("spec"), rationale=rationale, **fields)
