"""The workspace: one directory that holds all of a project's state.

Layout::

    workspace.json          manifest: active data set, concept sets, model, layers, demo summary
    datasets/<name>/        data sets (see concepts.data._dataset)
    models/<name>/          model.json + weights.pt
    cache/activations/      activation cache
    concepts/               concept bank
    results/                analysis results (tcav.parquet, ...)
    store.duckdb            intervention history (store package)
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from concepts._errors import ModelError, WorkspaceError
from concepts.models import Compute
from store import atomic_path

if TYPE_CHECKING:  # imported where used: a workspace opens without torch or pandas (fast CLI start)
    from concepts.data import Dataset
    from concepts.models import ActivationCache, ClassifierModel

#: Names of data sets and models inside a workspace.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

__all__ = ["NAME_RE", "Workspace", "check_name"]


def check_name(name: str, what: str = "name") -> str:
    """A data-set or model name: letters, digits, '.', '_', '-' (no path).

    Raises
    ------
    WorkspaceError
        Anything else.
    """
    if not NAME_RE.fullmatch(name) or ".." in name:
        raise WorkspaceError(
            f"invalid {what} {name[:80]!r} — use letters, digits, '.', '_' and '-' (starting with a letter or digit)"
        )
    return name


class Workspace:
    """Paths and loaders of a workspace directory.

    Parameters
    ----------
    root
        The workspace directory (need not exist yet; :meth:`ensure` creates it).
    compute
        Engine, device and precision of the activation cache and the model steps (default:
        local engine, CPU, fp32; the CLI passes ``--engine/--device/--precision``).
    """

    def __init__(self, root: str | Path, compute: Compute | None = None):
        self.root = Path(root).expanduser().resolve()
        self.compute = compute or Compute()
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

    def init(self) -> bool:
        """Create the folders and an empty manifest; ``False`` when it was a workspace already.

        Raises
        ------
        WorkspaceError
            The path is a file, or a non-empty folder that is not a workspace.
        """
        if self.exists():
            self.ensure()
            return False
        if self.root.exists() and not self.root.is_dir():
            raise WorkspaceError(f"{self.root} is a file, not a folder — choose another --workspace")
        known = {"datasets", "models", "cache", "concepts", "results", "store.duckdb"}
        if self.root.is_dir() and any(p.name not in known for p in self.root.iterdir()):
            raise WorkspaceError(f"{self.root} is a non-empty folder that is not a workspace — choose another --workspace")
        self.ensure()
        self.update_manifest()
        return True

    # ---------------------------------------------------------------- manifest
    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            raise WorkspaceError(
                f"{self.root} is not a workspace (workspace.json missing) — create one with "
                f"`workbench workspace init -w {self.root}` and `workbench import ...`, or build the demo "
                f"with `workbench demo --no-serve -w {self.root}`"
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
        with atomic_path(self.manifest_path, prefix=".workspace-", suffix=".json") as tmp, \
                open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
        return data

    # ---------------------------------------------------------------- contents and selection
    def dataset_names(self) -> list[str]:
        """Data sets in ``datasets/`` (folders holding a ``dataset.json``)."""
        if not self.datasets_dir.is_dir():
            return []
        return sorted(p.name for p in self.datasets_dir.iterdir() if (p / "dataset.json").is_file())

    def model_names(self) -> list[str]:
        """Models in ``models/`` (folders holding a ``model.json``)."""
        if not self.models_dir.is_dir():
            return []
        return sorted(p.name for p in self.models_dir.iterdir() if (p / "model.json").is_file())

    def select_dataset(self, name: str) -> Dataset:
        """Make data set ``name`` the active one (it must exist and load)."""
        check_name(name, "data-set name")
        if name not in self.dataset_names():
            raise WorkspaceError(
                f"no data set {name!r} in {self.root} — known: {', '.join(self.dataset_names()) or 'none'} "
                "(import one with `workbench import`)"
            )
        from concepts.data import Dataset

        ds = Dataset.load(self.datasets_dir / name)
        self.ensure()
        self.update_manifest(dataset=name)
        return ds

    def select_model(self, name: str, layers: list[str] | None = None) -> ClassifierModel:
        """Make model ``name`` the active one (it must load); ``layers`` become the analysis layers."""
        check_name(name, "model name")
        if name not in self.model_names():
            raise WorkspaceError(
                f"no model {name!r} in {self.root} — known: {', '.join(self.model_names()) or 'none'} "
                "(add one with `workbench train` or `workbench models add`)"
            )
        from concepts.models import ClassifierModel

        model = ClassifierModel.load(self.models_dir / name)
        fields: dict[str, Any] = {"model": name, "model_dir": f"models/{name}"}
        if layers is not None:
            for layer in layers:
                model.check_layer(layer)
            fields["layers"] = list(layers)
        self.update_manifest(**fields)
        return model

    def save_model(self, model: ClassifierModel, name: str, *, overwrite: bool = False) -> Path:
        """Write ``model`` to ``models/<name>/`` atomically.

        Raises
        ------
        WorkspaceError
            The name is taken (unless ``overwrite``), or ``models/<name>`` is not a model folder.
        """
        check_name(name, "model name")
        target = self.models_dir / name
        if target.exists():
            if not overwrite:
                raise WorkspaceError(f"model {name!r} exists in {self.root} — pass --overwrite or choose another --name")
            allowed = {"model.json", "weights.pt", "program.pt2"}
            if target.is_symlink() or not (target / "model.json").is_file() or any(
                p.name not in allowed for p in target.iterdir()
            ):
                raise WorkspaceError(f"{target} is not a model folder written by the workbench — refusing to replace it")
        from concepts.data import swap_in_directory

        self.ensure()
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=self.models_dir))
        try:
            model.save(tmp)
            swap_in_directory(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    def model_info(self, name: str) -> dict[str, Any]:
        """``model.json`` of model ``name`` without loading its weights (for listings)."""
        p = self.models_dir / check_name(name, "model name") / "model.json"
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{p}: unreadable ({exc})") from exc
        return data if isinstance(data, dict) else {}

    # ---------------------------------------------------------------- loaders
    def dataset(self, name: str | None = None) -> Dataset:
        """The named data set (default: the manifest's active one)."""
        name = name or str(self.manifest().get("dataset", "dermsynth"))
        from concepts.data import Dataset

        return Dataset.load(self.datasets_dir / name)

    def concept_sets(self, name: str | None = None) -> Dataset | None:
        """The concept example sets (``None`` when the workspace has none)."""
        name = name or self.manifest().get("concept_sets")
        if not name:
            return None
        from concepts.data import Dataset

        return Dataset.load(self.datasets_dir / str(name))

    def model(self, name: str | None = None) -> ClassifierModel:
        """The named model (default: the manifest's active one)."""
        name = name or str(self.manifest().get("model", "demo"))
        d = self.models_dir / name
        if not (d / "model.json").is_file():
            raise WorkspaceError(
                f"no model {name!r} in {self.root} — train one (`workbench train -w {self.root}`), add one "
                "(`workbench models add`), or build the demo (`workbench demo --no-serve`)"
            )
        from concepts.models import ClassifierModel

        return ClassifierModel.load(d)

    @property
    def activation_cache(self) -> ActivationCache:
        if self._cache is None:
            from concepts.models import ActivationCache

            self._cache = ActivationCache(self.cache_dir / "activations", compute=self.compute)
        return self._cache

    def layers(self) -> list[str]:
        """Analysis layers recorded in the manifest (TCAV / interventions default)."""
        return list(self.manifest().get("layers", []))
