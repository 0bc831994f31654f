"""A "new clinic" for the test-time fix: DermSynth with ink planted on nevi instead of melanomas
(300 images, seed 77) added to the UI workspace as the data set ``clinic``; built once per run
by the workspace factory (tests/workbench/ui/test_ui_fix.py, tests/e2e/test_e2e_fix.py)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.support.ui import UI_SPEC, build_ui
from tests.support.workspaces import Builder, WorkspaceFactory, WorkspaceSpec

__all__ = ["CLINIC_SPEC", "add_clinic", "build_clinic", "proposing_draw"]

#: The workspace factory's key of the UI workspace plus the clinic.
CLINIC_SPEC = WorkspaceSpec.of("clinic", ui=UI_SPEC.digest(), n_images=300, image_size=64, seed=77,
                               confounders=["ink:nevus:0.6"])


def add_clinic(root: Path, name: str = "clinic") -> None:
    """Write the ink-on-nevi clinic into ``root``'s data sets."""
    from concepts.dermsynth import DermSynthConfig, generate_dermsynth, parse_confounder

    cfg = DermSynthConfig(n_images=300, image_size=64, seed=77, confounders=(parse_confounder("ink:nevus:0.6"),),
                          concept_examples=2, random_pool=2)
    with tempfile.TemporaryDirectory() as tmp:
        generate_dermsynth(cfg, tmp, workers=1)
        shutil.move(str(Path(tmp) / "dermsynth"), str(root / "datasets" / name))


def proposing_draw(root: Path, k: int = 4, draws: int = 8) -> int:
    """The first draw (seed) of ``k`` shots per class of the clinic's train split for which a fix
    is proposed (the page is tested on a proposal; which draws yield one is the science's)."""
    from concepts import Workspace
    from workbench.ui._fix import propose, shots_from_dataset

    ws = Workspace(root)
    for seed in range(draws):
        run = propose(ws, shots_from_dataset(ws, "clinic", "train", k, seed), "pool")
        if run.proposal.spec is not None:
            return seed
    raise AssertionError(f"no fix proposed in {draws} draws of k={k} on the ink-on-nevi clinic")


def build_clinic(factory: WorkspaceFactory) -> Builder:
    """The factory's builder of :data:`CLINIC_SPEC`: a copy of the UI workspace plus the clinic."""

    def build(home: Path) -> Path:
        shutil.copytree(factory.built(UI_SPEC, build_ui(factory)), home / "ws")
        add_clinic(home / "ws")
        return home / "ws"

    return build
