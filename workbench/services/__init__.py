"""workbench.services: what the CLI and the UI both run (the demo build, summaries, precomputes,
the record of a test-time fix).

The public names load their module on first use (PEP 562, :func:`store.lazy_exports`), so
importing one service does not import the others' dependencies (torch, for the demo build).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from store import lazy_exports

if TYPE_CHECKING:
    from workbench.services._demo import DemoConfig, analyse_workspace, build_demo
    from workbench.services._fix_record import FixShots, fix_record, metric_deltas, parts_sha256
    from workbench.services._precompute import precompute_pages

__all__ = [
    "DemoConfig",
    "FixShots",
    "analyse_workspace",
    "build_demo",
    "fix_record",
    "metric_deltas",
    "parts_sha256",
    "precompute_pages",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
