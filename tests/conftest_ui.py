"""Fixtures of the UI tests (AppTest and Playwright), imported by ``tests/test_ui_*.py`` and
``tests/test_e2e_*.py``.

Import the ``*_fixture`` functions into a test module to use the fixtures
``ui_workspace``, ``fresh_workspace`` and ``ui_env``.

``ui_workspace`` is the shared ``small_workspace`` (tests/conftest.py) plus the analyses the UI
shows (TCAV results), computed once per session into a copy; ``fresh_workspace`` is a
per-test copy for tests that write to the store.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from workbench.auth._auth import ENV_AUTH, ENV_ROLE, ENV_ROLES_FILE, ENV_SECRETS_FILE, ENV_WORKSPACE
from workbench.ui._state import ENV_STORE_TIMEOUT

APP = Path(__file__).resolve().parents[1] / "workbench" / "app.py"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def ensure_ui_results(root: Path) -> None:
    """Compute what the UI shows and the demo build may not have precomputed (TCAV)."""
    from concepts import Workspace
    from concepts.tcav import run_tcav

    ws = Workspace(root)
    if not (ws.results_dir / "tcav.parquet").is_file():
        run_tcav(ws, runs=6, seed=0)


@pytest.fixture(scope="session", name="ui_workspace")
def ui_workspace_fixture(small_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-mostly workspace with TCAV results (do not write to its store)."""
    root = tmp_path_factory.mktemp("ui_ws") / "ws"
    shutil.copytree(small_workspace, root)
    (root / "store.duckdb").unlink(missing_ok=True)
    ensure_ui_results(root)
    return root


@pytest.fixture(name="fresh_workspace")
def fresh_workspace_fixture(ui_workspace: Path, tmp_path: Path) -> Path:
    """A private copy of ``ui_workspace`` for tests that record events."""
    root = tmp_path / "ws"
    shutil.copytree(ui_workspace, root)
    return root


@pytest.fixture(name="ui_env")
def ui_env_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A clean UI environment: local mode, short store timeout; tests set the workspace/role."""
    for var in (ENV_AUTH, ENV_ROLE, ENV_ROLES_FILE, ENV_SECRETS_FILE, ENV_WORKSPACE):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(ENV_STORE_TIMEOUT, "0.5")
    monkeypatch.setenv(ENV_AUTH, "local")
    with loopback_server_address():
        yield monkeypatch


@contextmanager
def loopback_server_address(address: str = "127.0.0.1") -> Iterator[None]:
    """Set Streamlit's ``server.address`` (what ``workbench serve`` passes) for in-process
    AppTests: the app refuses local mode unless it is served on loopback."""
    from streamlit import config as st_config

    old = st_config.get_option("server.address")
    st_config.set_option("server.address", address)
    try:
        yield
    finally:
        st_config.set_option("server.address", old)
