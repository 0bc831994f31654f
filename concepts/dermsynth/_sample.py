"""DermSynth's cases tables: labels, splits, criteria, artifacts and render seeds, no images.

:func:`sample_dermsynth` draws both tables of a DermSynth data set from a
:class:`concepts.dermsynth._config.DermSynthConfig`; :mod:`concepts.dermsynth._generate` draws and writes
them. The class-conditional criterion frequencies and the split
shares the sampler draws from are defined here too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from concepts.data import ARTIFACTS, CRITERIA
from concepts.dermsynth._config import _SEED_BLOCK, DERMSYNTH_CLASSES, DermSynthConfig
from concepts.dermsynth._lesion import skin_tone_group, skin_tone_value

__all__ = [
    "CRITERION_FREQUENCIES",
    "CRITERION_POINTS",
    "SPLIT_FRACTIONS",
    "sample_dermsynth",
]


#: ``criterion -> (P(present | melanoma), P(present | non-melanoma))`` from derm7pt's 1011 cases
#: (shared/reference/seven-point-checklist.md).
CRITERION_FREQUENCIES: Mapping[str, tuple[float, float]] = {
    "pigment_network": (0.548, 0.121),
    "blue_whitish_veil": (0.476, 0.099),
    "vascular_structures": (0.183, 0.033),
    "pigmentation": (0.560, 0.216),
    "streaks": (0.603, 0.130),
    "dots_and_globules": (0.877, 0.299),
    "regression_structures": (0.437, 0.188),
}

#: 7-point-checklist points of each criterion (major 2, minor 1); a score >= 3 suggests melanoma.
CRITERION_POINTS: Mapping[str, int] = {
    "pigment_network": 2,
    "blue_whitish_veil": 2,
    "vascular_structures": 2,
    "pigmentation": 1,
    "streaks": 1,
    "dots_and_globules": 1,
    "regression_structures": 1,
}

#: Splits of the main set and their shares (stratified by class).
SPLIT_FRACTIONS: Mapping[str, float] = {"train": 0.6, "val": 0.2, "test_debiased": 0.2}

# Loading of each criterion on the shared latent severity (a Gaussian copula: the marginals stay
# exactly the reference frequencies, the criteria become mildly positively correlated).
_LATENT_LOADING = 0.2


def _sample_criteria(rng: np.random.Generator, melanoma: np.ndarray) -> np.ndarray:
    """``(n, 7)`` 0/1 criteria: class-conditional marginals, shared latent severity."""
    n = len(melanoma)
    p_mel = np.array([CRITERION_FREQUENCIES[c][0] for c in CRITERIA])
    p_nev = np.array([CRITERION_FREQUENCIES[c][1] for c in CRITERIA])
    z = rng.standard_normal(n)[:, None]
    e = rng.standard_normal((n, len(CRITERIA)))
    latent = _LATENT_LOADING * z + math.sqrt(1 - _LATENT_LOADING**2) * e
    p = np.where(np.asarray(melanoma, bool)[:, None], p_mel[None, :], p_nev[None, :])
    return (latent > ndtri(1 - p)).astype(np.int64)


def _render_seeds(seed: int, n: int, block: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 7, block])
    return rng.choice(_SEED_BLOCK, size=n, replace=False).astype(np.int64) + block * _SEED_BLOCK


def _common_columns(labels: np.ndarray, crit: np.ndarray, arts: np.ndarray, seeds: np.ndarray) -> dict[str, Any]:
    cols: dict[str, Any] = {c: crit[:, i] for i, c in enumerate(CRITERIA)}
    cols.update({a: arts[:, i].astype(np.int64) for i, a in enumerate(ARTIFACTS)})
    points = np.array([CRITERION_POINTS[c] for c in CRITERIA])
    cols["seven_point_score"] = (crit * points).sum(axis=1).astype(np.int64)
    tone = np.array([skin_tone_value(int(s)) for s in seeds], dtype=np.float64)
    cols["skin_tone"] = [skin_tone_group(t) for t in tone]
    cols["skin_tone_value"] = np.round(tone, 6)
    cols["render_seed"] = seeds.astype(np.int64)
    return cols


def _sample_main(config: DermSynthConfig) -> pd.DataFrame:
    n = config.n_images
    n_mel = round(n * config.melanoma_share)
    rng = np.random.default_rng([config.seed, 1])
    labels = np.array(["melanoma"] * n_mel + ["nevus"] * (n - n_mel), dtype=object)
    split = np.empty(n, dtype=object)
    for cls in DERMSYNTH_CLASSES:
        idx = rng.permutation(np.flatnonzero(labels == cls))
        k_train = round(SPLIT_FRACTIONS["train"] * len(idx))
        k_val = round(SPLIT_FRACTIONS["val"] * len(idx))
        split[idx[:k_train]] = "train"
        split[idx[k_train : k_train + k_val]] = "val"
        split[idx[k_train + k_val :]] = "test_debiased"
    order = rng.permutation(n)
    labels, split = labels[order], split[order]
    crit = _sample_criteria(np.random.default_rng([config.seed, 2]), labels == "melanoma")
    arts = np.zeros((n, len(ARTIFACTS)), dtype=np.int64)
    test = split == "test_debiased"
    for k, artifact in enumerate(ARTIFACTS):
        arng = np.random.default_rng([config.seed, 3, k])  # one stream per artifact
        u = arng.random(n)
        conf = config.planted(artifact)
        if conf is None:
            arts[:, k] = u < config.base_rate
            continue
        p = np.where(labels == conf.cls, conf.prevalence, config.base_rate)
        arts[~test, k] = u[~test] < p[~test]
        for cls in DERMSYNTH_CLASSES:  # exactly debiased_rate of each class: independent of the label
            idx = arng.permutation(np.flatnonzero(test & (labels == cls)))
            arts[idx[: round(config.debiased_rate * len(idx))], k] = 1
    seeds = _render_seeds(config.seed, n, 0)
    return pd.DataFrame(
        {
            "case_id": [f"ds{i:06d}" for i in range(n)],
            "label": labels.astype(str),
            "split": split.astype(str),
            **_common_columns(labels, crit, arts, seeds),
        }
    )


def _balanced_labels(rng: np.random.Generator, n: int) -> np.ndarray:
    n_mel = (n + 1) // 2
    return rng.permutation(np.array(["melanoma"] * n_mel + ["nevus"] * (n - n_mel), dtype=object))


def _sample_concepts(config: DermSynthConfig) -> pd.DataFrame:
    rng = np.random.default_rng([config.seed, 4])
    n = config.concept_examples
    concepts = (*CRITERIA, *ARTIFACTS)
    n_bases = n * len(concepts) + config.random_pool
    seeds = _render_seeds(config.seed, n_bases, 1)
    labels_l, crit_l, arts_l, seeds_l, set_l, pol_l, pair_l = [], [], [], [], [], [], []
    for j, concept in enumerate(concepts):
        labels = _balanced_labels(rng, n)
        crit = _sample_criteria(rng, labels == "melanoma")
        arts = (rng.random((n, len(ARTIFACTS))) < config.base_rate).astype(np.int64)
        s = seeds[j * n : (j + 1) * n]
        flags, col = (crit, CRITERIA.index(concept)) if concept in CRITERIA else (arts, ARTIFACTS.index(concept))
        pos, neg = flags.copy(), flags.copy()
        pos[:, col], neg[:, col] = 1, 0
        pos_crit, neg_crit = (pos, neg) if flags is crit else (crit, crit)
        pos_arts, neg_arts = (pos, neg) if flags is arts else (arts, arts)
        # interleave counterfactual twins: positive i, negative i (same lesion, same seed)
        labels_l.append(np.repeat(labels, 2))
        crit_l.append(np.stack([pos_crit, neg_crit], axis=1).reshape(2 * n, -1))
        arts_l.append(np.stack([pos_arts, neg_arts], axis=1).reshape(2 * n, -1))
        seeds_l.append(np.repeat(s, 2))
        set_l.append(np.full(2 * n, concept, dtype=object))
        pol_l.append(np.tile(np.array(["positive", "negative"], dtype=object), n))
        pair_l.append(np.repeat(np.arange(n), 2))
    m = config.random_pool
    labels = _balanced_labels(rng, m)
    labels_l.append(labels)
    crit_l.append(_sample_criteria(rng, labels == "melanoma"))
    arts_l.append((rng.random((m, len(ARTIFACTS))) < config.base_rate).astype(np.int64))
    seeds_l.append(seeds[n * len(concepts) :])
    set_l.append(np.full(m, "random", dtype=object))
    pol_l.append(np.full(m, "random", dtype=object))
    pair_l.append(np.full(m, -1))
    labels = np.concatenate(labels_l)
    total = len(labels)
    return pd.DataFrame(
        {
            "case_id": [f"dc{i:06d}" for i in range(total)],
            "label": labels.astype(str),
            "split": "concepts",
            "concept_set": np.concatenate(set_l).astype(str),
            "polarity": np.concatenate(pol_l).astype(str),
            "pair": np.concatenate(pair_l).astype(np.int64),
            **_common_columns(labels, np.concatenate(crit_l), np.concatenate(arts_l), np.concatenate(seeds_l)),
        }
    )


def sample_dermsynth(config: DermSynthConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cases tables of a DermSynth data set, without drawing any image.

    Parameters
    ----------
    config
        Settings (default :class:`DermSynthConfig`).

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        The main set's table (``case_id``, ``label``, ``split``, criteria, artifacts,
        ``seven_point_score``, ``skin_tone``, ``skin_tone_value``, ``render_seed``) and the
        concept sets' table (also ``concept_set``, ``polarity`` and ``pair``: the twin index in
        its set, -1 in the random pool), exactly as :func:`generate_dermsynth` writes them.
    """
    cfg = config or DermSynthConfig()
    return _sample_main(cfg), _sample_concepts(cfg)
