"""Benchmark: the full TCAV analysis with plain captum vs the project's pipeline, in one process.

The analysis: the demo's 13 concepts (7 criteria + 6 artifacts) against R = 20 random
counterparts plus the random-vs-random baseline, at layers ``block10`` and ``block15`` of the demo
EfficientNet-Lite0, for >= 200 inputs per class. Both sides use the same concept examples, the
same random sets and the same inputs.

* captum, as its TCAV tutorial does: ``Concept`` objects over image data loaders, ``TCAV`` with its
  default classifier and layer-gradient method, a fresh ``save_path``, ``TCAV.interpret`` over all
  experimental sets once per class; then the same Welch test + Holm correction on its scores.
* the project: :func:`concepts.tcav._run.run_tcav` with a fresh activation cache and results folder
  (cold), and once more with the activation cache warm and the CAVs retrained (warm) — once per
  probe (``--probes``, default the closed-form ``pattern`` and the ``logistic`` classifier, the
  like-for-like counterpart of captum's SGD classifier).

Per probe: the verdicts (direction after Holm, with the same test on captum's scores) that agree
with captum's, and for every disagreement the reason read from the row (opposite effect sign:
the probes' directions differ; p on either side of 0.05: the project resamples the examples in
every run, captum keeps them fixed; the CAV-accuracy gate; an unstable probe check).

Run ``python bench/tcav.py [--workspace DIR]`` (a demo workspace; built when absent). A small
configuration for a busy machine: ``--runs 5 --layers block15 --concepts ink patch
blue_whitish_veil --inputs-per-class 60``.
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

from concepts import ActivationCache, ConceptBank, SignificanceConfig, Workspace
from concepts.tcav import (
    TCAVSetup,
    adjust_pvalues,
    compare_to_random,
    direction,
    random_sets,
    run_tcav,
)


class _Images(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Images transformed one at a time, as the tutorial's image-folder datasets do."""

    def __init__(self, images: np.ndarray, transform: object):
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(np.asarray(self.images[i])[None])[0]  # type: ignore[operator, no-any-return]


def _verdicts(T: dict, B: dict, keys: list, alpha: float = 0.05, test: str = "prediction") -> dict:
    p = np.array([compare_to_random(T[k], B[k[1:]], test) for k in keys])
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


def _explain(row, cap: str, ours: str, cap_effect: float) -> str:  # type: ignore[no-untyped-def]
    """Why a project row and captum's verdict differ, from the row's own fields."""
    if not np.isfinite(cap_effect) or np.sign(cap_effect) != np.sign(row.effect):
        return f"opposite effect sign (captum {cap_effect:+.2f}, ours {row.effect:+.2f}): the probes' directions differ"
    if row.confounded:
        return "example set confounded with the label"
    if ours == "none" and row.p_adjusted < 0.05:
        if row.unstable:
            return f"ours unstable: the {row.stability_probe} probe disagrees"
        return f"ours fails the CAV-accuracy gate (accuracy {row.cav_accuracy:.2f} vs random {row.random_accuracy:.2f})"
    return (f"same sign, different evidence: p_adj ours {row.p_adjusted:.2g} vs captum on the other side of 0.05 "
            f"(ours resamples the examples per run; captum keeps them fixed)")


