"""Lazy package exports (PEP 562), so that ``import concepts`` does not import torch and
``import store`` neither duckdb nor pandas.

A package ``__init__`` lists its public names once, as imports inside ``if TYPE_CHECKING:``
(type checkers and readers see ordinary imports), and at run time hands its own file to
:func:`lazy_exports`. The returned module ``__getattr__`` imports a name's module when the name
is first asked for; ``from concepts import Workspace`` therefore loads only
``concepts.workspace`` and what it needs, never the whole tree. Every package of the workbench
(``store`` and the ``concepts`` tree) exports this way.

The value is not cached in the package: each lookup reads the defining module (one dict lookup
in ``sys.modules``), so a test that monkeypatches a private module never leaves its stand-in
behind in the package.

The import table comes from the package's own source (its ``TYPE_CHECKING`` block), never from
data: only absolute ``from <the package's top-level package>... import name`` statements are
honoured.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def lazy_exports(package: str, init_file: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` for a package whose exports load on first use.

    Parameters
    ----------
    package
        The package's ``__name__`` (``"concepts.models"``).
    init_file
        The package's ``__file__``; its ``if TYPE_CHECKING:`` block lists the exported names as
        ``from <module> import <name>`` statements.

    Returns
    -------
    tuple
        ``(__getattr__, __dir__)`` to assign at module level.

    Raises
    ------
    ImportError
        When the ``TYPE_CHECKING`` block is missing or imports from outside the package's
        top-level package.
    """
    table = dict(_typing_imports(Path(init_file)))
    if not table:
        raise ImportError(f"{package}: no 'if TYPE_CHECKING:' block of exports in {init_file}")
    root = package.split(".")[0]
    outside = sorted({m for m in table.values() if m != root and not m.startswith(f"{root}.")})
    if outside:
        raise ImportError(f"{package}: lazy exports may only come from {root} modules, not {outside}")
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__


def _typing_imports(init_file: Path) -> Iterator[tuple[str, str]]:
    """``(exported name, module)`` for each ``from module import name`` under ``if TYPE_CHECKING:``."""
    tree = ast.parse(init_file.read_text(encoding="utf-8"), filename=str(init_file))
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
                    for alias in stmt.names:
                        yield alias.asname or alias.name, stmt.module
