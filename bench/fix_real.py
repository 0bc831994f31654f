"""Test-time fix on real images: derm7pt with a violet marker, and a new clinic where the marker
is on the other class.

Usage: ``python bench/fix_real.py --derm7pt ROOT [--workspace DIR] [--draws 8] [--ks 1,2,4,8,16]``
(ROOT: the derm7pt release folder with ``meta/`` and ``images/``; never committed). Without
``--derm7pt`` it prints a message and exits 0 (skipped).

1. **Source** (``bench/real.py``, by import): its renderer draws a violet skin-marker stroke on
   60 % of the melanomas and 5 % of the other cases of train/val; the images are imported with
   ``import_folder`` and the default classifier (frozen EfficientNet-Lite0 + class-balanced
   logistic head on pooled features) is trained on ``train``.
2. **New clinic**: the *unmarked* originals of derm7pt's ``test`` split (images the model never
   saw), the marker drawn by the same renderer (another seed) on 60 % of the **non-melanomas**
   and 5 % of the melanomas — the shortcut reversed.
3. For every k and draw, k clinic images per class are drawn (``select_few_shot(seed=draw)``),
   the fix is proposed from them (``propose_fix``: the workspace's concept bank — the marker
   and the seven criteria from the data set's columns — at ``pool``, with ``fix_directions``'
   alternative methods for the marker chosen by leave-one-out; the source ``val`` split as
   anchor and guard), and the balanced accuracy of the clinic's other images is measured before
   and after.

Printed per k: mean held-out gain in points, draws improved / fallen, mean source clean-accuracy
drop, the edits proposed most often. Last line:
``fix_real_gain_k4: <mean points>, draws_improved_k4: <n>/<N>``.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.real import build_folder, draw_marker


def _source(ws: Any, root: Path, size: int, seed: int) -> tuple[Any, Any]:
    """The marked derm7pt data set and its model (built once per workspace)."""
    from concepts import Dataset
    from concepts.importers import import_folder

    ddir = ws.datasets_dir / "derm7pt_ink"
    if (ws.models_dir / "real").is_dir() and ddir.is_dir():
        return Dataset.load(ddir), ws.model()
    folder = ws.root / "fix-real-source"
    build_folder(root, folder, size, seed)
    ds = import_folder(folder / "cases.csv", ddir, image_size=size, overwrite=True)
    return ds, _train(ws, ds)


def _train(ws: Any, ds: Any) -> Any:
    """Frozen EfficientNet-Lite0 + class-balanced logistic head on ``train`` pooled features.

    The library's :func:`concepts.models.train_classifier` at the architecture's default input size
    (128), its pooled features cached under the trained model; saved as the workspace's model.
    """
    from concepts.models import TrainConfig, train_classifier

    cfg = TrainConfig(architecture="efficientnet-lite0", image_size=128, balanced=True, seed=0)
    model = train_classifier(ds, cfg, cache=ws.activation_cache).model
    model.save(ws.models_dir / "real")
    ws.update_manifest(dataset=ds.info.name, model="real", model_dir="models/real",
                       layers=["block10", "block15", "pool"])
    return model


def _clinic(ws: Any, model: Any, root: Path, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Pooled features and labels of the new clinic (test originals, marker on non-melanomas)."""
    from concepts import extract_activations
    from concepts.data import load_image_rgb
    from concepts.importers import read_derm7pt_meta, read_derm7pt_splits

    out = ws.root / f"fix-real-clinic-{size}-{seed}.npz"
    if out.is_file():
        z = np.load(out)
        return z["acts"], z["labels"], float(z["marked_share"])
    meta = read_derm7pt_meta(root / "meta" / "meta.csv")
    split = read_derm7pt_splits(root / "meta", len(meta)).to_numpy()
    rows = np.flatnonzero(split == "test")
    labels = meta["label"].to_numpy()[rows]
    rng = np.random.default_rng(seed + 1000)
    marked = np.zeros(len(rows), bool)
    for lab, p in (("melanoma", 0.05), ("non_melanoma", 0.6)):
        cell = np.flatnonzero(labels == lab)
        marked[rng.choice(cell, round(p * len(cell)), replace=False)] = True
    imgs = []
    for j, i in enumerate(rows):
        img = load_image_rgb(root / "images" / meta["derm_path"].iloc[i], size)
        if marked[j]:
            img = draw_marker(img, np.random.default_rng([seed + 1000, int(i)]))[0]
        imgs.append(img)
    acts = extract_activations(model, np.stack(imgs), ["pool"])["pool"]
    y = np.array([model.classes.index(str(lab)) for lab in labels], dtype=np.int64)
    share = float(marked[labels == "non_melanoma"].mean())
    np.savez(out, acts=acts, labels=y, marked_share=share)
    return acts, y, share


