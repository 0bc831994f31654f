"""``workbench fix``: propose a test-time fix from k labelled images per class of a new domain.

A top-level command of ``workbench`` (``workbench.cli._app.COMMANDS``); with ``--save`` the
proposal is recorded in the store (``fix_recorded``) exactly as the Test-time fix page does
(``workbench.services.fix_record``). Errors are one line on stderr with exit code 1.
"""

from __future__ import annotations

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
from workbench.cli._interventions import default_layer

if TYPE_CHECKING:  # torch and sklearn: imported inside the commands (fast `workbench --help`)
    import numpy as np

    from concepts import ClassifierModel
    from interventions import FixProposal, InterventionSpec
    from store import Actor, Event

__all__ = ["fix"]


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
                  f"{pct(r['fire_rate_wrong_class'])} ({pct(r['source_fire_rate_wrong_class'])})",
                  f"{r['shift']:+.1f}", f"{r['gradient']:+.3f}", f"{r['strength_all']:.2f}",
                  pct(r["stability"]), "yes" if r["proposed"] else "")
    tables = [t]
    if p.edits:
        e = Table(title="proposed edits: leave-one-out stability and expected gain (points of the "
                  "left-out shots' balanced accuracy when the edit is dropped, 90% interval)")
        for c in ("edit", "strength", "stability", "expected gain", "interval", "log-lik. gain"):
            e.add_column(c)
        for r in p.edits:
            lo, hi = r.get("gain_interval") or (None, None)
            e.add_row(f"{r['operation']} {r['concept']}", f"{r['strength']:g}", pct(r["stability"]),
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
            m.add_row(name, pct(b["accuracy"]), pct(a["accuracy"]), pct(b["balanced_accuracy"]),
                      pct(a["balanced_accuracy"]))
    if p.source:
        m.add_row("source, no planted artifact", pct(p.source["before"].get("clean_accuracy")),
                  pct(p.source["after"].get("clean_accuracy")), "", "")
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

    check_format(fmt)
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
        emit_json(out)
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
    lay = layer or default_layer(model, ws)
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
