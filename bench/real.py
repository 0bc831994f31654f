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

Everything after making the data runs through **CLI commands only** (``python -m
workbench.cli ...`` in a subprocess, ``--format json`` where the command has it); the wall
time of every command is printed and kept:

3. ``workspace init``; ``import folder cases.csv`` with an ``ink`` column, a ``mask`` column
   (mask paths) and an ``ink_twin`` column (twin image paths), plus the seven criteria as 0/1
   columns (the import makes the data set active).
4. ``train`` the default classifier: frozen EfficientNet-Lite0 (ImageNet) + a class-balanced
   logistic head (``--no-analyse``: TCAV is the next step).
5. ``concepts add ink_twins --twins-of ink`` (the drawn strokes pasted into clean train cases
   with the ``mask`` column: positives and negatives are the same lesions), then ``tcav
   --probe ridge --stability-probe pattern`` of the seven criteria, the annotated marker and
   the twin concept; then ``confounders``.
6. ``intervene --mask ink`` at ``--layer`` with the transplant (twin-difference) direction
   (fitted on ``train`` twins made by transplanting the drawn strokes, the ``mask`` column,
   into clean train cases) at the class-balanced level, measured on ``test`` with the
   real-marker twins (``--twins ink_twin``): add- and remove-marker flip rates, worst-group
   accuracy, sensitivity on clean melanomas; ``--spec-out`` keeps the spec.
7. ``apply --export`` writes the patched model; ``predict`` runs the unpatched and the patched
   model on real-marker twin pairs of clean test cases (add-marker flips counted from the
   predictions).
8. No annotation: the same images imported again **without** the ``ink`` and ``mask`` columns
   (``cases_noink.csv``); ``clusters`` on the model's head input; the marked share of each
   flagged cluster is scored with this script's own record of who carries the marker;
   ``name-cluster`` names the most-marked flagged melanoma cluster, and ``intervene --mask`` of
   that concept measures the flips on the same real-marker twins.

The last lines print the done-when figures. ``--json PATH`` writes them all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]


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
    from concepts import CRITERIA
    from concepts.data import load_image_rgb
    from concepts.importers import read_derm7pt_meta, read_derm7pt_splits

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
    df.drop(columns=["ink", "mask"]).to_csv(out / "cases_noink.csv", index=False)  # the no-annotation route
    return df


