"""``store`` and the concepts packages export lazily (store/_lazy.py): every name of ``__all__`` resolves to
the object its module defines, ``dir()`` lists it, and an unknown name is an AttributeError."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from store._lazy import _typing_imports, lazy_exports

PACKAGES = ("store", "workbench.services", "concepts", *(f"concepts.{p}" for p in (
    "bank", "data", "dermsynth", "discovery", "importers", "models", "tcav", "workspace")))


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_resolve_to_their_module_objects(name: str) -> None:
    package = importlib.import_module(name)
    table = dict(_typing_imports(Path(str(package.__file__))))
    eager = {"lazy_exports"} if name == "store" else set()  # the helper itself is a plain import
    assert sorted(table) == sorted(set(package.__all__) - eager)  # one list: the TYPE_CHECKING block is __all__
    for export in sorted(set(package.__all__) - eager):
        value = getattr(package, export)
        assert value is getattr(importlib.import_module(table[export]), export)
        assert export in dir(package)


def test_from_import_and_the_top_package_agree() -> None:
    from concepts import Workspace, run_tcav
    from concepts.tcav import run_tcav as tcav_run
    from concepts.workspace import Workspace as WorkspaceClass

    assert Workspace is WorkspaceClass and run_tcav is tcav_run


def test_unknown_name_is_an_attribute_error() -> None:
    import concepts

    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        _ = concepts.no_such_name
    with pytest.raises(ImportError, match="no_such_name"):
        from concepts.models import no_such_name  # noqa: F401


def test_an_init_without_a_typing_block_is_refused(tmp_path: Path) -> None:
    init = tmp_path / "__init__.py"
    init.write_text('"""no exports."""\n')
    with pytest.raises(ImportError, match="no 'if TYPE_CHECKING:' block"):
        lazy_exports("concepts", str(init))


@pytest.mark.parametrize("package", ["concepts", "concepts.models", "store"])
def test_exports_from_outside_the_top_package_are_refused(tmp_path: Path, package: str) -> None:
    init = tmp_path / "__init__.py"
    other = "store" if package.startswith("concepts") else "concepts"
    init.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                    f"    from os import system\n    from {other}._x import y\n")
    root, refused = package.split(".")[0], sorted([f"{other}._x", "os"])
    with pytest.raises(ImportError, match=re.escape(f"only come from {root} modules, not {refused}")):
        lazy_exports(package, str(init))


def test_a_monkeypatched_module_leaves_no_stand_in_in_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import concepts
    import concepts.tcav._run as tcav_run_module

    real = tcav_run_module.run_tcav

    def stand_in() -> None:
        return None

    monkeypatch.setattr(tcav_run_module, "run_tcav", stand_in)
    assert concepts.run_tcav is stand_in
    monkeypatch.undo()
    assert concepts.run_tcav is real
    assert concepts.tcav.run_tcav is real
