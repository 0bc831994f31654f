"""One factory for every workspace the tests build, keyed by the digest of its configuration.

A configuration (:class:`WorkspaceSpec`: what builds it and with which settings) is built once
per test run into a run-scoped directory, under a file lock, so that the pytest-xdist workers of
one run share it: the first worker that needs it builds it, the others wait and reuse it. Tests
never receive the built directory itself: each gets a copy (``shutil.copytree``), so a test that
writes to its workspace (store, caches, results) cannot disturb another worker's.

The session fixtures of ``tests/conftest.py`` (``small_workspace``, ``ui_workspace``,
``ui_real_workspace``) and the module fixtures of the slow scientific tests go through
:func:`workspace_factory`'s :meth:`WorkspaceFactory.copy`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

if TYPE_CHECKING:
    from workbench.services import DemoConfig

__all__ = ["SMALL_DEMO", "Builder", "WorkspaceFactory", "WorkspaceSpec", "build_demo_into", "demo_spec", "run_root", "small_demo_config"]

#: Settings of the small demo (``small_workspace``): tiny CNN on 400 DermSynth images at 64 px.
SMALL_DEMO: dict[str, Any] = {
    "dermsynth": {"n_images": 400, "image_size": 64, "concept_examples": 16, "random_pool": 60},
    "architecture": "tiny-cnn",
    "epochs": 12,
}

_DONE = "BUILT.json"

#: A builder writes into the given (empty) directory and returns the workspace path inside it.
Builder = Callable[[Path], Path]


@dataclass(frozen=True)
class WorkspaceSpec:
    """What builds a workspace (``kind``) and with which settings (``params``, JSON-able)."""

    kind: str
    params: str

    @classmethod
    def of(cls, kind: str, **params: Any) -> WorkspaceSpec:
        return cls(kind, json.dumps(params, sort_keys=True, default=str))

    def digest(self) -> str:
        """16 hex digits of SHA-256 over the kind and the canonical settings."""
        return hashlib.sha256(f"{self.kind}\n{self.params}".encode()).hexdigest()[:16]


def small_demo_config() -> DemoConfig:
    """The :class:`DemoConfig` of ``small_workspace``."""
    from concepts.dermsynth import DermSynthConfig
    from workbench.services import DemoConfig

    cfg = dict(SMALL_DEMO)
    return DemoConfig(dermsynth=DermSynthConfig(**cfg.pop("dermsynth")), **cfg)


def demo_spec(config: DemoConfig) -> WorkspaceSpec:
    """A demo build keyed by :meth:`DemoConfig.digest` (the demo's own cache key)."""
    return WorkspaceSpec("demo", json.dumps({"demo_digest": config.digest()}))


def build_demo_into(config: DemoConfig) -> Builder:
    """A builder that runs ``build_demo`` with ``config`` into ``<home>/ws``."""

    def build(home: Path) -> Path:
        from concepts import Workspace
        from workbench.services import build_demo

        build_demo(Workspace(home / "ws"), config)
        return home / "ws"

    return build


def run_root(basetemp: Path) -> Path:
    """The directory shared by every process of this test run: pytest's base temporary
    directory, or its parent under a pytest-xdist worker (whose base is ``<run>/popen-gwN``)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return basetemp.parent / "built"
    return basetemp / "built"


class WorkspaceFactory:
    """Builds each :class:`WorkspaceSpec` once per run (under a file lock) and hands out copies."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def built(self, spec: WorkspaceSpec, build: Builder) -> Path:
        """The built workspace of ``spec`` (building it if no process of this run has yet).
        Read only: use :meth:`copy` to get one a test may write to."""
        home = self.root / f"{spec.kind}-{spec.digest()}"
        done = home / _DONE
        with FileLock(str(home) + ".lock"):
            if not done.is_file():
                if home.exists():  # a build that failed half-way in this run
                    shutil.rmtree(home)
                home.mkdir(parents=True)
                ws = build(home)
                done.write_text(json.dumps({"workspace": ws.relative_to(home).as_posix(),
                                            "kind": spec.kind, "params": spec.params}))
        return home / json.loads(done.read_text())["workspace"]

    def copy(self, spec: WorkspaceSpec, build: Builder, dst: Path) -> Path:
        """A private copy of ``spec``'s built workspace at ``dst`` (which must not exist)."""
        shutil.copytree(self.built(spec, build), dst)
        return dst
