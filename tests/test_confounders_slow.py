"""Ranked confounder report with a trained model and real TCAV on DermSynth (slow).

The model (tiny-cnn, trained end to end on 400 DermSynth images with the default planted
pairing ink:melanoma + patch:nevus) never saw a ruler ride with melanoma. The report is then
asked about data in which the ruler *does* ride with melanoma as strongly as the ink (a data
set the model was not trained on): the ruler co-occurs, but the model's TCAV shows no
sensitivity to it, so it must rank below the ink — on the evidence of TCAV, since on
co-occurrence alone the two are tied. Swapping the two concepts' TCAV rows must swap their
order: the ranking follows the measured sensitivity, not the generator.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from concepts import Workspace
from concepts._cooccurrence import attribute_class_table
from concepts._dermsynth import DermSynthConfig, parse_confounder, sample_dermsynth
from concepts._tcav import run_tcav
from graph._confounders import rank_confounders

pytestmark = pytest.mark.slow

SHIFTED = tuple(parse_confounder(t) for t in ("ink:melanoma:0.6", "patch:nevus:0.6", "ruler:melanoma:0.6"))


def _tcav(small_workspace: Path, tmp_path: Path) -> pd.DataFrame:
    root = tmp_path / "ws"
    shutil.copytree(small_workspace, root)
    ws = Workspace(root)
    path = ws.results_dir / "tcav.parquet"
    if not path.is_file():
        run_tcav(ws, runs=6, seed=0)
    return pd.read_parquet(path)


def _row(rep: pd.DataFrame, concept: str, cls: str = "melanoma") -> pd.Series:
    return rep[(rep["concept"] == concept) & (rep["class"] == cls)].iloc[0]


def test_an_artifact_the_model_ignores_ranks_below_one_it_is_sensitive_to(
    small_workspace: Path, tmp_path: Path
) -> None:
    tc = _tcav(small_workspace, tmp_path)
    cases = sample_dermsynth(DermSynthConfig(n_images=1000, seed=7, concept_examples=2, random_pool=2,
                                             confounders=SHIFTED))[0]
    cooc = attribute_class_table(cases)
    rep = rank_confounders(cooc, tc)
    print(rep[["rank", "concept", "class", "score", "association", "reliance", "tcav_significant"]]
          .head(8).to_string())
    ink, ruler = _row(rep, "ink"), _row(rep, "ruler")
    # both co-occur strongly with melanoma in the analysed data
    assert ink["association"] > 1.0 and ruler["association"] > 1.0
    # TCAV contributed: the trained model is sensitive to ink, not to the ruler
    assert bool(ink["tcav_significant"]) and ink["reliance_strength"] > 0.05
    assert ruler["reliance_strength"] < ink["reliance_strength"]
    assert ink["rank"] < ruler["rank"] and ink["score"] > ruler["score"]
    assert ink["rank"] <= 2
    # without TCAV the two are ranked on co-occurrence alone (their order is the data's)
    bare = rank_confounders(cooc)
    assert {_row(bare, "ink")["rank"], _row(bare, "ruler")["rank"]} <= {1, 2, 3}
    # swap the two concepts' TCAV rows: the order swaps
    swapped = tc.assign(concept=tc["concept"].map({"ink": "ruler", "ruler": "ink"}).fillna(tc["concept"]))
    rep_s = rank_confounders(cooc, swapped)
    assert _row(rep_s, "ruler")["rank"] < _row(rep_s, "ink")["rank"]
