"""Fixtures of the workbench tests (CLI and UI): a clean environment for in-process AppTests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.ui import loopback_server_address
from workbench.auth._config import (
    ENV_AUTH,
    ENV_ROLE,
    ENV_ROLES_FILE,
    ENV_SECRETS_FILE,
    ENV_WORKSPACE,
)
from workbench.ui._state import ENV_STORE_TIMEOUT


@pytest.fixture
def ui_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A clean UI environment: local mode, short store timeout; tests set the workspace/role."""
    for var in (ENV_AUTH, ENV_ROLE, ENV_ROLES_FILE, ENV_SECRETS_FILE, ENV_WORKSPACE):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(ENV_STORE_TIMEOUT, "0.5")
    monkeypatch.setenv(ENV_AUTH, "local")
    with loopback_server_address():
        yield monkeypatch
