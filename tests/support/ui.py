"""What the UI tests (AppTest and Playwright) share besides fixtures: the app's path, the
artifacts folder, the analyses the UI shows, Streamlit's loopback address for in-process AppTests.

The fixtures are in conftest files: ``ui_workspace`` (tests/conftest.py: the small demo plus
:func:`ensure_ui_results`, built once per run), ``ui_env`` (tests/workbench/conftest.py) and
``fresh_workspace`` (tests/workbench/ui/conftest.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.workspaces import (
    Builder,
    WorkspaceFactory,
    WorkspaceSpec,
    build_demo_into,
    demo_spec,
    small_demo_config,
)

APP = Path(__file__).resolve().parents[2] / "workbench" / "app.py"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: TCAV runs of the UI workspace (:func:`ensure_ui_results`).
UI_TCAV_RUNS = 6


def ensure_ui_results(root: Path) -> None:
    """Compute what the UI shows and the demo build may not have precomputed (TCAV)."""
    from concepts import Workspace
    from concepts.tcav import run_tcav

    ws = Workspace(root)
    if not (ws.results_dir / "tcav.parquet").is_file():
        run_tcav(ws, runs=UI_TCAV_RUNS, seed=0)


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


#: The workspace factory's key of ``ui_workspace``: the small demo plus :func:`ensure_ui_results`.
UI_SPEC = WorkspaceSpec.of("ui", demo=demo_spec(small_demo_config()).digest(), tcav_runs=UI_TCAV_RUNS, seed=0)


def build_ui(factory: WorkspaceFactory) -> Builder:
    """The factory's builder of :data:`UI_SPEC`: a copy of the small demo without its store,
    with the TCAV results the pages show."""

    def build(home: Path) -> Path:
        cfg = small_demo_config()
        shutil.copytree(factory.built(demo_spec(cfg), build_demo_into(cfg)), home / "ws")
        (home / "ws" / "store.duckdb").unlink(missing_ok=True)
        ensure_ui_results(home / "ws")
        return home / "ws"

    return build
