"""Activation extraction throughput vs a bare forward pass of the same model (one run).

Usage: python bench/extract.py [--n 384] [--architecture efficientnet-lite0]
       [--engine local|ray] [--ray-address HOST:PORT] [--device auto|cpu|cuda|mps] [--precision fp32|bf16|fp16]

Both sides process the same uint8 images with the same preprocessing and batch size under
``torch.inference_mode``; the extraction side also writes the activations of the demo's analysis
layers (block10, block15, pool) to a fresh on-disk cache. Each side runs three times, interleaved,
and the best time counts (the machine is shared and noisy). Last line: ``throughput_ratio: <x>``
(extraction images/s divided by bare-forward images/s). ``--engine ray`` extracts with the Ray
actor pool (a local Ray instance unless ``--ray-address`` names a cluster; the first run, which
starts the actors, is included in the warm-up); the bare forward always runs in this process on
``--device``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from concepts import ActivationCache, ClassifierModel, Compute, ImageSet
from concepts.models import on_device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=384)
    ap.add_argument("--architecture", default="efficientnet-lite0")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engine", choices=["local", "ray"], default="local")
    ap.add_argument("--ray-address", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args()
    compute = Compute(device=args.device, engine=args.engine, ray_address=args.ray_address,
                      precision=args.precision)

    model = ClassifierModel.build(args.architecture, ("melanoma", "nevus"))
    layers = ["block10", "block15", "pool"] if args.architecture == "efficientnet-lite0" else ["conv2", "conv3", "pool"]
    size = model.preprocess.size
    images = np.random.default_rng(0).integers(0, 255, (args.n, size, size, 3), dtype=np.uint8)

    def bare() -> float:
        with on_device(model, args.device) as dev, torch.inference_mode():
            t = time.perf_counter()
            for i in range(0, args.n, args.batch_size):
                model.module(model.preprocess(images[i : i + args.batch_size]).to(dev)).cpu()
            return time.perf_counter() - t

    def extract() -> float:
        with tempfile.TemporaryDirectory() as d:
            cache = ActivationCache(d, batch_size=args.batch_size, compute=compute, ray_min_rows=0)
            t = time.perf_counter()
            cache.get(model, layers, ImageSet.from_array("bench", images))
            return time.perf_counter() - t

    bare()  # warm-up
    if args.engine == "ray":
        extract()  # connects to / starts Ray and its actors once
    bare_t, ext_t = [], []
    for _ in range(args.repeats):
        bare_t.append(bare())
        ext_t.append(extract())
    b, e = min(bare_t), min(ext_t)
    print(f"model: {args.architecture} ({model.model_id}), images: {args.n} at {size} px, layers: {layers}, "
          f"engine: {args.engine}, device: {args.device}, precision: {args.precision}")
    print(f"bare forward:   {b:.2f} s  ({args.n / b:.1f} img/s)")
    print(f"extract+cache:  {e:.2f} s  ({args.n / e:.1f} img/s)  [includes hashing + writing .npy]")
    print(f"throughput_ratio: {b / e:.3f}")


if __name__ == "__main__":
    main()
