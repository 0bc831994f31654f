"""Benchmark: the whole mission on real dermoscopy (derm7pt) with a skin-marker confounder.

``python bench/real.py --derm7pt ROOT`` (the derm7pt release folder holding ``meta/`` and
``images/``; never committed). Without ``--derm7pt`` it prints a message and exits 0 (skipped).

Steps, on the 1,011 dermoscopic images:

1. **Plant a marker drawn by this script's own renderer** (not DermSynth's): violet skin-marker
   pen strokes — a random cubic Bezier curve, random position, width 4-8 px, anti-aliased by 4x
   supersampling, ink opacity 0.8-0.95 with a slight colour jitter. In ``train``/``val`` 60 % of
   the melanomas and 5 % of the other cases carry it; in ``test`` 50 % of every class. The mask
   of each drawn stroke is kept (a mask image per marked case).
2. Real-marker **twins** of every test case: a clean case gets a fresh stroke drawn on (add);
   a marked case's twin is its original image, kept before drawing (remove).
3. **Import** through ``import_folder`` (what ``workbench import folder`` runs) with an ``ink``
   column, a ``mask`` column (mask paths) and an ``ink_twin`` column (twin image paths), plus
   the seven criteria as 0/1 columns.
4. **Train** the default classifier: frozen EfficientNet-Lite0 (ImageNet) + a class-balanced
   logistic head on pooled features (``train``), into a workspace.
5. **TCAV** of the seven criteria and the marker (``run_tcav`` on the workspace's default
   bank), **confounders** (``workspace_confounders``).
6. **Mask** the marker at the chosen layer with the pattern CAV and with the transplant
   (twin-difference) direction, fitted on ``train`` twins made by transplanting the drawn
   strokes (masks) into clean train cases; measure on ``test`` with the real-marker twins:
   add- and remove-marker flip rates, worst-group accuracy, sensitivity on clean melanomas.

The last lines print the done-when figures. ``--json PATH`` writes them all.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
import torch
from PIL import Image
from scipy import ndimage

LAYERS = ("block10", "block15", "pool")


# ---------------------------------------------------------------------------------- the marker
def draw_marker(img: np.ndarray, rng: np.random.Generator, ss: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A violet skin-marker stroke on ``img`` (uint8 ``(S, S, 3)``); returns (image, mask).

    A cubic Bezier curve through random control points, rasterised at ``ss``x resolution,
    thickened to a random width by a distance transform and box-downsampled (anti-aliased
    coverage); the ink colour is blended with that coverage times an opacity.
    """
    s = img.shape[0]
    big = s * ss
    p0 = rng.uniform(0.1, 0.9, 2)
    ang = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(0.25, 0.6)
    p3 = np.clip(p0 + length * np.array([np.cos(ang), np.sin(ang)]), 0.02, 0.98)
    bend = rng.normal(0, 0.15, (2, 2))
    p1 = p0 + (p3 - p0) / 3 + bend[0]
    p2 = p0 + 2 * (p3 - p0) / 3 + bend[1]
    t = np.linspace(0, 1, 4 * big)[:, None]
    curve = ((1 - t) ** 3) * p0 + 3 * ((1 - t) ** 2) * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
    pix = np.clip((curve * big).astype(int), 0, big - 1)
    line = np.ones((big, big), bool)
    line[pix[:, 1], pix[:, 0]] = False
    width = rng.uniform(4.0, 8.0) * s / 224
    cover = (ndimage.distance_transform_edt(line) <= width * ss / 2).astype(np.float32)
    alpha = cover.reshape(s, ss, s, ss).mean(axis=(1, 3))
    colour = np.array([110, 50, 160], np.float32) + rng.normal(0, 12, 3)
    a = (alpha * rng.uniform(0.8, 0.95))[..., None]
    out = img.astype(np.float32) * (1 - a) + colour * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), alpha > 0.25