def _compare(tab, cap_v: dict, cap_eff: dict) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    agree, notes = 0, []
    for r in tab.itertuples(index=False):
        key = (r.concept, r[3], r.layer)
        ours = direction(bool(r.significant), float(r.effect))
        if key not in cap_v:
            continue
        if ours == cap_v[key]:
            agree += 1
        else:
            notes.append(f"  {r.concept:>22} {r[3]:>8} {r.layer:>7}: captum {cap_v[key]}, ours {ours} — "
                         + _explain(r, cap_v[key], ours, cap_eff[key]))
    return agree, notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", default="workspace", help="demo workspace (built when absent)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--layers", nargs="+", default=["block10", "block15"])
    ap.add_argument("--concepts", nargs="+", default=None, help="only these concepts (small configuration)")
    ap.add_argument("--inputs-per-class", type=int, default=None, help="at most this many inputs per class")
    ap.add_argument("--probes", nargs="+", default=["pattern", "logistic"], help="project probes to time")
    ap.add_argument("--skip-captum", action="store_true", help="time only the project's pipeline")
    ap.add_argument("--test", default="prediction", help="significance test on both sides (prediction, welch)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    ws = Workspace(args.workspace)
    if not ws.exists():
        from workbench.services import build_demo

        print(f"building the demo workspace at {ws.root} ...", flush=True)
        build_demo(ws)
    base = TCAVSetup.from_workspace(ws, inputs_per_class=args.inputs_per_class)
    if args.concepts:
        base.bank = ConceptBank([base.bank[c] for c in args.concepts], random_pool=base.bank.random_pool,
                                root=base.bank.root, datasets_dir=base.bank.datasets_dir)
        base.bank.register_dataset(ws.dataset())
        sets = ws.concept_sets()
        if sets is not None:
            base.bank.register_dataset(sets)
    n_in = {c: len(s) for c, s in base.inputs.items()}
    print(f"model {base.model.architecture} ({base.model.model_id}), {len(base.bank)} concepts, "
          f"R = {args.runs}, layers {args.layers}, inputs per class {n_in}", flush=True)
    pool = base.bank.random_pool
    if pool is None:
        raise SystemExit("the workspace's concept bank has no random pool")
    n_rand = int(min(np.median([len(c.positive) for c in base.bank]), len(pool) // 2))
    rsets = random_sets(len(pool), n_rand, args.runs + 1, 0)  # Kim et al.'s design: fixed concept sets

    with tempfile.TemporaryDirectory() as tmp:
        t_captum = float("nan")
        cap_v: dict = {}
        cap_eff: dict = {}
        if not args.skip_captum:
            t0 = time.perf_counter()
            T, B = run_captum(base, args.layers, rsets, str(Path(tmp) / "captum"))
            keys = list(T)
            cap_v = _verdicts(T, B, keys, test=args.test)
            cap_eff = {k: float(np.mean(T[k]) - np.mean(B[k[1:]])) for k in keys}
            t_captum = time.perf_counter() - t0
            print(f"captum (SGD classifier CAVs, fixed example sets): {t_captum:.1f} s", flush=True)
        for probe in args.probes:
            fresh = TCAVSetup(base.model, base.bank, base.inputs, ActivationCache(Path(tmp) / f"acts-{probe}"),
                              Path(tmp) / f"results-{probe}")
            t0 = time.perf_counter()
            sig = SignificanceConfig(test=args.test)
            report = run_tcav(fresh, args.layers, runs=args.runs, probe=probe, significance=sig)
            t_cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            warm = run_tcav(fresh, args.layers, runs=args.runs, probe=probe, reuse=False, significance=sig)
            t_warm = time.perf_counter() - t0
            print(f"\nproject, {probe} probe: cold activation cache {t_cold:.1f} s, warm (CAVs retrained) "
                  f"{t_warm:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in warm.timings.items())})", flush=True)
            _report(report, probe, cap_v, cap_eff, t_captum, t_cold, t_warm)


def _report(report, probe: str, cap_v: dict, cap_eff: dict, t_captum: float, t_cold: float,  # type: ignore[no-untyped-def]
            t_warm: float) -> None:
    tab = report.table
    print(f"project ({probe}): {int(tab['significant'].sum())} findings of {len(tab)} tests "
          f"({int(tab['unstable'].sum())} flagged unstable across probes); mean CAV accuracy "
          f"{tab['cav_accuracy'].mean():.2f}")
    for r in tab[tab["significant"]].itertuples(index=False):
        print(f"  {r.concept:>22} {r[3]:>8} {r.layer:>7}: TCAV {r.score_mean:.2f} vs random "
              f"{r.random_mean:.2f}, p_adj {r.p_adjusted:.1e}")
    if not cap_v:
        print(f"speedup ({probe}): n/a (captum skipped), warm {t_warm:.1f} s, cold {t_cold:.1f} s")
        return
    agree, notes = _compare(tab, cap_v, cap_eff)
    print(f"verdicts agreeing with captum ({probe} vs captum's SGD, same test and correction): {agree}/{len(cap_v)}")
    if notes:
        print("disagreements:")
        print("\n".join(notes))
    print(f"speedup ({probe}): {t_captum / t_cold:.1f}x cold, {t_captum / t_warm:.1f}x warm, "
          f"verdicts agreeing: {agree}/{len(cap_v)}")


if __name__ == "__main__":
    main()