def _directions(ws: Any, model: Any) -> list[Any]:
    """The bank's concept directions at ``pool`` with the alternative methods of the concepts a
    fix may mask (``fix_directions``; concepts with too few examples skipped)."""
    from interventions import ConceptLibrary, InterventionError, fix_directions

    lib = ConceptLibrary.for_workspace(ws, model)
    dirs = []
    for c in lib.concepts:
        try:
            dirs.extend(fix_directions(lib, [c], "pool"))
        except InterventionError as exc:
            print(f"skipped concept {c}: {exc}")
    return dirs


def run(args: argparse.Namespace) -> None:
    from concepts import Workspace
    from interventions import WhatIf, propose_fix, select_few_shot

    t_all = time.perf_counter()
    ws = Workspace(args.workspace).ensure()
    ds, model = _source(ws, args.derm7pt, args.size, args.seed)
    acts, y, share = _clinic(ws, model, args.derm7pt, args.size, args.seed)
    dirs = _directions(ws, model)
    source = WhatIf.from_dataset(model, ds, "val", "pool", cache=ws.activation_cache, twin_artifacts=[])
    print(f"clinic: {len(y)} test images, {np.bincount(y, minlength=len(model.classes)).tolist()} per class "
          f"{list(model.classes)}, marker on {100 * share:.0f} % of the non-melanomas; "
          f"concepts: {', '.join(f'{d.concept} ({d.method})' for d in dirs)}; setup {time.perf_counter() - t_all:.0f} s", flush=True)
    k4: list[float] = []
    for k in (int(v) for v in args.ks.split(",")):
        gains, drops, befores, edits, t0 = [], [], [], collections.Counter[str](), time.perf_counter()
        for draw in range(args.draws):
            few, rest = select_few_shot(y, k, seed=draw)
            p = propose_fix(model, dirs, acts[few], y[few], source=source,
                            held_out=WhatIf(model, "pool", acts[rest], y[rest]))
            if p.held_out is None:
                raise RuntimeError("propose_fix returned no held-out metrics")
            h = p.held_out
            gains.append(100 * (h["after"]["balanced_accuracy"] - h["before"]["balanced_accuracy"]))
            drops.append(100 * (p.source_drop or 0.0))
            edits.update(f"{e['operation']} {e['concept']}" for e in p.edits)
            befores.append(100 * h["before"]["balanced_accuracy"])
        g = np.array(gains)
        if k == 4:
            k4.extend(gains)
        common = ", ".join(f"{e} ({n})" for e, n in edits.most_common(3)) or "none"
        print(f"k={k}: held-out balanced accuracy {np.mean(befores):.1f} % before, {g.mean():+.2f} points "
              f"(min {g.min():+.1f}, max {g.max():+.1f}), improved {(g > 0).sum()}/{len(g)}, fell {(g < 0).sum()}, "
              f"source clean drop {np.mean(drops):+.2f} (max {np.max(drops):+.2f}) points; edits: {common}; "
              f"{(time.perf_counter() - t0) / len(g):.2f} s/draw", flush=True)
    print(f"total {time.perf_counter() - t_all:.0f} s")
    if k4:
        g = np.array(k4)
        print(f"fix_real_gain_k4: {g.mean():.2f}, draws_improved_k4: {(g > 0).sum()}/{len(g)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--derm7pt", type=Path, default=None, help="derm7pt release folder (meta/, images/)")
    ap.add_argument("--workspace", type=Path, default=Path("workspace/fix-real"),
                    help="workspace folder (built once, reused)")
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--ks", default="1,2,4,8,16")
    ap.add_argument("--size", type=int, default=224, help="image side")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.derm7pt is None or not (args.derm7pt / "meta" / "meta.csv").is_file():
        where = "give --derm7pt ROOT" if args.derm7pt is None else f"{args.derm7pt}/meta/meta.csv is missing"
        print(f"bench/fix_real.py: skipped — {where} (the derm7pt release folder)")
        return
    run(args)


if __name__ == "__main__":
    main()
