"""Cost of the data-set content-hash check (``Dataset.verify``) on a synthetic data set.

    python bench/dataset_verify.py [--n 2000] [--size 128] [--repeats 5]

Writes a data set of ``n`` random ``size`` x ``size`` images to a temporary folder, then times a
load without the check, the first check (hashing every image and the cases table) and a repeated
check (remembered by the files' path, modification time and size). Prints median milliseconds.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from concepts import Dataset, DatasetInfo


def _ms(fn: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(a.n, a.size, a.size, 3), dtype=np.uint8)
    cases = pd.DataFrame({
        "case_id": [f"c{i:05d}" for i in range(a.n)],
        "label": rng.choice(["melanoma", "nevus"], a.n),
        "split": rng.choice(["train", "val", "test"], a.n),
        "ink": rng.integers(0, 2, a.n),
        "ruler": rng.integers(0, 2, a.n),
    })
    info = DatasetInfo("bench", "bench", ("melanoma", "nevus"), a.size, artifacts=("ink", "ruler"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench"
        t0 = time.perf_counter()
        Dataset.write(root, info, cases, images)
        write_ms = 1000 * (time.perf_counter() - t0)
        load_ms = _ms(lambda: Dataset.load(root), a.repeats)

        stamps = itertools.count(1_000_000_000_000_000_000)

        def cold() -> None:
            # a new modification time: the check remembered for the old files does not apply
            t = next(stamps)
            os.utime(root / "dataset.json", ns=(t, t))
            Dataset.load(root).verify()

        cold_ms = _ms(cold, a.repeats)
        ds = Dataset.load(root)
        ds.verify()
        warm_ms = _ms(ds.verify, a.repeats)
    mb = images.nbytes / 2**20
    print(f"images: {a.n} x {a.size}px ({mb:.0f} MiB); write incl. check: {write_ms:.0f} ms")
    print(f"load_ms: {load_ms:.1f}  first_check_ms: {cold_ms - load_ms:.1f}  repeat_check_ms: {warm_ms:.3f}")


if __name__ == "__main__":
    main()
