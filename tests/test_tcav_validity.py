"""Scientific validity of TCAV on DermSynth (slow: these train or load real models).

* TinyCNN trained end to end on a small DermSynth set with a strongly planted confounder
  (patch: 90 % of nevi, 2 % of melanomas): the patch is significant in its planted direction after
  Holm correction, and random-image "concepts" are almost never called significant.
* The demo model (EfficientNet-Lite0, 128 px; ``WORKBENCH_DEMO_WORKSPACE`` may point at a built
  demo workspace to skip the ~7 minute build): planted confounders come out in their planted
  direction, and rendered criteria the model uses come out significant.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from concepts import Workspace
from concepts._bank import ConceptBank
from concepts._tcav import TCAVSetup, run_tcav

pytestmark = pytest.mark.slow


def _row(table, concept, cls, layer):
    sel = table[(table["concept"] == concept) & (table["class"] == cls) & (table["layer"] == layer)]
    assert len(sel) == 1
    return sel.iloc[0]


@pytest.fixture(scope="module")
def planted_ws(tmp_path_factory) -> Workspace:
    from concepts._dermsynth import DermSynthConfig
    from workbench._demo import DemoConfig, build_demo

    ws = Workspace(tmp_path_factory.mktemp("planted"))
    cfg = DemoConfig(
        dermsynth=DermSynthConfig(n_images=800, image_size=64, confounders=("patch:nevus:0.9",),
                                  base_rate=0.02, concept_examples=40, random_pool=120),
        architecture="tiny-cnn",
        epochs=15,
    )
    build_demo(ws, cfg)
    return ws


def test_strongly_planted_confounder_is_significant_in_its_direction(planted_ws):
    rep = run_tcav(planted_ws, ["conv2"], runs=20, counterpart="negative", save=False)
    mel = _row(rep.table, "patch", "melanoma", "conv2")
    nev = _row(rep.table, "patch", "nevus", "conv2")
    for row, sign in ((mel, -1), (nev, 1)):  # patch pushes towards nevus
        assert row["significant"], row["verdict"]
        assert np.sign(row["effect"]) == sign and row["p_adjusted"] < 1e-3


def test_random_image_concepts_are_rarely_significant(planted_ws):
    setup = TCAVSetup.from_workspace(planted_ws)
    ds = planted_ws.dataset()
    rng = np.random.default_rng(0)
    train = ds.indices("train")
    ids = ds.cases["case_id"].to_numpy()
    bank = ConceptBank(random_pool=setup.bank.random_pool, datasets_dir=planted_ws.datasets_dir)
    bank.register_dataset(ds)
    for i in range(24):
        rows = rng.choice(train, 40, replace=False)
        bank.add_from_cases(f"noise_{i}", "custom", "random images", ds, ids[rows].tolist())
    setup.bank = bank
    rep = run_tcav(setup, ["conv1", "conv2"], runs=20, save=False)
    assert len(rep.table) == 24 * 2 * 2
    assert rep.table["significant"].mean() <= 0.05


@pytest.fixture(scope="module")
def demo_ws(tmp_path_factory) -> Workspace:
    given = os.environ.get("WORKBENCH_DEMO_WORKSPACE")
    if given and Path(given, "workspace.json").is_file():
        return Workspace(given)
    from workbench._demo import build_demo

    ws = Workspace(tmp_path_factory.mktemp("demo"))
    build_demo(ws)
    return ws


@pytest.fixture(scope="module")
def demo_report(demo_ws, tmp_path_factory):
    setup = TCAVSetup.from_workspace(demo_ws)
    setup.results_dir = tmp_path_factory.mktemp("demo_results")  # leave the workspace untouched
    return run_tcav(setup, ["block10", "block15"], runs=20)


def test_demo_planted_confounders_point_the_planted_way(demo_report):
    tab = demo_report.table
    patch = _row(tab, "patch", "melanoma", "block15")  # patch planted with nevus
    assert patch["significant"] and patch["effect"] < -0.2, patch["verdict"]
    assert _row(tab, "patch", "nevus", "block15")["effect"] > 0.2
    ink = [_row(tab, "ink", "melanoma", lay) for lay in ("block10", "block15")]  # ink planted with melanoma
    assert all(r["effect"] > 0.1 for r in ink)
    assert min(r["p_value"] for r in ink) < 0.01


def test_demo_rendered_criteria_come_out_significant(demo_report):
    tab = demo_report.table
    crit = tab[(tab["group"] == "criterion") & (tab["class"] == "melanoma") & tab["significant"]]
    assert (crit["effect"] > 0).sum() >= 2, crit[["concept", "layer", "effect", "verdict"]]
    assert set(crit["concept"]) & {"blue_whitish_veil", "vascular_structures", "pigment_network"}
