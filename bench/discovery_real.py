"""Unsupervised confounder discovery on real dermoscopy images (derm7pt) with a planted marker.

Usage: python bench/discovery_real.py --derm7pt ROOT [--work DIR] [--image-size 224]

Skipped (exit 0, one line) when no ``--derm7pt`` path is given; derm7pt is never committed.

1. A violet skin-marker is drawn by this script's own renderer (anti-aliased curved pen strokes
   or an ellipse outline, random position, size, thickness and opacity — not DermSynth's ink)
   on 60% of the melanomas and 5% of the other cases of train and val, 50% of every class in
   test. Which cases carry it is kept here only, to score the result.
2. The marked images are imported through ``concepts.importers.import_folder`` with **no** marker
   column (split from derm7pt's index files; label melanoma / other).
3. The model is the built-in EfficientNet-Lite0 (ImageNet, frozen) with a logistic head trained
   on the marked train split.
4. ``concepts.discovery.cluster_dataset`` finds clusters on train and tests them on val. Printed per
   setting: the flagged (suspicious) clusters with their marker share, and the most-marked
   cluster's rank, purity and whether it is flagged.
5. The best flagged melanoma cluster is named (``concepts.discovery.name_cluster``); the concept gets a
   direction in ``interventions.ConceptLibrary`` and is masked like an annotated concept; the
   mask's effect on the marked-vs-clean melanoma probability gap in test is printed.

Figures are printed, one ``key: value`` per line at the end.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np

MARK_RATES = {"train": (0.60, 0.05), "val": (0.60, 0.05), "test": (0.50, 0.50)}
VIOLET = (118, 50, 160)


# ====================================================================== the marker renderer
def _bezier(p: np.ndarray, n: int = 64) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return ((1 - t) ** 3) * p[0] + 3 * ((1 - t) ** 2) * t * p[1] + 3 * (1 - t) * t**2 * p[2] + t**3 * p[3]


def draw_marker(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Violet pen marks drawn 4x supersampled (anti-aliased) and alpha-blended onto ``img``."""
    from PIL import Image, ImageDraw, ImageFilter

    h, w = img.shape[:2]
    ss = 4
    mask = Image.new("L", (w * ss, h * ss), 0)
    d = ImageDraw.Draw(mask)
    width = int(rng.uniform(0.012, 0.03) * w * ss)
    kind = rng.choice(["strokes", "ellipse", "tick"])
    cx, cy = rng.uniform(0.2, 0.8) * w * ss, rng.uniform(0.2, 0.8) * h * ss
    if kind == "ellipse":  # an outline around (part of) the lesion
        rx, ry = rng.uniform(0.18, 0.42) * w * ss, rng.uniform(0.18, 0.42) * h * ss
        a0 = rng.uniform(0, 360)
        d.arc([cx - rx, cy - ry, cx + rx, cy + ry], a0, a0 + rng.uniform(200, 340), fill=255, width=width)
    else:  # one to three curved pen strokes
        for _ in range(int(rng.integers(1, 4)) if kind == "strokes" else 1):
            span = rng.uniform(0.15, 0.35) * w * ss
            p = np.array([[cx, cy]]) + rng.normal(0, span, (4, 2))
            pts = _bezier(p)
            d.line([tuple(q) for q in pts], fill=255, width=width, joint="curve")
    mask = mask.filter(ImageFilter.GaussianBlur(radius=ss * 0.6)).resize((w, h), Image.Resampling.LANCZOS)
    alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0 * rng.uniform(0.65, 0.95)
    colour = np.array(VIOLET, np.float32) + rng.normal(0, 12, 3)
    out = img.astype(np.float32) * (1 - alpha) + colour * alpha
    return np.clip(out, 0, 255).astype(np.uint8)


