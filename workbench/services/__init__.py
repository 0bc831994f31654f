"""workbench.services: what the CLI and the UI both run (the demo build, summaries, precomputes).

The public names load their module on first use (PEP 562), so importing one service does not
import the others' dependencies (torch, for the demo build).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.services._demo import DemoConfig, build_demo

_WHERE = {
    "DemoConfig": "workbench.services._demo",
    "build_demo": "workbench.services._demo",
}

__all__ = ["DemoConfig", "build_demo"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
