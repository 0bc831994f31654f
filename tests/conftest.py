"""Shared fixtures: a small demo workspace (tiny CNN on a small DermSynth set), built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keep the 2-core CI machine responsive: torch uses at most 2 threads in tests.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def small_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo workspace built with ``tiny-cnn`` on 400 DermSynth images at 64 px.

    Session-scoped and read-mostly: tests that modify a workspace should copy it first
    (``shutil.copytree``).
    """
    from concepts import Workspace
    from concepts.dermsynth import DermSynthConfig
    from workbench.services import DemoConfig, build_demo

    root = tmp_path_factory.mktemp("small_ws")
    cfg = DemoConfig(
        dermsynth=DermSynthConfig(n_images=400, image_size=64, concept_examples=16, random_pool=60),
        architecture="tiny-cnn",
        epochs=12,
    )
    build_demo(Workspace(root), cfg)
    return root


@pytest.fixture(scope="session")
def real_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A non-demo workspace made as a user would (tests/conftest_realws.py): test-made images
    with train/val/test splits and an ``ink`` column, ``workbench import folder``, then
    ``workbench train`` (tiny CNN, with its precomputation). Read-mostly: copy it to modify."""
    from conftest_realws import build_real_workspace

    root, _ = build_real_workspace(tmp_path_factory.mktemp("real_ws"))
    return root


@pytest.fixture(scope="session")
def ui_real_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A non-demo workspace with a mask per inked case (tests/conftest_ui_real.py), for the Case
    explorer and Interventions pages: built once per session; copy it before writing."""
    from conftest_ui_real import build_ui_real_workspace

    ws, _ = build_ui_real_workspace(tmp_path_factory.mktemp("ui_real"))
    return ws