# ---------------------------------------------------------------------------------- the CLI
class Cli:
    """Runs ``python -m workbench.cli ARGS`` and keeps the wall time of every command."""

    def __init__(self, ws: Path) -> None:
        self.ws = ws
        self.timings: list[dict[str, Any]] = []
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}

    def __call__(self, *args: str, json_out: bool = True) -> Any:
        """Run one command (``-w`` is added where the command takes it); parsed JSON or stdout."""
        cmd = [sys.executable, "-m", "workbench.cli", *args]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, cwd=ROOT, check=False)
        sec = round(time.perf_counter() - t0, 1)
        shown = [a if len(a) < 40 else "…" + a[-30:] for a in args]
        label = " ".join(shown if len(shown) <= 16 else [*shown[:14], f"… ({len(shown) - 14} more)"])
        self.timings.append({"command": label, "seconds": sec, "rc": proc.returncode})
        print(f"[{sec:7.1f} s] workbench {label}", flush=True)
        if proc.returncode != 0:
            raise SystemExit(f"workbench {label} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return json.loads(proc.stdout) if json_out else proc.stdout


# ---------------------------------------------------------------------------------- figures
def _r(v: Any) -> Any:
    return None if v is None else round(float(v), 3)


def effect_figures(rep: dict[str, Any]) -> dict[str, Any]:
    """Flip rates (add/remove), worst group, clean accuracy and clean-melanoma sensitivity of an
    ``intervene --format json`` report."""
    fr = (rep.get("reliance") or {}).get("flip_rates", {})
    clean: dict[str, Any] = next(
        (s for s in rep.get("slices", []) if s["column"] == "ink" and s["value"] == "without"), {})
    out: dict[str, Any] = {}
    for key, f in fr.items():
        name = "remove" if f.get("direction") == "remove" or key.endswith(":remove") else "add"
        out[f"{name}_flip_before"], out[f"{name}_flip_after"] = _r(f.get("before")), _r(f.get("after"))
        out[f"{name}_n"], out[f"{name}_method"] = f.get("n"), f.get("method")
        out[f"{name}_reduction"] = _r(f.get("reduction"))
    b, a = rep.get("before", {}), rep.get("after", {})
    for k in ("worst_group_accuracy", "clean_accuracy", "sensitivity", "accuracy", "balanced_accuracy"):
        out[f"{k}_before"], out[f"{k}_after"] = _r(b.get(k)), _r(a.get(k))
    out["worst_group_before"], out["worst_group_after"] = b.get("worst_group"), a.get("worst_group")
    out["clean_mel_sensitivity_before"] = _r(clean.get("sensitivity_before"))
    out["clean_mel_sensitivity_after"] = _r(clean.get("sensitivity_after"))
    out["n_flipped"] = rep.get("n_flipped")
    return out


def tcav_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = ("concept", "class", "layer", "score_mean", "random_mean", "effect", "p_value", "p_adjusted",
            "cav_accuracy", "significant", "verdict")
    return [{k: (_r(r[k]) if isinstance(r.get(k), float) else r.get(k)) for k in keep} for r in rows]


def twin_flips(cli: Cli, folder: Path, df: pd.DataFrame, model_dir: Path, patched: Path, n: int) -> dict[str, Any]:
    """``predict`` with the plain and the patched model on ``n`` clean test cases and their
    real-marker (add) twins: how many predictions the drawn marker flips."""
    rows = df[(df["split"] == "test") & (df["ink"] == 0)].head(n)
    clean = [str(folder / p) for p in rows["path"]]
    twins = [str(folder / p) for p in rows["ink_twin"]]
    out: dict[str, Any] = {"n": len(rows)}
    for name, model in (("plain", model_dir), ("patched", patched)):
        a = cli("predict", "--model", str(model), "--format", "json", *clean)
        b = cli("predict", "--model", str(model), "--format", "json", *twins)
        out[f"{name}_flips"] = sum(x["predicted"] != y["predicted"] for x, y in zip(a, b, strict=True))
        out[f"{name}_to_melanoma"] = sum(x["predicted"] != "melanoma" and y["predicted"] == "melanoma"
                                         for x, y in zip(a, b, strict=True))
    return out


def unsupervised(cli: Cli, folder: Path, df: pd.DataFrame, ws: Path, layer: str) -> dict[str, Any]:
    """The no-annotation route: import without ``ink``/``mask``, clusters, name one, mask it."""
    cli("import", "folder", str(folder / "cases_noink.csv"), "--name", "derm7pt_noink", "-w", str(ws),
        "--active", "--overwrite", "--format", "json")
    clusters = cli("clusters", "-w", str(ws), "--format", "json")
    saved = json.loads((ws / "results" / "clusters.json").read_text())  # members (the split clustered)
    ink = dict(zip(df["case_id"].astype(str), df["ink"].astype(int), strict=True))
    members: dict[int, list[str]] = {}
    for cid, k in zip(saved["case_ids"], saved["assignments"], strict=True):
        members.setdefault(int(k), []).append(str(cid))
    table = []
    for c in clusters:
        ids = members.get(int(c["cluster"]), [])
        table.append({"cluster": c["cluster"], "class": c["class"], "size": c["size"], "lift": _r(c.get("lift")),
                      "p_adjusted": _r(c.get("p_adjusted")), "suspicious": bool(c["suspicious"]),
                      "marked_share": _r(np.mean([ink[i] for i in ids])) if ids else None})
    flagged = [t for t in table if t["suspicious"] and t["class"] == "melanoma"]
    out: dict[str, Any] = {"clusters": table, "flagged_melanoma": flagged}
    if not flagged:
        return out
    best = max(flagged, key=lambda t: t["marked_share"] or 0.0)
    out["named"] = best
    cli("name-cluster", "--cluster", str(best["cluster"]), "--name", "violet_marks", "--description",
        "violet pen marks (found without annotation)", "-w", str(ws), "--replace", json_out=False)
    rep = cli("intervene", "-w", str(ws), "--mask", "violet_marks", "--layer", layer, "--split", "test",
              "--twins", "ink_twin", "--no-tcav", "--format", "json")
    out["masking"] = effect_figures(rep)
    return out


def done_when(res: dict[str, Any]) -> None:
    """Print the issue's done-when figures."""
    m = res.get("masking", {})
    conf = res.get("confounders") or []
    first = conf[0].get("concept") if conf else None
    print("--- done when ---")
    print(f"marker ranks first among confounders: {first == 'ink'} (first: {first})")
    for r in res.get("tcav", []):
        if r.get("concept") in ("ink", "ink_twins") and r.get("class") == "melanoma":
            print(f"{r.get('concept')} TCAV for melanoma at {r.get('layer')}: score {r.get('score_mean')} vs random "
                  f"{r.get('random_mean')}, p_adj {r.get('p_adjusted')}, significant {r.get('significant')}, "
                  f"CAV accuracy {r.get('cav_accuracy')}")
    for k in ("add", "remove"):
        b, a = m.get(f"{k}_flip_before"), m.get(f"{k}_flip_after")
        print(f"{k}-marker flip rate {b} -> {a} (n {m.get(f'{k}_n')}, {m.get(f'{k}_method')}; halved: "
              f"{a is not None and b is not None and a <= b / 2})")
    print(f"worst-group accuracy {m.get('worst_group_accuracy_before')} -> {m.get('worst_group_accuracy_after')} "
          f"({m.get('worst_group_before')} -> {m.get('worst_group_after')})")
    sb, sa = m.get("clean_mel_sensitivity_before"), m.get("clean_mel_sensitivity_after")
    print(f"sensitivity on clean melanomas {sb} -> {sa} (cost <= 2 points: "
          f"{sa is not None and sb is not None and sa >= sb - 0.02})")
    u = res.get("unsupervised") or {}
    named = u.get("named")
    if named:
        um = u.get("masking", {})
        print(f"unsupervised: flagged melanoma cluster {named['cluster']} ({named['size']} cases) is "
              f"{named['marked_share']} marked (>= 0.8: {(named['marked_share'] or 0) >= 0.8}); masked as "
              f"'violet_marks': add flips {um.get('add_flip_before')} -> {um.get('add_flip_after')}, remove "
              f"{um.get('remove_flip_before')} -> {um.get('remove_flip_after')}")
    elif u:
        print("unsupervised: no melanoma cluster flagged")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--derm7pt", type=Path, default=None, help="derm7pt release folder (meta/, images/)")
    ap.add_argument("--workspace", type=Path, default=None, help="workspace folder (default: a temporary one)")
    ap.add_argument("--size", type=int, default=224, help="image side")
    ap.add_argument("--layer", default="pool", help="layer to mask at")
    ap.add_argument("--runs", type=int, default=20, help="TCAV runs R")
    ap.add_argument("--no-tcav", action="store_true", help="skip TCAV")
    ap.add_argument("--no-unsupervised", action="store_true", help="skip the no-annotation route")
    ap.add_argument("--predict-pairs", type=int, default=40, help="twin pairs run through `predict`")
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
    t_all = time.perf_counter()
    ws = (args.workspace or tmp / "ws").resolve()
    folder = (args.source or tmp / "folder").resolve()
    t0 = time.perf_counter()
    if (folder / "cases.csv").is_file() and (folder / "cases_noink.csv").is_file():
        df = pd.read_csv(folder / "cases.csv", keep_default_na=False)  # made earlier by this script
    else:
        df = build_folder(args.derm7pt, folder, args.size, args.seed)
    res: dict[str, Any] = {"n": len(df), "prepare_seconds": round(time.perf_counter() - t0, 1)}
    res["ink_share"] = {f"{s}/{c}": round(float(g["ink"].mean()), 3) for (s, c), g in df.groupby(["split", "label"])}
    print("planted:", res["ink_share"], flush=True)
    cli = Cli(ws)
    cli("workspace", "init", "-w", str(ws), json_out=False)
    res["import"] = cli("import", "folder", str(folder / "cases.csv"), "--name", "derm7pt_ink", "-w", str(ws),
                        "--image-size", str(args.size), "--active", "--overwrite", "--format", "json")
    tr = cli("train", "-w", str(ws), "--no-analyse", "--overwrite", "--format", "json")
    res["model"] = tr["model"]
    for s, m in tr["metrics"].items():
        res[f"{s}_metrics"] = m
        print(f"{s}: acc {m['accuracy']:.3f} bacc {m['balanced_accuracy']:.3f} sens({m['positive_class']}) "
              f"{m['sensitivity']:.3f} worst group {m['worst_group']} {m['worst_group_accuracy']:.3f} "
              f"clean {m['clean_accuracy']:.3f}", flush=True)
    if not args.no_tcav:
        # the marker as counterfactual twins: its stroke pasted into clean train cases with the
        # data set's own masks (same lesions on both sides), next to the annotated column
        cli("concepts", "add", "ink_twins", "-w", str(ws), "--twins-of", "ink", "--group", "artifact",
            json_out=False)
        res["tcav"] = tcav_rows(cli("tcav", "-w", str(ws), "--runs", str(args.runs), "--probe", "ridge",
                                    "--stability-probe", "pattern", "--format", "json"))
        for row in res["tcav"]:
            if row["class"] == "melanoma":
                print("tcav:", row, flush=True)
    conf = cli("confounders", "-w", str(ws), "--format", "json")
    res["confounders"] = [{k: r.get(k) for k in ("rank", "concept", "class", "score", "odds_ratio",
                                                  "reliance_strength", "reliance_source")} for r in conf[:10]]
    print("confounders (top 5):", res["confounders"][:5], flush=True)
    spec = ws / "results" / "bench-mask-ink.json"
    rep = cli("intervene", "-w", str(ws), "--mask", "ink", "--layer", args.layer, "--method", "transplant",
              "--mask-level", "balanced", "--split", "test", "--twins", "ink_twin", "--no-tcav",
              "--spec-out", str(spec), "--format", "json")
    res["masking"] = {"layer": args.layer, "method": "transplant", "level": "balanced", **effect_figures(rep)}
    print(f"mask ink at {args.layer}:", res["masking"], flush=True)
    model_dir, patched = ws / "models" / res["model"], tmp / "patched"
    res["apply"] = cli("apply", "--model", str(model_dir), "--spec", str(spec), "--out", str(patched), "--export",
                       "--format", "json")
    if args.predict_pairs:
        res["predict_twins"] = twin_flips(cli, folder, df, model_dir, patched, args.predict_pairs)
        print("predict on real-marker twin pairs:", res["predict_twins"], flush=True)
    if not args.no_unsupervised:
        res["unsupervised"] = unsupervised(cli, folder, df, ws, args.layer)
    res["cli_timings"] = cli.timings
    done_when(res)
    res["total_seconds"] = round(time.perf_counter() - t_all, 1)
    print("--- wall time per command ---")
    for t in cli.timings:
        print(f"{t['seconds']:7.1f} s  workbench {t['command']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    print(f"total {res['total_seconds']} s")


if __name__ == "__main__":
    main()
