"""The architecture of docs/architecture.md, checked.

The import contracts live in pyproject.toml (``[tool.importlinter]``, run by ``make lint``); here
they run once more inside the suite, with two checks import-linter does not make: no import cycle
between any two modules of the code, and tests import only public names of the packages they do
not test (a test may use the private modules of its own package, as in scikit-learn).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("concepts", "graph", "interventions", "store", "workbench", "bench")

#: Test files that reach into another package's private modules, each for a reason an import of a
#: public name cannot serve. Shrink it; never add to it without a reason.
ALLOWED_TEST_REACHES: dict[tuple[str, str], str] = {
    # these tests replace a function where the page looks it up, to prove it is not called
    ("tests/workbench/cli/test_real_workspace.py", "concepts.discovery._cooccurrence"): "monkeypatch",
    ("tests/workbench/cli/test_real_workspace.py", "graph._confounders"): "monkeypatch",
    ("tests/workbench/ui/test_ui_real_pages.py", "interventions._effect_twins"): "monkeypatch",
    # workbench tests kept in other packages' folders (they test the CLI/UI/auth of workbench)
    ("tests/concepts/tcav/test_tcav_run.py", "workbench.cli._tcav"): "CLI test outside tests/workbench",
    ("tests/store/test_audit_security.py", "workbench.auth._identity"): "auth test outside tests/workbench",
    ("tests/store/test_audit_security.py", "workbench.auth._rolemap"): "auth test outside tests/workbench",
    ("tests/store/test_lazy_exports.py", "concepts.tcav._run"): "monkeypatch: no stand-in left behind",
    ("tests/store/test_audit_security.py", "workbench.cli._audit"): "CLI test outside tests/workbench",
    ("tests/store/test_audit_security.py", "workbench.ui._history"): "UI test outside tests/workbench",
    # shared builders of the workbench tests (tests/support serves every folder)
    ("tests/support/browser.py", "workbench.cli._serve"): "serve plan of the e2e tests",
    ("tests/support/clinic.py", "workbench.ui._fix"): "the fix page's clinic builder",
    ("tests/support/auth.py", "workbench.auth._config"): "sign-in fixtures of the UI auth tests",
    ("tests/support/auth.py", "workbench.auth._serving"): "sign-in fixtures of the UI auth tests",
}


def _is_private(module: str) -> bool:
    return any(p.startswith("_") and not p.startswith("__") for p in module.split("."))


def private_reaches(source: str, own_package: str | None) -> set[str]:
    """The private modules of packages other than ``own_package`` that ``source`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if top in PACKAGES and top != own_package and _is_private(module):
                found.add(module)
    return found


def _own_package(path: Path) -> str | None:
    """The package a test file tests: its first folder under tests/ (e2e tests test workbench)."""
    parts = path.relative_to(ROOT / "tests").parts
    if len(parts) < 2:
        return None
    return "workbench" if parts[0] == "e2e" else (parts[0] if parts[0] in PACKAGES else None)


def test_private_reaches_sees_from_and_plain_imports() -> None:
    src = (
        "import graph._io\nfrom concepts.data._dataset import X\nfrom store import Store\n"
        "def f():\n    from interventions._fix import propose_fix\n"
    )
    assert private_reaches(src, None) == {"graph._io", "concepts.data._dataset", "interventions._fix"}
    assert private_reaches(src, "graph") == {"concepts.data._dataset", "interventions._fix"}
    assert private_reaches("from concepts import Dataset\nimport numpy._core\n", None) == set()


def test_tests_import_only_public_names_of_other_packages() -> None:
    seen: set[tuple[str, str]] = set()
    new: list[str] = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for module in private_reaches(path.read_text(encoding="utf-8"), _own_package(path)):
            seen.add((rel, module))
            if (rel, module) not in ALLOWED_TEST_REACHES:
                new.append(f"{rel} imports {module}")
    assert not new, "import the public name instead:\n" + "\n".join(sorted(new))
    stale = sorted(set(ALLOWED_TEST_REACHES) - seen)
    assert not stale, f"no longer needed, remove from ALLOWED_TEST_REACHES: {stale}"


def _cycle_exceptions() -> set[tuple[str, str]]:
    """The module imports the acyclic contract in pyproject.toml still ignores (work in progress)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    out: set[tuple[str, str]] = set()
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract["type"] == "acyclic_siblings":
            for expr in contract.get("ignore_imports", []):
                importer, imported = (s.strip() for s in expr.split("->"))
                out.add((importer, imported))
    return out


def test_no_import_cycle_between_modules() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None, exclude_type_checking_imports=True)
    skip = _cycle_exceptions()
    edges = nx.DiGraph()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            if (importer, imported) not in skip:
                edges.add_edge(importer, imported)
    cycles = sorted(sorted(c) for c in nx.strongly_connected_components(edges) if len(c) > 1)
    assert not cycles, f"modules importing each other: {cycles}"


@pytest.mark.skipif(
    not (Path(sys.executable).parent / "lint-imports").exists(), reason="import-linter not installed"
)
def test_import_contracts_are_kept() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout
