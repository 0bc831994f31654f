"""Ranked confounder report with a trained model and TCAV on DermSynth (slow).

Two demo workspaces (tiny-cnn trained end to end on 400 DermSynth images, TCAV with 6 random
runs): the default planted pairing and a different one. The planted pairs must rank first and
second; the report never reads which pairs were planted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from concepts import Workspace
from concepts._dermsynth import DermSynthConfig
from concepts._tcav import run_tcav
from graph._confounders import workspace_confounders
from workbench._demo import DemoConfig, build_demo

pytestmark = pytest.mark.slow


def _with_tcav(root: Path) -> Workspace:
    ws = Workspace(root)
    if not (ws.results_dir / "tcav.parquet").is_file():
        run_tcav(ws, runs=6, seed=0)
    return ws


def _top2(ws: Workspace) -> set[tuple[str, str]]:
    rep = workspace_confounders(ws)
    print(rep[["rank", "concept", "class", "score", "odds_ratio", "reliance", "tcav_significant"]]
          .head(5).to_string())
    assert rep["reliance"].notna().any()
    assert (rep["score"].iloc[:2] > 2 * rep["score"].iloc[2]).all()
    return set(zip(rep["concept"][:2], rep["class"][:2], strict=True))


def test_default_pairing_ranks_first_and_second(small_workspace: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(small_workspace, root)
    assert _top2(_with_tcav(root)) == {("ink", "melanoma"), ("patch", "nevus")}


def test_other_pairing_ranks_first_and_second(tmp_path: Path) -> None:
    cfg = DemoConfig(
        dermsynth=DermSynthConfig(n_images=400, image_size=64, concept_examples=16, random_pool=60,
                                  confounders=("ruler:nevus:0.6", "hair:melanoma:0.6")),
        architecture="tiny-cnn",
        epochs=12,
    )
    ws = Workspace(tmp_path / "ws")
    build_demo(ws, cfg)
    assert _top2(_with_tcav(ws.root)) == {("ruler", "nevus"), ("hair", "melanoma")}
