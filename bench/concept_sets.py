"""Concept sets from annotations and TCAV's false-positive rate, on real derm7pt images.

    python bench/concept_sets.py --derm7pt /path/to/release_v0 [--workspace /tmp/cs_ws] [--runs 20]

Skipped (exit 0, a message) without ``--derm7pt``; derm7pt is never committed. Steps:

1. import derm7pt (melanoma vs rest) into the workspace (once), fit the default model
   (EfficientNet-Lite0 frozen + logistic head on the train split) and make it active;
2. **before**: the 7-point columns as the previous default bank built them (CAVs against the
   random pool, pool drawn from the same cases) — label-confounding per concept and held-out
   CAV accuracy per criterion;
3. **after**: ``ConceptBank.from_columns`` (class-matched negatives, pool kept apart) — the same
   figures;
4. **false positives**: ``--random-concepts`` random "concepts" (40 random train cases each; in
   the ``negative`` mode 40 random cases as negatives too) — share called significant after Holm
   correction, per counterpart mode;
5. with ``--marker``: a violet skin-marker arc drawn by this script onto 60 % of the melanomas
   and 5 % of the other cases (train/val; 50 % of each class in test), saved as a second data
   set with an ``ink`` column; the head is refitted on it and the ``ink`` concept built from the
   column — its held-out CAV accuracy, label-confounding check and TCAV rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _model(ws, ds):  # type: ignore[no-untyped-def]
    from concepts import ClassifierModel
    from concepts.models import fit_linear_head, set_linear_head

    if ws.manifest().get("model"):
        return ws.model()
    model = ClassifierModel.build("efficientnet-lite0", ds.classes)
    tr = ds.indices("train")
    iset = ds.image_set(tr, name=f"{ds.info.name}:train")
    feats = ws.activation_cache.get(model, ["pool"], iset)["pool"]
    w, b = fit_linear_head(feats.reshape(len(tr), -1), ds.labels(tr), len(ds.classes), class_balanced=True)
    set_linear_head(model, w, b)
    model.save(ws.models_dir / "effnet-head")
    ws.update_manifest(model="effnet-head", layers=["block10", "block15"])
    va = ds.indices("val")
    acc = float((model.predict_proba(np.asarray(ds.images[va])).argmax(1) == ds.labels(va)).mean())
    print(f"model: EfficientNet-Lite0 + head, val accuracy {acc:.3f}")
    return model


def _old_bank(ds, columns):  # type: ignore[no-untyped-def]
    """The bank as the previous default built it: CAVs against a random pool from the same cases."""
    from concepts import ConceptBank

    bank = ConceptBank()
    for i, col in enumerate(columns):
        try:
            bank.add_from_column(ds, col, counterpart="random", seed=i)
        except Exception as exc:  # report and go on
            print(f"  old bank: {col}: {exc}")
    bank.set_random_pool_from_dataset(ds)
    return bank


def _summary(bank, rep) -> list[dict]:  # type: ignore[no-untyped-def]
    tab = rep.table
    out = []
    for con in bank:
        sub = tab[(tab["concept"] == con.name) & (tab["class"] == tab["class"].iloc[0])]
        out.append({
            "concept": con.name, "trains_against": con.negative_name,
            "class_share_diff": round(float(bank.confounding(con) or 0.0), 3),
            "confounded": bool(bank.check_balance(con) is not None),
            **{f"cav_acc_{r.layer}": round(float(r.cav_accuracy), 3) for r in sub.itertuples()},
            "significant_rows": int(tab.loc[tab["concept"] == con.name, "significant"].sum()),
        })
    return out


def _noise_fpr(ws, ds, setup_bank, n: int, runs: int, mode: str) -> dict:  # type: ignore[no-untyped-def]
    from concepts import ConceptBank, run_tcav
    from concepts.tcav import TCAVSetup

    setup = TCAVSetup.from_workspace(ws)
    bank = ConceptBank(random_pool=setup_bank.random_pool, datasets_dir=ws.datasets_dir)
    bank.register_dataset(ds)
    ids = ds.cases["case_id"].astype(str).to_numpy()
    tr = ds.indices("train")
    rng = np.random.default_rng(1)
    for i in range(n):
        rows = rng.choice(tr, 80, replace=False)
        bank.add_from_cases(f"noise_{i}", "custom", "random cases", ds, ids[rows[:40]].tolist(),
                            ids[rows[40:]].tolist() if mode == "negative" else None)
    setup.bank = bank
    out = {}
    for test in ("prediction", "welch"):
        from concepts import SignificanceConfig

        rep = run_tcav(setup, runs=runs, save=False, stability_probe=None,
                       significance=SignificanceConfig(test=test))
        out[test] = round(float((rep.table["p_adjusted"] < 0.05).mean()), 3)
    return out


def _draw_marker(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A violet marker arc around the lesion (this script's own renderer)."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h / 2 + rng.uniform(-5, 5), w / 2 + rng.uniform(-5, 5)
    r = rng.uniform(0.36, 0.44) * h
    a0 = rng.uniform(0, 2 * np.pi)
    ang = np.arctan2(yy - cy, xx - cx)
    arc = (np.abs(np.hypot(yy - cy, xx - cx) - r) < 0.022 * h) & (np.cos(ang - a0) > 0.1)
    out = img.copy()
    out[arc] = (0.25 * out[arc] + 0.75 * np.array([105, 40, 150])).astype(np.uint8)
    return out


def _marker_check(ws, ds, runs: int) -> dict:  # type: ignore[no-untyped-def]
    from concepts import ClassifierModel, ConceptBank, Dataset, DatasetInfo, run_tcav
    from concepts.models import fit_linear_head, set_linear_head
    from concepts.tcav import TCAVSetup

    rng = np.random.default_rng(7)
    cases = ds.cases.copy()
    mel = ds.labels(np.arange(len(cases))) == list(ds.classes).index("melanoma")
    share = np.where(cases["split"].to_numpy() == "test", 0.5, np.where(mel, 0.6, 0.05))
    ink = rng.random(len(cases)) < share
    images = np.asarray(ds.images).copy()
    for i in np.flatnonzero(ink):
        images[i] = _draw_marker(images[i], rng)
    cases["ink"] = ink.astype(int)
    info = DatasetInfo(name="derm7pt_marked", kind="folder", classes=ds.classes, image_size=ds.info.image_size,
                       concepts=ds.info.concepts, artifacts=("ink",))
    marked = Dataset.write(ws.datasets_dir / "derm7pt_marked", info, cases, images, overwrite=True)
    model = ClassifierModel.build("efficientnet-lite0", marked.classes)
    tr = marked.indices("train")
    feats = ws.activation_cache.get(model, ["pool"], marked.image_set(tr, name="marked:train"))["pool"]
    w, b = fit_linear_head(feats.reshape(len(tr), -1), marked.labels(tr), len(marked.classes), class_balanced=True)
    set_linear_head(model, w, b)
    model.save(ws.models_dir / "effnet-head-marked")
    ws.update_manifest(dataset="derm7pt_marked", model="effnet-head-marked")
    bank = ConceptBank.from_columns(marked, ["ink"])
    setup = TCAVSetup.from_workspace(ws)
    setup.bank = bank
    rep = run_tcav(setup, runs=runs, save=False)
    con = bank["ink"]
    out = {"n_positive": len(con.positive), "class_share_diff": bank.confounding(con),
           "confounded": bank.check_balance(con) is not None,
           "rows": rep.table[["class", "layer", "cav_accuracy", "score_mean", "random_mean", "effect",
                              "p_adjusted", "significant"]].round(3).to_dict("records")}
    ws.update_manifest(dataset=ds.info.name, model="effnet-head")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--derm7pt", type=Path, help="derm7pt release folder (meta/, images/)")
    ap.add_argument("--workspace", type=Path, default=Path("/tmp/concept_sets_ws"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--random-concepts", type=int, default=40)
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    ap.add_argument("--marker", action="store_true", help="also plant a marker and check its concept")
    ap.add_argument("--only-marker", action="store_true", help="only the marker check")
    args = ap.parse_args(argv)
    if args.derm7pt is None:
        print("skipped: give --derm7pt ROOT (the derm7pt release) to run this bench")
        return 0
    from concepts import ConceptBank, Workspace, run_tcav
    from concepts.importers import import_derm7pt
    from concepts.tcav import TCAVSetup

    t0 = time.perf_counter()
    ws = Workspace(args.workspace).ensure()
    if not ws.exists() or not ws.manifest().get("dataset"):
        ds = import_derm7pt(args.derm7pt, ws.datasets_dir / "derm7pt", image_size=128)
        ws.update_manifest(dataset=ds.info.name)
    ds = ws.dataset()
    _model(ws, ds)
    cols = list(ds.info.concepts)
    figures: dict = {"columns": cols}
    if args.marker or args.only_marker:
        figures["marker"] = _marker_check(ws, ds, args.runs)
        print("marker:", json.dumps(figures["marker"], default=str))
        if args.only_marker:
            if args.out is not None:
                args.out.write_text(json.dumps(figures, indent=1, default=str))
            return 0
    for label, bank in (("before", _old_bank(ds, cols)), ("after", ConceptBank.from_columns(ds, cols))):
        setup = TCAVSetup.from_workspace(ws)
        setup.bank = bank
        rep = run_tcav(setup, runs=args.runs, save=False)
        figures[label] = _summary(bank, rep)
        print(f"\n{label}:")
        for row in figures[label]:
            print("  " + json.dumps(row))
    after = ConceptBank.from_columns(ds, cols)
    figures["false_positive_rate"] = {
        mode: _noise_fpr(ws, ds, after, args.random_concepts, args.runs, mode) for mode in ("random", "negative")
    }
    print("\nrandom-concept share significant after Holm:", json.dumps(figures["false_positive_rate"]))
    figures["seconds"] = round(time.perf_counter() - t0, 1)
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