# ---------------------------------------------------------------------------------- data
def plant(labels: np.ndarray, splits: np.ndarray, seed: int) -> np.ndarray:
    """Which cases carry the marker: exactly round(p * n) of every (split, class) cell, with
    p = 0.6 for melanomas and 0.05 for the rest in train/val, 0.5 for every class in test."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(labels), bool)
    for sp in sorted(set(splits)):
        for lab in sorted(set(labels)):
            cell = np.flatnonzero((splits == sp) & (labels == lab))
            p = 0.5 if sp == "test" else (0.6 if lab == "melanoma" else 0.05)
            out[rng.choice(cell, round(p * len(cell)), replace=False)] = True
    return out


def build_folder(root: Path, out: Path, size: int, seed: int) -> pd.DataFrame:
    """Write the marked images, masks, twins and ``cases.csv`` under ``out``."""
    from concepts import CRITERIA, load_image_rgb, read_derm7pt_meta
    from concepts._derm7pt import read_derm7pt_splits

    meta = read_derm7pt_meta(root / "meta" / "meta.csv")
    split = read_derm7pt_splits(root / "meta", len(meta))
    for sub in ("img", "mask", "twin"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    carries = plant(meta["label"].to_numpy(), split.to_numpy(), seed)
    rows = []
    for i in range(len(meta)):
        cid = str(meta["case_num"].iloc[i])
        label, sp = str(meta["label"].iloc[i]), str(split.iloc[i])
        img = load_image_rgb(root / "images" / meta["derm_path"].iloc[i], size)
        ink = bool(carries[i])
        r = np.random.default_rng([seed, i])
        row: dict[str, Any] = {"case_id": cid, "path": f"img/{cid}.png", "label": label, "split": sp,
                               "ink": int(ink), "mask": "", "ink_twin": ""}
        if ink:
            marked, mask = draw_marker(img, r)
            Image.fromarray((mask * 255).astype(np.uint8)).save(out / "mask" / f"{cid}.png")
            row["mask"] = f"mask/{cid}.png"
            if sp == "test":  # the twin without the marker is the original
                Image.fromarray(img).save(out / "twin" / f"{cid}.png")
            img = marked
        elif sp == "test":  # the twin with the marker: a fresh stroke on the clean image
            Image.fromarray(draw_marker(img, r)[0]).save(out / "twin" / f"{cid}.png")
        if sp == "test":
            row["ink_twin"] = f"twin/{cid}.png"
        Image.fromarray(img).save(out / "img" / f"{cid}.png")
        for c in CRITERIA:
            row[c] = int(meta[c].iloc[i])
        rows.append(row)
    df = pd.DataFrame(rows)
    df.to_csv(out / "cases.csv", index=False)
    return df


def train(ws: Any, ds: Any, progress: Any) -> Any:
    """Frozen EfficientNet-Lite0 + class-balanced logistic head on ``train`` pooled features."""
    from concepts import ClassifierModel, fit_linear_head, set_linear_head

    model = ClassifierModel.build("efficientnet-lite0", ds.classes, seed=0)
    cache = ws.activation_cache
    isets = {s: ds.image_set(ds.indices(s), name=f"{ds.info.name}:{s}") for s in ("train", "val", "test")}
    feats = {s: cache.get(model, "pool", iset, progress=progress)["pool"] for s, iset in isets.items()}
    y = ds.labels(ds.indices("train"))
    w, b = fit_linear_head(np.asarray(feats["train"]), y, len(ds.classes), class_balanced=True, seed=0)
    set_linear_head(model, w, b)
    for s, iset in isets.items():
        cache.put(model, "pool", iset, feats[s])
    model.save(ws.models_dir / "real")
    ws.update_manifest(dataset=ds.info.name, model="real", model_dir="models/real", layers=list(LAYERS))
    return model


# ---------------------------------------------------------------------------------- figures
def _r(v: Any) -> Any:
    return None if v is None else round(float(v), 3)


def effect_figures(rep: Any) -> dict[str, Any]:
    """Flip rates (add/remove), worst group, clean accuracy and clean-melanoma sensitivity."""
    fr = rep.reliance.get("flip_rates", {})
    clean: dict[str, Any] = next((s for s in rep.slices if s["column"] == "ink" and s["value"] == "without"), {})
    out: dict[str, Any] = {}
    for key, name in (("ink", "add"), ("ink:remove", "remove")):
        f = fr.get(key, {})
        out[f"{name}_flip_before"], out[f"{name}_flip_after"] = _r(f.get("before")), _r(f.get("after"))
        out[f"{name}_n"], out[f"{name}_method"] = f.get("n"), f.get("method")
        out[f"{name}_reduction"] = _r(f.get("reduction"))
    for k in ("worst_group_accuracy", "clean_accuracy", "sensitivity", "accuracy", "balanced_accuracy"):
        out[f"{k}_before"], out[f"{k}_after"] = _r(rep.before.get(k)), _r(rep.after.get(k))
    out["worst_group_before"], out["worst_group_after"] = rep.before.get("worst_group"), rep.after.get("worst_group")
    out["clean_mel_sensitivity_before"] = _r(clean.get("sensitivity_before"))
    out["clean_mel_sensitivity_after"] = _r(clean.get("sensitivity_after"))
    return out


def masking(ws: Any, model: Any, ds: Any, layer: str, progress: Any) -> dict[str, Any]:
    """Mask the marker with each direction method; figures on ``test`` with real-marker twins."""
    from concepts import real_twins
    from interventions import (
        ConceptLibrary,
        InterventionSpec,
        direction_from_twins,
        mask_edit,
        measure_effect,
    )

    lib = ConceptLibrary.for_workspace(ws, model, progress=progress)
    train_rows = ds.indices("train")
    t0 = time.perf_counter()
    train_twins = real_twins(ds, train_rows, "ink", mask_column="mask", seed=0)
    dirs = {
        "pattern": lib.direction("ink", layer, "pattern"),
        "transplant": direction_from_twins(model, ds.images, train_twins, layer, cache=ws.activation_cache,
                                           progress=progress),
    }
    out: dict[str, Any] = {"layer": layer, "twins_seconds": round(time.perf_counter() - t0, 1),
                           "train_twins": {t.key: len(t) for t in train_twins}}
    for name, d in dirs.items():
        for level in ("absent", "balanced"):
            edit = mask_edit(model, d, level, dataset=ds, cache=ws.activation_cache)
            spec = InterventionSpec(model.model_id, layer, (edit,))
            rep = measure_effect(model, spec, ds, "test", cache=ws.activation_cache, twin_column="ink_twin",
                                 progress=progress)
            out[f"{name}/{level}"] = {"direction_accuracy": _r(d.accuracy), "level": edit.target_level(),
                                      **effect_figures(rep)}
    return out


def tcav_and_confounders(ws: Any, runs: int, progress: Any) -> dict[str, Any]:
    from concepts._tcav import run_tcav
    from graph._confounders import workspace_confounders

    t0 = time.perf_counter()
    rep = run_tcav(ws, ["block10", "block15"], runs=runs, progress=progress)
    tab = rep.table
    keep = [c for c in ("concept", "layer", "class", "score_mean", "random_mean", "effect", "p_adjusted",
                        "significant", "cav_accuracy", "cav_accuracy_mean", "accuracy") if c in tab.columns]
    conf = workspace_confounders(ws)
    ccols = [c for c in ("rank", "concept", "class", "score", "odds_ratio", "reliance", "tcav_significant")
             if c in conf.columns]
    return {
        "tcav_seconds": round(time.perf_counter() - t0, 1),
        "tcav": tab[keep].to_dict(orient="records"),
        "tcav_columns": list(tab.columns),
        "confounders": conf[ccols].head(10).to_dict(orient="records"),
    }


def done_when(res: dict[str, Any]) -> None:
    """Print the issue's done-when figures (the transplant direction, class-balanced level)."""
    m = res["masking"].get("transplant/balanced", {})
    conf = res.get("confounders") or []
    first = conf[0].get("concept") if conf else None
    ink_rows = [r for r in res.get("tcav", []) if r.get("concept") == "ink" and r.get("class") == "melanoma"]
    print("--- done when ---")
    print(f"marker ranks first among confounders: {first == 'ink'} (first: {first})")
    for r in ink_rows:
        print(f"ink TCAV for melanoma at {r.get('layer')}: score {r.get('score_mean')}, significant "
              f"{r.get('significant')}, p_adj {r.get('p_adjusted')}, CAV accuracy {r.get('cav_accuracy')}")
    for k in ("add", "remove"):
        b, a = m.get(f"{k}_flip_before"), m.get(f"{k}_flip_after")
        print(f"{k}-marker flip rate {b} -> {a} (halved: {a is not None and b is not None and a <= b / 2})")
    wb, wa = m.get("worst_group_accuracy_before"), m.get("worst_group_accuracy_after")
    print(f"worst-group accuracy {wb} -> {wa} ({m.get('worst_group_before')} -> {m.get('worst_group_after')})")
    sb, sa = m.get("clean_mel_sensitivity_before"), m.get("clean_mel_sensitivity_after")
    print(f"sensitivity on clean melanomas {sb} -> {sa}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--derm7pt", type=Path, default=None, help="derm7pt release folder (meta/, images/)")
    ap.add_argument("--workspace", type=Path, default=None, help="workspace folder (default: a temporary one)")
    ap.add_argument("--size", type=int, default=224, help="image side")
    ap.add_argument("--layer", default="pool", help="layer to mask at")
    ap.add_argument("--runs", type=int, default=10, help="TCAV random runs")
    ap.add_argument("--no-tcav", action="store_true", help="skip TCAV and the confounder ranking")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    ap.add_argument("--source", type=Path, default=None,
                    help="where to write the marked image folder (default: a temporary one; masks and "
                         "twins are read from it, so keep it with --workspace to reuse the workspace)")
    args = ap.parse_args()
    if args.derm7pt is None:
        print("bench/real.py: skipped — give --derm7pt ROOT (the derm7pt release folder) to run it")
        return
    if not (args.derm7pt / "meta" / "meta.csv").is_file():
        print(f"bench/real.py: {args.derm7pt} is not a derm7pt release (meta/meta.csv missing)")
        sys.exit(2)
    with tempfile.TemporaryDirectory(prefix="bench-real-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    from concepts import Workspace, classification_metrics, import_folder

    t_all = time.perf_counter()
    ws = Workspace(args.workspace or tmp / "ws").ensure()
    folder = args.source or tmp / "folder"
    t0 = time.perf_counter()
    df = build_folder(args.derm7pt, folder, args.size, args.seed)
    ds = import_folder(folder / "cases.csv", ws.datasets_dir / "derm7pt_ink", image_size=args.size, overwrite=True)
    res: dict[str, Any] = {"n": len(ds), "prepare_seconds": round(time.perf_counter() - t0, 1)}
    res["ink_share"] = {f"{s}/{c}": round(float(g["ink"].mean()), 3) for (s, c), g in df.groupby(["split", "label"])}
    print("planted:", res["ink_share"], flush=True)

    def progress(stage: str, done: int, total: int) -> None:
        pass

    t0 = time.perf_counter()
    model = train(ws, ds, progress)
    res["train_seconds"] = round(time.perf_counter() - t0, 1)
    for s in ("val", "test"):
        idx = ds.indices(s)
        feats = ws.activation_cache.get(model, "pool", ds.image_set(idx, name=f"{ds.info.name}:{s}"))["pool"]
        with torch.inference_mode():  # the head alone on the cached pooled features
            proba = torch.softmax(model.forward_from("pool", torch.as_tensor(np.asarray(feats))), 1).numpy()
        res[f"{s}_metrics"] = classification_metrics(ds, idx, proba).to_json()
        m = res[f"{s}_metrics"]
        print(f"{s}: acc {m['accuracy']:.3f} bacc {m['balanced_accuracy']:.3f} sens({m['positive_class']}) "
              f"{m['sensitivity']:.3f} worst group {m['worst_group']} {m['worst_group_accuracy']:.3f} "
              f"clean {m['clean_accuracy']:.3f}", flush=True)
    if not args.no_tcav:
        res.update(tcav_and_confounders(ws, args.runs, progress))
        print("confounders (top 5):", res["confounders"][:5], flush=True)
        for row in res["tcav"]:
            if row.get("class") == "melanoma":
                print("tcav:", row, flush=True)
    res["masking"] = masking(ws, model, ds, args.layer, progress)
    for name, fig in res["masking"].items():
        if isinstance(fig, dict) and "add_flip_before" in fig:
            print(f"mask ink at {args.layer} ({name}):", fig, flush=True)
    done_when(res)
    res["total_seconds"] = round(time.perf_counter() - t_all, 1)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    print(f"total {res['total_seconds']} s")


if __name__ == "__main__":
    main()
