"""workbench.ui: the Streamlit pages' building blocks (state, figures, tables, the what-if).

The public names load their module on first use (PEP 562), so importing one UI module does not
import the others' dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.ui._interventions import EvalSplits, build_spec, evaluate, flipped_table
    from workbench.ui._nav import PAGES

_WHERE = {
    "PAGES": "workbench.ui._nav",
    "EvalSplits": "workbench.ui._interventions",
    "build_spec": "workbench.ui._interventions",
    "evaluate": "workbench.ui._interventions",
    "flipped_table": "workbench.ui._interventions",
}

__all__ = ["PAGES", "EvalSplits", "build_spec", "evaluate", "flipped_table"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
