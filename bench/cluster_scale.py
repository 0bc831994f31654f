"""Clustering at large N: peak RSS and wall time of ``cluster_activations`` on memory-mapped features.

Usage: python bench/cluster_scale.py [--sizes 25000,50000,100000] [--dim 256] [--k 4]

For each N one subprocess writes an ``(N, dim)`` float32 ``.npy`` of planted structure (two
classes; an 'artifact' sub-cluster in 35 % of each class's cases) and a fresh one opens it
memory-mapped and runs ``cluster_activations`` with a fixed ``k``; from ``MINIBATCH_MIN_ROWS``
(20,000) cases on that is the large-N path (chunked pooling, ``partial_fit`` scaler,
``IncrementalPCA``, mini-batch k-means). Prints per N the wall time, the child's peak RSS growth
over its RSS before clustering (``ru_maxrss``; the first call also imports scikit-learn), the
size the pooled features would take in memory as float64, and the best cluster's share of artifact cases among its members (recovery of the planted
sub-cluster: 1.0 is perfect, 0.35 is chance).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _labels(n: int) -> tuple[object, object]:
    import numpy as np

    rng = np.random.default_rng(0)
    return np.where(rng.random(n) < 0.5, "a", "b").astype(object), rng.random(n) < 0.35


def _make(n: int, dim: int, f: Path) -> None:
    """Write the planted features (in a process of its own: the writing's pages do not count)."""
    import numpy as np

    lab, art = _labels(n)
    rng = np.random.default_rng(1)
    out = np.lib.format.open_memmap(f, mode="w+", dtype=np.float32, shape=(n, dim))
    for s in range(0, n, 8192):
        e = min(n, s + 8192)
        block = rng.normal(size=(e - s, dim)).astype(np.float32)
        block[lab[s:e] == "a", :4] += 1.5  # type: ignore[index]
        block[art[s:e], 8:16] += 4.0  # type: ignore[index]
        out[s:e] = block
    out.flush()


def _child(n: int, dim: int, k: int, path: str) -> dict[str, object]:
    import numpy as np

    from concepts.discovery import cluster_activations

    lab, art = _labels(n)
    f = Path(path) / f"x{n}.npy"
    mm = np.load(f, mmap_mode="r")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    res = cluster_activations(mm, lab, classes=("a", "b"), k=k, seed=0)  # type: ignore[arg-type]
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert res.holdout is not None
    disc = ~res.holdout
    # recovery: the best cluster's share of artifact cases among its (discovery) members
    best = max(float(art[disc & res.member_mask(int(c))].mean()) for c in res.clusters["cluster"])  # type: ignore[index]
    return {"n": n, "wall_s": wall, "rss_before_mb": base,
            "rss_growth_mb": peak - base, "features_mb": n * dim * 8 / 2**20, "best_artifact_share": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="25000,50000,100000")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        n, large = args.child.split(":")
        if large == "make":
            _make(int(n), args.dim, Path(args.dir) / f"x{n}.npy")
            return
        print(json.dumps(_child(int(n), args.dim, args.k, args.dir)))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="cw-cluster-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            subprocess.run([sys.executable, __file__, "--child", f"{n}:make", "--dim", str(args.dim), "--dir", tmp],
                           check=True)
            cmd = [sys.executable, __file__, "--child", f"{n}:run", "--dim", str(args.dim),
                   "--k", str(args.k), "--dir", tmp]
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            (Path(tmp) / f"x{n}.npy").unlink()
            if r.returncode != 0:
                print(f"N={n}: failed\n{r.stderr[-1500:]}")
                continue
            o = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"N={o['n']:>7,}: {o['wall_s']:6.1f} s, peak RSS +{o['rss_growth_mb']:6.0f} MB "
                  f"over {o['rss_before_mb']:.0f} MB (features {o['features_mb']:.0f} MB as float64), "
                  f"best cluster's artifact share {o['best_artifact_share']:.3f}", flush=True)


if __name__ == "__main__":
    main()
