"""Ranked confounder report with a trained model and real TCAV on DermSynth (slow).

The model is the demo's (EfficientNet-Lite0, logistic head trained on 400 DermSynth images with
the default planted pairing ink:melanoma + patch:nevus); it never saw a ruler ride with
melanoma. The report is asked about data in which the ruler *does* ride with melanoma about as
strongly as the ink (a data set the model was not trained on). Co-occurrence alone cannot tell
the two apart; only the model's sensitivity can.

- ``test_tcav_contributes_to_the_order``: swapping the ink and ruler TCAV rows must swap their
  order (fails if the score ignored TCAV, or if TCAV found nothing for either).
- ``test_artifact_the_model_never_learned_ranks_below_the_learned_one``: the scientific claim
  itself. It FAILS today (strict xfail): this model's TCAV is indiscriminate across artifacts —
  every artifact concept "raises melanoma" by 0.36-0.54 at block10, the never-learned ruler
  (0.47) more than the ink (0.38) — so the ruler ranks first. The score follows TCAV; TCAV does
  not yet separate what the model learned from what it did not (counterfactual flip rates do:
  see the demo summary). When TCAV is fixed this test passes and the xfail must go.
"""

from __future__ import annotations

import pandas as pd
import pytest

from concepts import Workspace
from concepts._cooccurrence import attribute_class_table
from concepts._dermsynth import DermSynthConfig, parse_confounder, sample_dermsynth
from concepts._tcav import run_tcav
from graph._confounders import rank_confounders
from workbench._demo import DemoConfig, build_demo

pytestmark = pytest.mark.slow

SHIFTED = tuple(parse_confounder(t) for t in ("ink:melanoma:0.6", "patch:nevus:0.6", "ruler:melanoma:0.6"))


@pytest.fixture(scope="module")
def tcav_and_cooc(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    root = tmp_path_factory.mktemp("lite_ws")
    cfg = DemoConfig(dermsynth=DermSynthConfig(n_images=400, image_size=96, concept_examples=24,
                                               random_pool=80))
    ws = Workspace(root)
    build_demo(ws, cfg)
    run_tcav(ws, runs=10, seed=0)
    tc = pd.read_parquet(ws.results_dir / "tcav.parquet")
    cases = sample_dermsynth(DermSynthConfig(n_images=1000, seed=7, concept_examples=2, random_pool=2,
                                             confounders=SHIFTED))[0]
    return tc, attribute_class_table(cases)


def _rank(rep: pd.DataFrame, concept: str, cls: str = "melanoma") -> int:
    return int(rep[(rep["concept"] == concept) & (rep["class"] == cls)]["rank"].iloc[0])


def _swap(tc: pd.DataFrame) -> pd.DataFrame:
    return tc.assign(concept=tc["concept"].map({"ink": "ruler", "ruler": "ink"}).fillna(tc["concept"]))


def test_tcav_contributes_to_the_order(tcav_and_cooc: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tc, cooc = tcav_and_cooc
    rep = rank_confounders(cooc, tc)
    print(rep[["rank", "concept", "class", "score", "association", "reliance_strength"]].head(6).to_string())
    ink = rep[(rep["concept"] == "ink") & (rep["class"] == "melanoma")].iloc[0]
    ruler = rep[(rep["concept"] == "ruler") & (rep["class"] == "melanoma")].iloc[0]
    assert ink["association"] > 1.0 and ruler["association"] > 1.0  # both co-occur
    assert ink["reliance_strength"] != ruler["reliance_strength"]
    ink_first = _rank(rep, "ink") < _rank(rep, "ruler")
    swapped = rank_confounders(cooc, _swap(tc))
    assert (_rank(swapped, "ink") < _rank(swapped, "ruler")) != ink_first
    assert {_rank(rep, "ink"), _rank(rep, "ruler")} == {1, 2}


@pytest.mark.xfail(strict=True, reason="TCAV on the demo model is indiscriminate across artifacts "
                   "(never-learned ruler 0.47 vs ink 0.38 at block10): see the module docstring")
def test_artifact_the_model_never_learned_ranks_below_the_learned_one(
    tcav_and_cooc: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    tc, cooc = tcav_and_cooc
    rep = rank_confounders(cooc, tc)
    assert _rank(rep, "ink") < _rank(rep, "ruler")
