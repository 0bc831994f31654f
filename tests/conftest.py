"""Fixtures shared across the test folders: the workspace factory (each configuration built once
per run, tests/support/workspaces.py) and the workspaces the tests of several folders use.

Every session workspace is a private copy of the run's one build, so a test process may write
to it without disturbing another process; tests that modify a workspace still copy it first
(``shutil.copytree``), as other tests of the same process read it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.workspaces import (
    WorkspaceFactory,
    build_demo_into,
    demo_spec,
    run_root,
    small_demo_config,
)

# Keep the 2-core CI machine responsive: torch uses at most 2 threads in tests, 1 in each of
# `make test`'s two pytest-xdist workers.
os.environ.setdefault("OMP_NUM_THREADS", "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2")


#: The test files that start first under pytest-xdist, in this order (``--dist loadfile`` hands each
#: worker two files to begin with, then one more per file finished): the EfficientNet-Lite0 demo
#: builds (the default demo, the ink-only demo, a small one), then the longest browser flows.
FIRST_FILES = (
    "tests/concepts/tcav/test_tcav_validity.py",
    "tests/interventions/test_interventions_dermsynth.py",
    "tests/graph/test_confounders_slow.py",
    "tests/concepts/models/test_engine_ray.py",
    "tests/e2e/test_e2e_fix.py",
    "tests/e2e/test_e2e_ui.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """:data:`FIRST_FILES` first, then the other files with slow tests, then the rest (a stable
    sort: each file's tests keep their order), so that under pytest-xdist (``make test``:
    ``--dist loadfile --no-loadscope-reorder``) the long files start first and the short ones fill
    the gaps, instead of one long file running alone at the end."""
    slow_files = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        file = item.nodeid.split("::")[0]
        if file in FIRST_FILES:
            return FIRST_FILES.index(file)
        return len(FIRST_FILES) + (0 if file in slow_files else 1)

    items.sort(key=rank)


@pytest.fixture(scope="session")
def workspace_factory(tmp_path_factory: pytest.TempPathFactory) -> WorkspaceFactory:
    """Builds each workspace configuration once per test run (shared by pytest-xdist workers)."""
    return WorkspaceFactory(run_root(tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="session")
def small_workspace(workspace_factory: WorkspaceFactory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo workspace built with ``tiny-cnn`` on 400 DermSynth images at 64 px.

    Read-mostly: tests that modify a workspace should copy it first (``shutil.copytree``).
    """
    cfg = small_demo_config()
    return workspace_factory.copy(demo_spec(cfg), build_demo_into(cfg), tmp_path_factory.mktemp("small_ws") / "ws")


@pytest.fixture(scope="session")
def ui_workspace(workspace_factory: WorkspaceFactory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``small_workspace`` with TCAV results and no store (tests/support/ui.py): read-mostly, do
    not write to its store (``fresh_workspace`` is a per-test copy)."""
    from tests.support.ui import UI_SPEC, build_ui

    return workspace_factory.copy(UI_SPEC, build_ui(workspace_factory), tmp_path_factory.mktemp("ui_ws") / "ws")


@pytest.fixture(scope="session")
def ui_real_workspace(workspace_factory: WorkspaceFactory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A non-demo workspace with a mask per inked case (tests/support/ui_real.py), for the Case
    explorer and Interventions pages: copy it before writing."""
    from tests.support.ui_real import UI_REAL_SPEC, build_ui_real

    return workspace_factory.copy(UI_REAL_SPEC, build_ui_real, tmp_path_factory.mktemp("ui_real") / "ws")


@pytest.fixture(scope="session")
def ui_real_inked(workspace_factory: WorkspaceFactory) -> list[str]:
    """Case ids of ``ui_real_workspace``'s inked training cases."""
    from tests.support.ui_real import INKED_FILE, UI_REAL_SPEC, build_ui_real

    built = workspace_factory.built(UI_REAL_SPEC, build_ui_real)
    return [str(c) for c in json.loads((built.parent / INKED_FILE).read_text())]
