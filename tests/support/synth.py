"""A tiny synthetic "dermoscopy" world for the CAV / TCAV tests and the tests of the bank and the
concepts CLI.

Images are 64 px: a dark disc ("lesion") on skin-coloured noise. The class decides the lesion's
shape noise; concepts are drawn on top, each from its own random stream so that counterfactual
twins differ only in the concept:

* ``veil`` (criterion): a blue blob inside the lesion, 85 % of melanomas, 10 % of nevi;
* ``patch`` (artifact): a green square in a corner, 90 % of nevi, 2 % of melanomas (planted);
* ``ink`` (artifact): a purple arc, independent of the class (25 %).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from concepts import ClassifierModel, Dataset, DatasetInfo
from concepts.models import train_end_to_end

__all__ = ["CLASSES", "CONCEPTS", "PREVALENCE", "SIZE", "make_concept_sets", "make_dataset", "render",
           "trained_model"]

SIZE = 64
CLASSES = ("melanoma", "nevus")
CONCEPTS = ("veil", "patch", "ink")
PREVALENCE = {"veil": (0.85, 0.10), "patch": (0.02, 0.90), "ink": (0.25, 0.25)}

_Y, _X = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


def render(seed: int, melanoma: bool, flags: dict[str, bool]) -> np.ndarray:
    """One image; each component uses its own stream so twins differ only in the flags."""
    base = np.random.default_rng([seed, 0])
    img = np.empty((SIZE, SIZE, 3), np.float32)
    tone = base.uniform(170, 220)
    img[:] = np.array([tone, tone * 0.78, tone * 0.65])
    img += base.normal(0, 6, (SIZE, SIZE, 1))
    cx, cy = base.uniform(26, 38, 2)
    r = base.uniform(11, 15)
    ang = np.arctan2(_Y - cy, _X - cx)
    wobble = (0.25 if melanoma else 0.05) * np.sin(base.integers(3, 7) * ang + base.uniform(0, 6))
    les = np.hypot(_X - cx, _Y - cy) < r * (1 + wobble)
    img[les] = img[les] * 0.35 + np.array([60, 35, 20]) * (0.6 if melanoma else 1.0)
    if flags.get("veil"):
        g = np.random.default_rng([seed, 1])
        bx, by = cx + g.uniform(-4, 4), cy + g.uniform(-4, 4)
        blob = (np.hypot(_X - bx, _Y - by) < g.uniform(5, 7)) & les
        img[blob] = img[blob] * 0.3 + np.array([90, 110, 170]) * 0.7
    if flags.get("patch"):
        g = np.random.default_rng([seed, 2])
        x0, y0 = (int(v) for v in g.choice([2, 48], 2))
        img[y0 : y0 + 13, x0 : x0 + 13] = np.array([40, 190, 60]) + g.normal(0, 8, 3)
    if flags.get("ink"):
        g = np.random.default_rng([seed, 3])
        rr = r + g.uniform(5, 9)
        a0 = g.uniform(0, 2 * np.pi)
        arc = (np.abs(np.hypot(_X - cx, _Y - cy) - rr) < 1.3) & (np.cos(ang - a0) > 0.2)
        img[arc] = np.array([110, 40, 140])
    return np.clip(img, 0, 255).astype(np.uint8)


def make_dataset(root, n: int = 600, seed: int = 0, name: str = "synth") -> Dataset:
    """Main data set: splits train / val, 0/1 concept columns, the planted correlations."""
    rng = np.random.default_rng(seed)
    rows, imgs = [], []
    for i in range(n):
        mel = bool(i % 2 == 0)
        flags = {c: bool(rng.random() < PREVALENCE[c][0 if mel else 1]) for c in CONCEPTS}
        imgs.append(render(seed * 100_000 + i, mel, flags))
        rows.append({"case_id": f"c{i:05d}", "label": CLASSES[0 if mel else 1],
                     "split": "train" if i < int(0.7 * n) else "val", **{c: int(v) for c, v in flags.items()}})
    info = DatasetInfo(name=name, kind="synth", classes=CLASSES, image_size=SIZE,
                       concepts=("veil",), artifacts=("patch", "ink"))
    return Dataset.write(root / name, info, pd.DataFrame(rows), np.stack(imgs))


def make_concept_sets(root, n_per: int = 40, pool: int = 200, seed: int = 1, name: str = "synth-concepts") -> Dataset:
    """Concept-sets data set: per concept ``n_per`` positives and their twins as negatives
    (balanced across classes, other concepts off), plus a random pool of ordinary cases."""
    rng = np.random.default_rng(seed)
    rows, imgs = [], []
    k = 0
    for c in CONCEPTS:
        for j in range(n_per):
            mel = j % 2 == 0
            s = seed * 100_000 + k
            for pol, on in (("positive", True), ("negative", False)):
                imgs.append(render(s, mel, {c: on}))
                rows.append({"case_id": f"{c}-{pol}-{j}", "label": CLASSES[0 if mel else 1], "pair": k,
                             "concept_set": c, "polarity": pol, **{cc: int(cc == c and on) for cc in CONCEPTS}})
            k += 1
    for j in range(pool):
        mel = j % 2 == 0
        flags = {c: bool(rng.random() < PREVALENCE[c][0 if mel else 1]) for c in CONCEPTS}
        imgs.append(render(seed * 100_000 + k, mel, flags))
        k += 1
        rows.append({"case_id": f"random-{j}", "label": CLASSES[0 if mel else 1], "concept_set": "random",
                     "polarity": "random", "pair": -1, **{c: int(v) for c, v in flags.items()}})
    df = pd.DataFrame(rows)
    df["split"] = "concepts"
    info = DatasetInfo(name=name, kind="dermsynth-concepts", classes=CLASSES, image_size=SIZE,
                       concepts=("veil",), artifacts=("patch", "ink"))
    return Dataset.write(root / name, info, df, np.stack(imgs))


@lru_cache(maxsize=2)
def _trained_state(n: int, seed: int, epochs: int, root: str) -> tuple[dict, tuple]:
    import pathlib

    ds = Dataset.load(pathlib.Path(root) / "synth")
    model = ClassifierModel.build("tiny-cnn", CLASSES, seed=seed)
    tr = ds.indices("train")
    train_end_to_end(model, np.asarray(ds.images[tr]), ds.labels(tr), epochs=epochs, seed=seed)
    return {k: v.clone() for k, v in model.module.state_dict().items()}, ds.classes


def trained_model(root, *, n: int = 600, seed: int = 0, epochs: int = 6) -> ClassifierModel:
    """TinyCNN trained end to end on the synthetic data set under ``root`` (memoised)."""
    sd, classes = _trained_state(n, seed, epochs, str(root))
    model = ClassifierModel.build("tiny-cnn", classes, seed=seed)
    model.module.load_state_dict(sd)
    model.invalidate_id()
    return model
