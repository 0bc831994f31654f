"""The workspace: one directory that holds all of a project's state.

Layout::

    workspace.json          manifest: active data set, concept sets, model, layers, demo summary
    datasets/<name>/        data sets (see concepts._dataset)
    models/<name>/          model.json + weights.pt
    cache/activations/      activation cache
    concepts/               concept bank
    results/                analysis results (tcav.parquet, ...)
    store.duckdb            intervention history (store package)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from concepts._activations import ActivationCache
from concepts._dataset import Dataset
from concepts._errors import WorkspaceError
from concepts._models import ClassifierModel

__all__ = ["Workspace"]


class Workspace:
    """Paths and loaders of a workspace directory.

    Parameters
    ----------
    root
        The workspace directory (need not exist yet; :meth:`ensure` creates it).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self._cache: ActivationCache | None = None

    # ---------------------------------------------------------------- paths
    @property
    def manifest_path(self) -> Path:
        return self.root / "workspace.json"

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def concepts_dir(self) -> Path:
        return self.root / "concepts"

    @property
    def results_dir(self) -> Path:
        return self.root / "results"

    @property
    def store_path(self) -> Path:
        return self.root / "store.duckdb"

    def ensure(self) -> Workspace:
        for d in (self.datasets_dir, self.models_dir, self.cache_dir, self.concepts_dir, self.results_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    # ---------------------------------------------------------------- manifest
    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            raise WorkspaceError(
                f"{self.root} is not a workspace (workspace.json missing) — build one with "
                f"`workbench demo --no-serve --workspace {self.root}`"
            )
        try:
            data = json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise WorkspaceError(f"{self.manifest_path} is corrupt ({exc}) — rebuild the workspace") from exc
        if not isinstance(data, dict):
            raise WorkspaceError(f"{self.manifest_path} is not a JSON object — rebuild the workspace")
        return data

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into ``workspace.json`` (atomic write)."""
        self.root.mkdir(parents=True, exist_ok=True)
        data = self.manifest() if self.exists() else {}
        data.update(fields)
        fd, tmp = tempfile.mkstemp(prefix=".workspace-", suffix=".json", dir=self.root)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
        os.replace(tmp, self.manifest_path)
        return data

    # ---------------------------------------------------------------- loaders
    def dataset(self, name: str | None = None) -> Dataset:
        """The named data set (default: the manifest's active one)."""
        name = name or str(self.manifest().get("dataset", "dermsynth"))
        return Dataset.load(self.datasets_dir / name)

    def concept_sets(self, name: str | None = None) -> Dataset | None:
        """The concept example sets (``None`` when the workspace has none)."""
        name = name or self.manifest().get("concept_sets")
        if not name:
            return None
        return Dataset.load(self.datasets_dir / str(name))

    def model(self, name: str | None = None) -> ClassifierModel:
        """The named model (default: the manifest's active one)."""
        name = name or str(self.manifest().get("model", "demo"))
        d = self.models_dir / name
        if not (d / "model.json").is_file():
            raise WorkspaceError(
                f"no model {name!r} in {self.root} — build the demo (`workbench demo --no-serve`) "
                "or add a model to models/"
            )
        return ClassifierModel.load(d)

    @property
    def activation_cache(self) -> ActivationCache:
        if self._cache is None:
            self._cache = ActivationCache(self.cache_dir / "activations")
        return self._cache

    def layers(self) -> list[str]:
        """Analysis layers recorded in the manifest (TCAV / interventions default)."""
        return list(self.manifest().get("layers", []))
