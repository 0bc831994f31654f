"""What-if latency: re-scoring an evaluation split after a strength change (the UI slider).

Usage: python bench/whatif.py [--workspace workspace] [--split test_debiased] [--repeats 200]

Builds the demo workspace when it is missing. A :class:`interventions.WhatIf` is constructed
once on the split's cached activations (twins for the flip rates included); every timed call
is ``evaluate({concept: strength})`` with a new random strength of the mask of the first planted
confounder, returning the full metric set (accuracy, balanced accuracy, sensitivity,
specificity, AUC, worst-group and clean accuracy, flip rates). Reported:

* the demo split on pooled features (``pool``; goal p95 <= 50 ms),
* 10,000 synthetic cached cases on ``pool``,
* the demo split at an intermediate layer (``block15``: the head, pooling and classifier run),
* the cost of one full forward pass of the split's images, for comparison.

Last line: ``p95_ms: <value>`` (the demo split on pooled features).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from concepts import Workspace
from concepts.discovery import planted_confounders
from interventions import ConceptEdit, ConceptLibrary, InterventionSpec, WhatIf


def _latency(fn: Callable[[float], object], repeats: int, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    for s in (0.3, 0.7):  # warm-up
        fn(s)
    times = []
    for _ in range(repeats):
        s = float(rng.random())
        t = time.perf_counter()
        fn(s)
        times.append(1000 * (time.perf_counter() - t))
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=Path("workspace"))
    ap.add_argument("--split", default="test_debiased")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--synthetic", type=int, default=10_000)
    ap.add_argument("--mid-layer", default="block15")
    ap.add_argument("--mid-repeats", type=int, default=30)
    args = ap.parse_args()

    ws = Workspace(args.workspace)
    if not ws.exists():
        from workbench.services import build_demo

        print(f"building the demo workspace at {ws.root} ...", flush=True)
        build_demo(ws)
    model, ds = ws.model(), ws.dataset()
    planted = planted_confounders(ds)
    concept = planted[0][0] if planted else "ink"
    lib = ConceptLibrary.for_workspace(ws, model)

    def setup(layer: str) -> tuple[WhatIf, float]:
        spec = InterventionSpec(model.model_id, layer, (ConceptEdit(lib.direction(concept, layer), "mask"),))
        t = time.perf_counter()
        wi = WhatIf.from_dataset(model, ds, args.split, layer, cache=ws.activation_cache, spec=spec)
        return wi, time.perf_counter() - t

    wi, build_s = setup("pool")
    n = len(wi.labels)
    p50, p95 = _latency(lambda s: wi.evaluate({concept: s}), args.repeats)
    print(f"model {model.architecture} ({model.model_id}); split {args.split}: {n} cases; "
          f"mask {concept!r}; WhatIf built in {build_s:.2f} s (cached activations + twins)")
    print(f"pool, {n} cases:            p50 {p50:7.2f} ms   p95 {p95:7.2f} ms")

    rng = np.random.default_rng(0)
    d = wi.h.shape[1]
    syn = WhatIf(
        model, "pool", rng.standard_normal((args.synthetic, d)).astype(np.float32) * wi.h.std().item()
        + wi.h.mean(0).numpy(),
        rng.integers(0, len(model.classes), args.synthetic),
        groups={concept: rng.random(args.synthetic) < 0.3}, spec=wi.spec,
    )
    s50, s95 = _latency(lambda s: syn.evaluate({concept: s}), max(args.repeats // 4, 20))
    print(f"pool, {args.synthetic} synthetic cases: p50 {s50:7.2f} ms   p95 {s95:7.2f} ms")

    if args.mid_layer in model.layers:
        mid, mid_build = setup(args.mid_layer)
        m50, m95 = _latency(lambda s: mid.evaluate({concept: s}), args.mid_repeats)
        print(f"{args.mid_layer}, {n} cases:         p50 {m50:7.2f} ms   p95 {m95:7.2f} ms "
              f"(built in {mid_build:.1f} s)")

    images = np.asarray(ds.images[ds.indices(args.split)])
    model.predict_proba(images[:8])
    t = time.perf_counter()
    model.predict_proba(images, batch_size=64)
    full_ms = 1000 * (time.perf_counter() - t)
    print(f"full forward pass of the {n} images: {full_ms:.0f} ms (without twins)")
    print(f"p95_ms: {p95:.2f}")


if __name__ == "__main__":
    main()
