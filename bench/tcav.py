"""Benchmark: the full TCAV analysis with plain captum vs the project's pipeline, in one process.

The analysis: the demo's 13 concepts (7 criteria + 6 artifacts) against R = 20 random
counterparts plus the random-vs-random baseline, at layers ``block10`` and ``block15`` of the demo
EfficientNet-Lite0, for >= 200 inputs per class. Both sides use the same concept examples, the
same random sets and the same inputs.

* captum, as its TCAV tutorial does: ``Concept`` objects over image data loaders, ``TCAV`` with its
  default classifier and layer-gradient method, a fresh ``save_path``, ``TCAV.interpret`` over all
  experimental sets once per class; then the same Welch test + Holm correction on its scores.
* the project: :func:`concepts._tcav.run_tcav` with a fresh activation cache and results folder
  (cold), and once more with the activation cache warm and the CAVs retrained (warm).

Run ``python bench/tcav.py [--workspace DIR]`` (a demo workspace; built when absent). The last line
reads ``speedup: <ratio>x, verdicts agreeing: <a>/<n>`` with the cold-cache ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from concepts import ActivationCache, Workspace
from concepts._significance import adjust_pvalues, compare_to_random, direction
from concepts._tcav import TCAVSetup, random_sets, run_tcav


class _Images(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Images transformed one at a time, as the tutorial's image-folder datasets do."""

    def __init__(self, images: np.ndarray, transform: object):
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(np.asarray(self.images[i])[None])[0]  # type: ignore[operator, no-any-return]


def _verdicts(T: dict, B: dict, keys: list, alpha: float = 0.05) -> dict:
    p = np.array([compare_to_random(T[k], B[k[1:]]) for k in keys])
    padj = adjust_pvalues(p, "holm")
    return {k: direction(bool(padj[i] < alpha), float(np.mean(T[k]) - np.mean(B[k[1:]])))
            for i, k in enumerate(keys)}


