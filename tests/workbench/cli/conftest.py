"""Fixtures of the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.workspaces import WorkspaceFactory


@pytest.fixture(scope="session")
def real_workspace(workspace_factory: WorkspaceFactory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A non-demo workspace made as a user would (tests/support/realws.py): test-made images
    with train/val/test splits and an ``ink`` column, ``workbench import folder``, then
    ``workbench train`` (tiny CNN, with its precomputation). Read-mostly: copy it to modify."""
    from tests.support.realws import REAL_SPEC, build_real

    return workspace_factory.copy(REAL_SPEC, build_real, tmp_path_factory.mktemp("real_ws") / "ws")
