"""UI latency: server-side time of one strength-slider interaction on the Interventions page.

Usage: python bench/ui_latency.py [--workspace workspace] [--repeats 30] [--concept ink]

Builds the demo workspace when it is missing. The Interventions page is opened with
``streamlit.testing.v1.AppTest`` (the same script the server runs) as a dermatologist, the
concept is selected for masking (first run: the what-if engines of the debiased test and biased
validation splits are built from cached activations and twins), and then the mask-strength
slider is moved ``--repeats`` times to new random values. Each timed step is one complete
script run as the server would do it on that interaction: re-scoring both splits from cached
activations, the metrics with their deltas, flip rates, the flipped-cases table, the two
figures and the list of applied interventions (read from the store).

Two numbers are reported:

* ``AppTest rerun`` — the whole page (an upper bound: in the browser the slider lives in an
  ``st.fragment``, so only the what-if panel reruns);
* ``callbacks`` — the functions the fragment calls (spec, two evaluations, flipped table).

Goal: p95 <= 300 ms. Last line: ``p95_ms: <value>`` (the AppTest rerun).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def _pcts(times: list[float]) -> tuple[float, float, float]:
    return (float(np.percentile(times, 50)), float(np.percentile(times, 95)), float(np.max(times)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=Path("workspace"))
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--concept", default="ink")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads of the UI process (what `workbench serve` sets)")
    args = ap.parse_args()

    from concepts import Workspace

    ws = Workspace(args.workspace)
    if not ws.exists():
        from workbench.services import build_demo

        print(f"building the demo workspace at {ws.root} ...", flush=True)
        build_demo(ws)

    os.environ["WORKBENCH_WORKSPACE"] = str(ws.root)
    os.environ["WORKBENCH_ROLE"] = "dermatologist"
    os.environ["WORKBENCH_AUTH"] = "local"
    os.environ["WORKBENCH_TORCH_THREADS"] = str(args.threads)

    from streamlit.testing.v1 import AppTest

    app = Path(__file__).resolve().parents[1] / "workbench" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=1800)
    t0 = time.perf_counter()
    at.run()
    at.switch_page("pages/interventions.py").run()
    at.multiselect(key="iv_concepts").set_value([args.concept]).run()
    setup_s = time.perf_counter() - t0
    if at.exception or at.error:
        msgs = [e.value for e in at.exception] + [e.value for e in at.error]
        sys.exit(f"the Interventions page failed: {msgs}")
    slider = f"iv_s_mask_{args.concept}"
    rng = np.random.default_rng(0)
    for s in (0.25, 0.75):  # warm-up
        at.slider(key=slider).set_value(s).run()

    page: list[float] = []
    for _ in range(args.repeats):
        s = round(float(rng.uniform(0.05, 1.0)), 2)
        t = time.perf_counter()
        at.slider(key=slider).set_value(s).run()
        page.append(1000 * (time.perf_counter() - t))
    if at.exception:
        sys.exit(f"a slider rerun failed: {[e.value for e in at.exception]}")

    from workbench.ui import EvalSplits, build_spec, evaluate, flipped_table

    layer = ws.layers()[-1] if ws.layers() else "pool"
    calls: list[float] = []
    for _ in range(args.repeats):
        s = float(rng.uniform(0.05, 1.0))
        t = time.perf_counter()
        spec = build_spec(ws, layer, [(args.concept, "mask", s)])
        for split, _label in EvalSplits:
            res = evaluate(ws, split, layer, spec)
        flipped_table(ws, EvalSplits[0][0], layer, res)
        calls.append(1000 * (time.perf_counter() - t))

    ds = ws.dataset()
    n = {split: len(ds.indices(split)) for split, _ in EvalSplits}
    print(f"workspace {ws.root}: {ws.manifest().get('demo_summary', {}).get('architecture', '?')}, "
          f"layer {layer}, splits {n}; torch threads {args.threads}")
    print(f"page opened and engines built in {setup_s:.1f} s")
    p50, p95, mx = _pcts(calls)
    print(f"callbacks (spec + 2 evaluations + flipped table): p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  max {mx:6.1f} ms")
    p50, p95, mx = _pcts(page)
    print(f"AppTest rerun of the whole page per slider move:  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  max {mx:6.1f} ms")
    print(f"p95_ms: {p95:.1f}")


if __name__ == "__main__":
    main()
