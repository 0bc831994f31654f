"""Activation extraction throughput vs a bare forward pass of the same model (one run).

Usage: python bench/extract.py [--n 384] [--architecture efficientnet-lite0]

Both sides process the same uint8 images with the same preprocessing and batch size under
``torch.inference_mode``; the extraction side also writes the activations of the demo's analysis
layers (block10, block15, pool) to a fresh on-disk cache. Each side runs three times, interleaved,
and the best time counts (the machine is shared and noisy). Last line: ``throughput_ratio: <x>``
(extraction images/s divided by bare-forward images/s).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from concepts import ActivationCache, ClassifierModel, ImageSet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=384)
    ap.add_argument("--architecture", default="efficientnet-lite0")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    model = ClassifierModel.build(args.architecture, ("melanoma", "nevus"))
    layers = ["block10", "block15", "pool"] if args.architecture == "efficientnet-lite0" else ["conv2", "conv3", "pool"]
    size = model.preprocess.size
    images = np.random.default_rng(0).integers(0, 255, (args.n, size, size, 3), dtype=np.uint8)

    def bare() -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, args.n, args.batch_size):
                model.module(model.preprocess(images[i : i + args.batch_size]))
        return time.perf_counter() - t

    def extract() -> float:
        with tempfile.TemporaryDirectory() as d:
            cache = ActivationCache(d, batch_size=args.batch_size)
            t = time.perf_counter()
            cache.get(model, layers, ImageSet.from_array("bench", images))
            return time.perf_counter() - t

    bare()  # warm-up
    bare_t, ext_t = [], []
    for _ in range(args.repeats):
        bare_t.append(bare())
        ext_t.append(extract())
    b, e = min(bare_t), min(ext_t)
    print(f"model: {args.architecture} ({model.model_id}), images: {args.n} at {size} px, layers: {layers}")
    print(f"bare forward:   {b:.2f} s  ({args.n / b:.1f} img/s)")
    print(f"extract+cache:  {e:.2f} s  ({args.n / e:.1f} img/s)  [includes hashing + writing .npy]")
    print(f"throughput_ratio: {b / e:.3f}")


if __name__ == "__main__":
    main()
