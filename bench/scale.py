"""Scale: generate + extract + co-occurrence + confounder report at growing N, one process per N.

Usage: python bench/scale.py [--sizes 10000,50000,100000] [--quick] [--size 128] [--workdir DIR]

For each N a fresh subprocess (so peak memory is measured per N, not carried over):

1. generates DermSynth with ``n_images = N`` at ``--size`` px (concept sets kept small: 10
   examples per set, a random pool of 50) (``generate_dermsynth``: the images
   are rendered straight into ``images.npy``, chunk by chunk), then opens it (``Dataset.load``,
   content hash verified once, streaming);
2. extracts the activations of ``--layers`` of a fresh ``tiny-cnn`` for all N images
   (``ActivationCache.get``, the public extraction API);
3. computes the attribute x class co-occurrence table (``attribute_class_table`` over the data
   set directory: DuckDB reads ``cases.parquet``);
4. computes the ranked confounder report (``graph.confounder_report`` over the same directory).

Per N it prints each stage's wall time, the total, images/s (N / total) and the peak resident
set of the child (``ru_maxrss`` of the child itself; the render workers' peak is shown apart).
Last line: ``rss_growth: <peak RSS at largest N / at smallest N>, time_growth: <t largest /
t smallest>`` (with the default sizes: 100k / 10k). Free disk space is checked before each N
(about ``N * size * size * 3`` bytes of images plus the activations); each N's files are
removed after it unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_SIZES = (10_000, 50_000, 100_000)
QUICK_SIZES = (300, 1_200)


def _peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux: kilobytes


def _child(n: int, size: int, layers: list[str], workdir: Path, workers: int) -> dict[str, object]:
    """One measurement (runs in its own process)."""
    import numpy as np

    from concepts import ActivationCache, ClassifierModel, Dataset
    from concepts.dermsynth import DermSynthConfig, generate_dermsynth
    from concepts.discovery import attribute_class_table
    from graph import confounder_report

    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    # small concept sets: N counts the main set, whose size is what grows
    cfg = DermSynthConfig(n_images=n, image_size=size, seed=0, concept_examples=10, random_pool=50)
    generate_dermsynth(cfg, workdir, workers=workers)
    stages["generate"] = time.perf_counter() - t0
    rss_generate = _peak_rss_mb(resource.RUSAGE_SELF)

    t = time.perf_counter()
    ds = Dataset.load(workdir / "dermsynth")  # mmap; verified once (the writer's own hash is reused)
    model = ClassifierModel.build("tiny-cnn", ds.classes)
    cache = ActivationCache(workdir / "cache", batch_size=128)
    acts = cache.get(model, layers, ds.image_set(np.arange(len(ds)), name="all"), mmap=True)
    shapes = {k: list(v.shape) for k, v in acts.items()}
    del acts
    stages["extract"] = time.perf_counter() - t

    t = time.perf_counter()
    cooc = attribute_class_table(workdir / "dermsynth")
    stages["cooccurrence"] = time.perf_counter() - t

    t = time.perf_counter()
    report = confounder_report(workdir / "dermsynth")
    stages["confounders"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    top = report.iloc[0]
    return {
        "n": n, "size": size, "stages": stages, "total_s": total,
        "peak_rss_mb": _peak_rss_mb(resource.RUSAGE_SELF),
        "peak_rss_after_generate_mb": rss_generate,
        "render_workers_peak_rss_mb": _peak_rss_mb(resource.RUSAGE_CHILDREN),
        "activation_shapes": shapes, "cooccurrence_rows": len(cooc), "report_rows": len(report),
        "top_confounder": f"{top['concept']} -> {top['class']}",
        "images_npy_gb": (workdir / "dermsynth" / "images.npy").stat().st_size / 1e9,
    }


def _needed_bytes(n: int, size: int) -> int:
    return int(n * size * size * 3 * 1.15) + 500 * 2**20  # images, concept sets, activations, slack


def _run_one(n: int, args: argparse.Namespace, root: Path) -> dict[str, object] | None:
    free = shutil.disk_usage(root).free
    need = _needed_bytes(n, args.size)
    if free < need:
        print(f"N={n}: skipped — needs about {need / 1e9:.1f} GB of disk, {free / 1e9:.1f} GB free")
        return None
    workdir = root / f"n{n}"
    cmd = [sys.executable, __file__, "--child", str(n), "--size", str(args.size), "--layers", args.layers,
           "--workers", str(args.workers), "--workdir", str(workdir)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if res.returncode != 0:
        print(f"N={n}: failed (exit {res.returncode})\n{res.stderr[-2000:]}")
        return None
    out: dict[str, object] = json.loads(res.stdout.strip().splitlines()[-1])
    st = out["stages"]
    assert isinstance(st, dict)
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in st.items())
    total = float(out["total_s"])  # type: ignore[arg-type]
    print(f"N={n:>7,} at {args.size} px: {total:8.1f} s  {n / total:7.1f} images/s  peak RSS "
          f"{float(out['peak_rss_mb']):7.0f} MB  (after generate {float(out['peak_rss_after_generate_mb']):.0f} "  # type: ignore[arg-type]
          f"MB; render workers {float(out['render_workers_peak_rss_mb']):.0f} MB)  [{stages}]  "  # type: ignore[arg-type]
          f"images.npy {float(out['images_npy_gb']):.2f} GB, top: {out['top_confounder']}", flush=True)  # type: ignore[arg-type]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=None, help="comma-separated N (default 10000,50000,100000)")
    ap.add_argument("--quick", action="store_true", help=f"N = {','.join(map(str, QUICK_SIZES))}")
    ap.add_argument("--size", type=int, default=128, help="image side in px (default 128)")
    ap.add_argument("--layers", default="pool", help="tiny-cnn layers to extract (default pool)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="render processes")
    ap.add_argument("--workdir", default=None, help="where the data sets go (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep each N's files")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        out = _child(args.child, args.size, args.layers.split(","), Path(args.workdir), args.workers)
        print(json.dumps(out))
        return
    sizes = (QUICK_SIZES if args.quick else DEFAULT_SIZES) if args.sizes is None else tuple(
        int(s) for s in args.sizes.split(",") if s.strip())
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="cw-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"scale bench: N = {', '.join(f'{n:,}' for n in sizes)} at {args.size} px, layers {args.layers}, "
          f"{args.workers} render workers, data in {root}", flush=True)
    t = time.perf_counter()
    results = [r for r in (_run_one(n, args, root) for n in sizes) if r is not None]
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    print(f"bench wall time: {time.perf_counter() - t:.0f} s")
    if len(results) >= 2:
        a, b = results[0], results[-1]
        print(f"growth from N={a['n']:,} to N={b['n']:,}:")
        rss = float(b["peak_rss_mb"]) / float(a["peak_rss_mb"])  # type: ignore[arg-type]
        tg = float(b["total_s"]) / float(a["total_s"])  # type: ignore[arg-type]
        print(f"rss_growth: {rss:.2f}, time_growth: {tg:.2f}")


if __name__ == "__main__":
    main()
