"""Fixtures of the UI (AppTest) tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def fresh_workspace(ui_workspace: Path, tmp_path: Path) -> Path:
    """A private copy of ``ui_workspace`` for tests that record events."""
    root = tmp_path / "ws"
    shutil.copytree(ui_workspace, root)
    return root
