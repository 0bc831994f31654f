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
   correction, per counterpart mode.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _model(ws, ds):  # type: ignore[no-untyped-def]
    from concepts import ClassifierModel, fit_linear_head, set_linear_head

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
    from concepts import ConceptBank, TCAVSetup, run_tcav

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--derm7pt", type=Path, help="derm7pt release folder (meta/, images/)")
    ap.add_argument("--workspace", type=Path, default=Path("/tmp/concept_sets_ws"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--random-concepts", type=int, default=40)
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    if args.derm7pt is None:
        print("skipped: give --derm7pt ROOT (the derm7pt release) to run this bench")
        return 0
    from concepts import ConceptBank, TCAVSetup, Workspace, import_derm7pt, run_tcav

    t0 = time.perf_counter()
    ws = Workspace(args.workspace).ensure()
    if not ws.exists() or not ws.manifest().get("dataset"):
        ds = import_derm7pt(args.derm7pt, ws.datasets_dir / "derm7pt", image_size=128)
        ws.update_manifest(dataset=ds.info.name)
    ds = ws.dataset()
    _model(ws, ds)
    cols = list(ds.info.concepts)
    figures: dict = {"columns": cols}
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