# ====================================================================== data
def _square(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as raw:
        im = raw.convert("RGB")
    s = min(im.size)
    left, top = (im.size[0] - s) // 2, (im.size[1] - s) // 2
    return np.asarray(im.crop((left, top, left + s, top + s)).resize((size, size), Image.Resampling.BICUBIC))


def write_marked_folder(root: Path, out: Path, size: int, seed: int) -> dict[str, int]:
    """Marked images + ``cases.csv`` (no marker column); returns case id -> marked (0/1)."""
    import pandas as pd

    from concepts.importers import DERM7PT_SPLIT_FILES, is_melanoma_diagnosis

    meta = pd.read_csv(root / "meta" / "meta.csv")
    split = np.full(len(meta), "", dtype=object)
    for fname, sname in DERM7PT_SPLIT_FILES.items():
        ix = pd.read_csv(root / "meta" / fname)["indexes"].to_numpy()
        split[ix] = sname
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    marked: dict[str, int] = {}
    rows = []
    from PIL import Image

    for i, r in meta.iterrows():
        if not split[i]:
            continue
        mel = is_melanoma_diagnosis(str(r["diagnosis"]))
        cid = f"d{int(r['case_num']):04d}"
        img = _square(root / "images" / str(r["derm"]), size)
        rate = MARK_RATES[split[i]][0 if mel else 1]
        m = int(rng.random() < rate)
        if m:
            img = draw_marker(img, rng)
        Image.fromarray(img).save(out / "images" / f"{cid}.png")
        marked[cid] = m
        rows.append({"case_id": cid, "path": f"images/{cid}.png",
                     "label": "melanoma" if mel else "other", "split": split[i]})
    with open(out / "cases.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=["case_id", "path", "label", "split"])
        wr.writeheader()
        wr.writerows(rows)
    return marked


# ====================================================================== workspace and model
def build_workspace(folder: Path, ws_root: Path, size: int):  # type: ignore[no-untyped-def]
    """Import the folder (no marker column), train the head; returns (workspace, dataset, model)."""
    import torch

    from concepts import ClassifierModel, Workspace
    from concepts.importers import import_folder
    from concepts.models import fit_linear_head, set_linear_head

    ws = Workspace(ws_root).ensure()
    try:
        ds = ws.dataset("derm7pt_marked")
    except Exception:
        ds = import_folder(folder / "cases.csv", ws.datasets_dir / "derm7pt_marked", image_size=size,
                           overwrite=True, classes=("melanoma", "other"))
    ws.update_manifest(dataset=ds.info.name)
    model_dir = ws.models_dir / "lite0_head"
    if model_dir.exists():
        return ws, ds, ws.model("lite0_head")
    model = ClassifierModel.build("efficientnet-lite0", ds.classes, seed=0)
    tr = ds.indices("train")
    iset = ds.image_set(tr, name="train")
    feats = ws.activation_cache.get(model, "pool", iset)["pool"]
    w, b = fit_linear_head(np.asarray(feats).reshape(len(tr), -1), ds.labels(tr), len(ds.classes),
                           class_balanced=True, seed=0)
    set_linear_head(model, w, b)
    ws.activation_cache.put(model, "pool", iset, feats)
    model.save(model_dir)
    ws.update_manifest(model="lite0_head", model_dir=str(model_dir.relative_to(ws.root)),
                       layers=["block10", "block15", "pool"])
    torch.manual_seed(0)
    return ws, ds, ws.model("lite0_head")


def _proba(model, ds, split: str, ws):  # type: ignore[no-untyped-def]
    import torch

    ix = ds.indices(split)
    acts = ws.activation_cache.get(model, "pool", ds.image_set(ix, name=split))["pool"]
    with torch.inference_mode():
        logits = model.forward_from("pool", torch.as_tensor(np.asarray(acts)))
    return ix, np.asarray(acts), torch.softmax(logits, 1).numpy()


# ====================================================================== discovery
def score_clusters(res, ds, marked: dict[str, int], label: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Print the clusters with their (hidden) marker share; return the headline figures."""
    mk = np.array([marked[c] for c in ds.cases["case_id"].astype(str)])
    tab = res.clusters.copy()
    tab["marked_share"] = [float(mk[res.members(int(c))].mean()) if len(res.members(int(c))) else math.nan
                           for c in tab["cluster"]]
    cols = ["rank", "cluster", "class", "size", "n_test_hits", "purity", "odds_ratio", "p_adjusted",
            "suspicious", "marked_share"]
    print(f"--- {label}: {res.k_selection}")
    print(tab[cols].head(12).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    mel = tab[tab["class"] == "melanoma"]
    best = mel.loc[mel["marked_share"].idxmax()]
    flagged = tab[tab["suspicious"]]
    top_flag = flagged[flagged["class"] == "melanoma"].head(1)
    out = {
        "most_marked_share": float(best["marked_share"]), "most_marked_rank": int(best["rank"]),
        "most_marked_flagged": bool(best["suspicious"]), "most_marked_cluster": int(best["cluster"]),
        "n_flagged": len(flagged),
        "top_flagged_melanoma_share": float(top_flag["marked_share"].iloc[0]) if len(top_flag) else math.nan,
        "top_flagged_melanoma_cluster": int(top_flag["cluster"].iloc[0]) if len(top_flag) else -1,
    }
    print(f"{label}: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in out.items()))
    return out


SETTINGS: dict[str, dict[str, object]] = {
    # the features the classifier's head reads: where a shortcut it learned must show
    "pool probe": {"layer": "pool"},
    "pool centroid": {"layer": "pool", "membership": "centroid"},
    # an intermediate block (the demo's first analysis layer), two poolings
    "block10 meanmax probe": {"layer": "block10", "pooling": "meanmax"},
    "block10 max probe": {"layer": "block10", "pooling": "max"},
}


def name_and_mask(ws, ds, model, res, cid: int, marked: dict[str, int]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Name the cluster, build its direction at ``pool`` and mask it on the test split."""
    from concepts.discovery import name_cluster
    from interventions import ConceptEdit, ConceptLibrary, InterventionSpec, WhatIf

    concept = name_cluster(ws, res, cid, "violet_marks", "violet pen marks (found unsupervised)", None,
                           group="artifact", replace=True)
    lib = ConceptLibrary.for_workspace(ws, model)
    d = lib.direction(concept.name, "pool")
    spec = InterventionSpec(model.model_id, "pool", (ConceptEdit(d, "mask", 1.0),))
    ix, acts, p0 = _proba(model, ds, "test", ws)
    labels = ds.labels(ix)
    wi = WhatIf(model, "pool", acts, labels)
    p1 = wi.predict_proba(spec)
    mel = ds.classes.index("melanoma")
    mk = np.array([marked[c] for c in ds.cases["case_id"].astype(str).to_numpy()[ix]])
    out: dict[str, float] = {}
    for tag, p in (("before", p0), ("after_mask", p1)):
        gap = float(p[mk == 1, mel].mean() - p[mk == 0, mel].mean())
        acc = (p.argmax(1) == labels)
        groups = [acc[(labels == c) & (mk == m)].mean() for c in range(len(ds.classes)) for m in (0, 1)]
        out[f"test_marked_minus_clean_p_melanoma_{tag}"] = gap
        out[f"test_accuracy_{tag}"] = float(acc.mean())
        out[f"test_worst_group_accuracy_{tag}"] = float(min(groups))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--derm7pt", type=Path, default=None, help="derm7pt release root (meta/, images/)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/discovery_real"), help="scratch folder (reused)")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settings", default="all", help="comma-separated setting names, or all")
    ap.add_argument("--cluster-seeds", default="0", help="comma-separated k-means seeds")
    args = ap.parse_args()
    if args.derm7pt is None:
        print("skipped: no --derm7pt ROOT given (derm7pt is never committed)")
        return 0
    import json

    from concepts.discovery import cluster_dataset

    t0 = time.perf_counter()
    folder = args.work / "folder"
    mfile = folder / "marked.json"
    if not mfile.is_file():
        marked = write_marked_folder(args.derm7pt, folder, args.image_size, args.seed)
        mfile.write_text(json.dumps(marked))
    marked = json.loads(mfile.read_text())
    ws, ds, model = build_workspace(folder, args.work / "ws", args.image_size)
    for split in ("val", "test"):
        ix, _, p = _proba(model, ds, split, ws)
        print(f"head accuracy {split}: {(p.argmax(1) == ds.labels(ix)).mean():.3f}")
    figures: dict[str, object] = {"prepare_s": round(time.perf_counter() - t0, 1)}
    names = list(SETTINGS) if args.settings == "all" else args.settings.split(",")
    seeds = [int(v) for v in args.cluster_seeds.split(",")]
    primary: tuple[object, int] | None = None
    for name in names:
        shares: list[float] = []
        for cseed in seeds:
            kw = dict(SETTINGS[name])
            layer = str(kw.pop("layer"))
            t1 = time.perf_counter()
            res = cluster_dataset(ds, model, layer, split="train", test_split="val",
                                  cache=ws.activation_cache, seed=cseed, **kw)  # type: ignore[arg-type]
            sc = score_clusters(res, ds, marked, f"{name} seed {cseed}")
            figures[f"{name} seed {cseed}: seconds"] = round(time.perf_counter() - t1, 1)
            figures[f"{name} seed {cseed}: most-marked melanoma cluster share / rank / flagged"] = (
                f"{sc['most_marked_share']:.2f} / {sc['most_marked_rank']} / {sc['most_marked_flagged']}")
            shares.append(sc["top_flagged_melanoma_share"])
            if primary is None and not math.isnan(sc["top_flagged_melanoma_share"]):
                primary = (res, int(sc["top_flagged_melanoma_cluster"]))
        ok = sum(1 for v in shares if not math.isnan(v) and v >= 0.8)
        figures[f"{name}: top flagged melanoma cluster marked share per seed"] = " ".join(
            "none" if math.isnan(v) else f"{v:.2f}" for v in shares)
        figures[f"{name}: seeds with a flagged melanoma cluster >= 80% marked"] = f"{ok}/{len(seeds)}"
    if primary is not None:  # the first setting's first flagged cluster: no picking the best
        figures.update(name_and_mask(ws, ds, model, primary[0], primary[1], marked))
    for k, v in figures.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
