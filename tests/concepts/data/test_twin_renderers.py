"""The twin-renderer registry: the analysis code finds DermSynth's twins without importing DermSynth."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import concepts.data._twin_renderers as registry
from concepts import DataError
from concepts.data import Dataset, DatasetInfo, find_twin_renderer, register_twin_renderer

ROOT = Path(__file__).resolve().parents[3]
SCIENCE = ("data", "models", "bank", "tcav", "discovery", "workspace")


def _tiny(tmp_path: Path, extra_cols: dict[str, list[int]]) -> Dataset:
    n = 4
    cases = pd.DataFrame({
        "case_id": [f"c{i}" for i in range(n)], "label": ["a", "b"] * 2, "split": "train", **extra_cols,
    })
    info = DatasetInfo(name="tiny", kind="folder", classes=("a", "b"), image_size=8, metadata=tuple(extra_cols))
    return Dataset.write(tmp_path / "tiny", info, cases, np.zeros((n, 8, 8, 3), np.uint8))


def test_lookup_loads_the_builtin_sources_itself(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty registry (as in a process that never imported DermSynth) still finds DermSynth's
    renderer: the lookup imports the built-in sources by their fixed names."""
    monkeypatch.setattr(registry, "_SOURCES", {})
    monkeypatch.setattr(registry, "_loaded", [False])
    for module in registry._BUILTIN_SOURCES:  # as if never imported (restored afterwards)
        monkeypatch.delitem(sys.modules, module, raising=False)
    seeded = _tiny(tmp_path / "s", {"render_seed": [1, 2, 3, 4]})
    render = find_twin_renderer(seeded)
    assert render is not None
    assert (render.__module__, render.__name__) == ("concepts.dermsynth._twins", "render_twins")
    assert find_twin_renderer(_tiny(tmp_path / "r", {})) is None


def test_a_registered_source_is_found_and_replaced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(registry, "_SOURCES", {})
    monkeypatch.setattr(registry, "_loaded", [True])  # no built-in source: only what is registered here
    ds = _tiny(tmp_path, {"my_seed": [0, 1, 2, 3]})
    calls: list[tuple[int, ...]] = []

    def render(dataset: Dataset, idx: np.ndarray, artifact: str, present: bool) -> np.ndarray:
        calls.append(tuple(int(i) for i in idx))
        return np.full((len(idx), 8, 8, 3), 255 if present else 0, np.uint8)

    assert find_twin_renderer(ds) is None
    register_twin_renderer("mine", lambda d: "my_seed" in d.cases.columns, render)
    found = find_twin_renderer(ds)
    assert found is render
    assert found(ds, np.array([2, 0]), "ruler", True).max() == 255 and calls == [(2, 0)]
    register_twin_renderer("mine", lambda d: False, render)  # same name: replaced
    assert find_twin_renderer(ds) is None


@pytest.mark.parametrize("bad", [("", True), ("  ", True), ("x", False)])
def test_bad_registrations_are_refused(bad: tuple[str, bool]) -> None:
    name, ok_callables = bad
    fn = (lambda *a: None) if ok_callables else "not callable"
    with pytest.raises(DataError, match="twin renderer"):
        register_twin_renderer(name, fn, fn)  # type: ignore[arg-type]


def test_the_science_does_not_import_dermsynth() -> None:
    """No module of concepts.{data,models,bank,tcav,discovery,workspace} imports concepts.dermsynth
    (statically or lazily inside a function)."""
    offenders = []
    for pkg in SCIENCE:
        for path in sorted((ROOT / "concepts" / pkg).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                offenders += [f"{path.name}: {n}" for n in names if n.startswith("concepts.dermsynth")]
    assert offenders == []