def run_captum(setup: TCAVSetup, layers: list[str], rsets: list[np.ndarray], save_path: str) -> tuple[dict, dict]:
    """Plain captum over all experimental sets; returns per-run sign counts T and baselines B."""
    from captum.concept import TCAV, Concept

    model, bank = setup.model, setup.bank

    def loader(images: np.ndarray) -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
        return torch.utils.data.DataLoader(_Images(images, model.preprocess), batch_size=64)

    assert bank.random_pool is not None
    pool = np.asarray(bank.image_set(bank.random_pool).images)
    concepts = [Concept(i, c.name, loader(np.asarray(bank.image_set(c.positive).images)))
                for i, c in enumerate(bank)]
    randoms = [Concept(1000 + r, f"random_{r}", loader(pool[s])) for r, s in enumerate(rsets)]
    runs = len(rsets) - 1
    exp_sets = [[c, randoms[r]] for c in concepts for r in range(1, runs + 1)]
    exp_sets += [[randoms[0], randoms[r]] for r in range(1, runs + 1)]
    tcav = TCAV(model.module, layers=[f"stages.{lay}" for lay in layers], model_id="bench", save_path=save_path)
    T: dict = {}
    B: dict = {}
    for k, cls in enumerate(model.classes):
        x = model.preprocess(np.asarray(setup.inputs[cls].images))
        scores = tcav.interpret(x, exp_sets, target=k)
        for lay in layers:
            for c in concepts:
                T[(c.name, cls, lay)] = [float(scores[f"{c.id}-{1000 + r}"][f"stages.{lay}"]["sign_count"][0])
                                         for r in range(1, runs + 1)]
            B[(cls, lay)] = [float(scores[f"1000-{1000 + r}"][f"stages.{lay}"]["sign_count"][0])
                             for r in range(1, runs + 1)]
    return T, B


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", default="workspace", help="demo workspace (built when absent)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--layers", nargs="+", default=["block10", "block15"])
    ap.add_argument("--skip-captum", action="store_true", help="time only the project's pipeline")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    ws = Workspace(args.workspace)
    if not ws.exists():
        from workbench._demo import build_demo

        print(f"building the demo workspace at {ws.root} ...", flush=True)
        build_demo(ws)
    base = TCAVSetup.from_workspace(ws)
    n_in = {c: len(s) for c, s in base.inputs.items()}
    concepts = base.bank.names
    print(f"model {base.model.architecture} ({base.model.model_id}), {len(concepts)} concepts, "
          f"R = {args.runs}, layers {args.layers}, inputs per class {n_in}", flush=True)
    pool = base.bank.random_pool
    if pool is None:
        raise SystemExit("the workspace's concept bank has no random pool")
    n_rand = int(min(np.median([len(c.positive) for c in base.bank]), len(pool) // 2))
    rsets = random_sets(len(pool), n_rand, args.runs + 1, 0)  # the same sets as run_tcav draws

    with tempfile.TemporaryDirectory() as tmp:
        t_captum = float("nan")
        cap_v: dict = {}
        if not args.skip_captum:
            t0 = time.perf_counter()
            T, B = run_captum(base, args.layers, rsets, str(Path(tmp) / "captum"))
            keys = list(T)
            cap_v = _verdicts(T, B, keys)
            t_captum = time.perf_counter() - t0
            print(f"captum: {t_captum:.1f} s", flush=True)

        fresh = TCAVSetup(base.model, base.bank, base.inputs, ActivationCache(Path(tmp) / "acts"),
                          Path(tmp) / "results")
        t0 = time.perf_counter()
        report = run_tcav(fresh, args.layers, runs=args.runs, probe="pattern")
        t_cold = time.perf_counter() - t0
        print(f"project, cold activation cache: {t_cold:.1f} s "
              f"({', '.join(f'{k} {v:.1f} s' for k, v in report.timings.items())})", flush=True)
        t0 = time.perf_counter()
        warm = run_tcav(fresh, args.layers, runs=args.runs, probe="pattern", reuse=False)
        t_warm = time.perf_counter() - t0
        print(f"project, warm activation cache (CAVs retrained): {t_warm:.1f} s "
              f"({', '.join(f'{k} {v:.1f} s' for k, v in warm.timings.items())})", flush=True)

    tab = report.table
    ours = {(r.concept, r[3], r.layer): direction(bool(r.p_adjusted < 0.05), float(r.effect))
            for r in tab.itertuples(index=False)}
    ours_sig = {(r.concept, r[3], r.layer): bool(r.significant) for r in tab.itertuples(index=False)}
    print(f"project: {int(tab['significant'].sum())} findings of {len(tab)} tests "
          f"({int(tab['unstable'].sum())} flagged unstable across probes)")
    for r in tab[tab["significant"]].itertuples(index=False):
        print(f"  {r.concept:>22} {r[3]:>8} {r.layer:>7}: TCAV {r.score_mean:.2f} vs random "
              f"{r.random_mean:.2f}, p_adj {r.p_adjusted:.1e}")
    if args.skip_captum:
        print(f"speedup: n/a (captum skipped), warm {t_warm:.1f} s, cold {t_cold:.1f} s")
        return
    agree = sum(cap_v[k] == ours[k] for k in cap_v)
    agree_find = sum((cap_v[k] != "none") == ours_sig[k] for k in cap_v)
    print(f"verdict agreement (direction after Holm, same test on both): {agree}/{len(cap_v)}; "
          f"captum significant vs project findings: {agree_find}/{len(cap_v)}")
    print(f"speedup with a warm activation cache: {t_captum / t_warm:.1f}x "
          f"(captum {t_captum:.1f} s, project {t_warm:.1f} s)")
    print(f"speedup: {t_captum / t_cold:.1f}x, verdicts agreeing: {agree}/{len(cap_v)}")


if __name__ == "__main__":
    main()
