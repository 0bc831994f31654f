"""Unsupervised route on DermSynth with the demo model's features (slow).

The demo model is EfficientNet-Lite0 with ImageNet weights and a trained linear head on pooled
features; every layer below the head keeps the ImageNet weights, so the activations clustered
here (``block10``, the workspace's first analysis layer) are exactly the demo model's. The
artifact flags are used only to score the clusters, never to find them. Clusters are found on
``train`` and tested on ``val`` (never on the cases they were found on).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from concepts import ClassifierModel
from concepts.dermsynth import DermSynthConfig, generate_dermsynth, parse_confounder
from concepts.discovery import cluster_dataset

pytestmark = pytest.mark.slow

LAYER = "block10"


def _clusters(tmp_path: Path, confounders: tuple[str, ...]):  # type: ignore[no-untyped-def]
    cfg = DermSynthConfig(n_images=1000, image_size=128, seed=0, concept_examples=2, random_pool=2,
                          confounders=tuple(parse_confounder(c) for c in confounders))
    ds = generate_dermsynth(cfg, tmp_path).main
    model = ClassifierModel.build("efficientnet-lite0", ds.classes)
    return ds, cluster_dataset(ds, model, LAYER, split="train")


def _share(ds, res, cid: int, artifact: str) -> float:  # type: ignore[no-untyped-def]
    return float(ds.cases[artifact].to_numpy()[res.members(cid)].mean())


@pytest.mark.parametrize(
    "pairing",
    [(("ink", "melanoma"), ("patch", "nevus")), (("ruler", "nevus"), ("hair", "melanoma"))],
    ids=["default", "ruler-nevus+hair-melanoma"],
)
def test_dermsynth_train_split_recovers_the_artifact_clusters(
    tmp_path: Path, pairing: tuple[tuple[str, str], ...]
) -> None:
    ds, res = _clusters(tmp_path, tuple(f"{a}:{c}:0.6" for a, c in pairing))
    print(res.clusters[["rank", "cluster", "class", "size", "n_test_hits", "purity", "odds_ratio",
                        "p_adjusted", "suspicious"]].to_string())
    top3 = res.clusters.head(3)
    for artifact, cls in pairing:
        shares = {int(c): _share(ds, res, int(c), artifact) for c in res.clusters["cluster"]}
        best = max(shares, key=lambda c: shares[c])
        row = res.cluster(best)
        print(f"{artifact}:{cls}: cluster {best} rank {row['rank']} size {row['size']} "
              f"share {shares[best]:.2f} purity {row['purity']:.2f} p_adj {row['p_adjusted']:.2g}")
        assert shares[best] >= 0.8
        assert row["class"] == cls and bool(row["suspicious"])
        # found on train, flagged on the held-out val split; ranked among the first three (the
        # held-out test is weaker than testing on the discovery cases, which ranked them 1-2)
        assert best in set(top3["cluster"].astype(int))
        assert len(res.exemplars(best)) == 8
        assert np.isin(res.exemplars(best), res.members(best)).all()
    assert "silhouette" in res.k_selection
