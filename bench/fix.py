"""Test-time fix from k labelled images per class of a new clinic, on two reversed-shortcut domains.

Usage: python bench/fix.py [--workspace workspace] [--draws 8] [--first-draw 0] [--ks 1,2,4,8,16]
[--data DIR] [--survival gain|strict] [--mask-prior full|fit]
[--domains ink-on-nevi,patch-on-melanoma,no-shift] [--mask-level calibrated|source|absent]

The demo model learnt two shortcuts (ink with melanoma, a patch with nevi). Each new domain
reverses one of them (DermSynth, 1,000 images):

* ``ink-on-nevi``: ink planted on 60 % of the nevi instead of the melanomas (seed 77),
* ``patch-on-melanoma``: the patch planted on 60 % of the melanomas instead of the nevi
  (seed 78),
* ``no-shift`` (control): the source's own shortcuts (ink on melanomas, patch on nevi), seed 79
  — the fix should propose nothing or do no harm there.

For every k and draw, k images per class are drawn (``select_few_shot(seed=draw)``, draws
``--first-draw`` onwards: 8 onwards checks a setting on draws it was not chosen on), the fix is
proposed from them (``propose_fix`` with the source ``val`` split as anchor and guard, each
artifact's direction method chosen by leave-one-out over the shots from ``fix_directions``) and the
balanced accuracy of the domain's other images is measured before and after. Printed per
domain and k: mean held-out gain in points, draws improved / fallen, mean source clean-accuracy
drop, the edits proposed most often. The domains and their pooled features are kept under
``--data`` (default ``<workspace>/bench-fix``) and reused.

Last line: ``fix_gain_k4: <mean points>, draws_improved_k4: <n>/<N>`` over the two reversed
domains.
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np

from concepts import Workspace, extract_activations
from concepts.dermsynth import DermSynthConfig, generate_dermsynth, parse_confounder
from interventions import ConceptLibrary, WhatIf, fix_directions, propose_fix, select_few_shot

#: name: (planted confounders, seed); the reversed-shortcut domains count in the last line, the
#: no-shift control (the source's own shortcuts, a new seed) must show no harm.
DOMAINS = {"ink-on-nevi": (("ink:nevus:0.6",), 77), "patch-on-melanoma": (("patch:melanoma:0.6",), 78),
           "no-shift": (("ink:melanoma:0.6", "patch:nevus:0.6"), 79)}
REVERSED = ("ink-on-nevi", "patch-on-melanoma")


def _domain(ws: Workspace, data: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features and labels of a new domain (generated and extracted once)."""
    out = data / f"{name}.npz"
    if out.is_file():
        z = np.load(out)
        return z["acts"], z["labels"]
    conf, seed = DOMAINS[name]
    cfg = DermSynthConfig(n_images=1000, seed=seed, confounders=tuple(parse_confounder(c) for c in conf),
                          concept_examples=2, random_pool=2)
    ds = generate_dermsynth(cfg, data / name).main
    acts = extract_activations(ws.model(), np.asarray(ds.images), ["pool"])["pool"]
    labels = ds.labels(np.arange(len(ds.cases)))
    np.savez(out, acts=acts, labels=labels)
    return acts, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=Path("workspace"))
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--first-draw", type=int, default=0, help="seed of the first draw (fresh draws: 8)")
    ap.add_argument("--ks", default="1,2,4,8,16")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--survival", default="gain", help="propose_fix's leave-one-out rule: gain or strict")
    ap.add_argument("--mask-prior", default="full", help="propose_fix's mask strengths: full (default) or fit")
    ap.add_argument("--domains", default=",".join(DOMAINS), help="comma-separated subset of the domains")
    ap.add_argument("--mask-level", default="calibrated",
                    help="propose_fix's mask level: calibrated (default), source or absent")
    args = ap.parse_args()
    unknown = sorted(set(args.domains.split(",")) - set(DOMAINS))
    if unknown:
        ap.error(f"unknown domain(s) {', '.join(unknown)}; use {', '.join(DOMAINS)}")
    ws = Workspace(args.workspace)
    if not (ws.root / "workspace.json").is_file():
        from workbench.services import DemoConfig, build_demo

        build_demo(ws, DemoConfig())
    data = args.data or ws.root / "bench-fix"
    data.mkdir(parents=True, exist_ok=True)
    model = ws.model()
    lib = ConceptLibrary.for_workspace(ws, model)
    dirs = fix_directions(lib, lib.concepts, "pool")  # artifacts: pattern, twin, logistic, ridge (LOO picks)
    source = WhatIf.from_dataset(model, ws.dataset(), "val", "pool", cache=ws.activation_cache, twin_artifacts=[])
    ks = [int(k) for k in args.ks.split(",")]
    k4: list[float] = []
    for name in args.domains.split(","):
        acts, y = _domain(ws, data, name)
        for k in ks:
            gains, drops, edits, t0 = [], [], collections.Counter[str](), time.perf_counter()
            for draw in range(args.first_draw, args.first_draw + args.draws):
                few, rest = select_few_shot(y, k, seed=draw)
                held = WhatIf(model, "pool", acts[rest], y[rest])
                p = propose_fix(model, dirs, acts[few], y[few], source=source, held_out=held, survival=args.survival,
                                mask_prior=args.mask_prior, mask_level=args.mask_level)
                assert p.held_out is not None
                gains.append(100 * (p.held_out["after"]["balanced_accuracy"] - p.held_out["before"]["balanced_accuracy"]))
                drops.append(100 * (p.source_drop or 0.0))
                edits.update(f"{e['operation']} {e['concept']}" for e in p.edits)
            g = np.array(gains)
            if k == 4 and name in REVERSED:
                k4.extend(gains)
            common = ", ".join(f"{e} ({n})" for e, n in edits.most_common(3)) or "none"
            print(f"{name} k={k}: held-out balanced accuracy {g.mean():+.2f} points (min {g.min():+.1f}, "
                  f"max {g.max():+.1f}), improved {(g > 0).sum()}/{len(g)}, fell {(g < 0).sum()}, "
                  f"source clean drop {np.mean(drops):+.2f} (max {np.max(drops):+.2f}) points; "
                  f"edits: {common}; {(time.perf_counter() - t0) / len(g):.2f} s/draw", flush=True)
    if k4:
        g = np.array(k4)
        print(f"fix_gain_k4: {g.mean():.2f}, draws_improved_k4: {(g > 0).sum()}/{len(g)}")


if __name__ == "__main__":
    main()
