"""concepts.workspace."""

from typing import TYPE_CHECKING

from store import lazy_exports

if TYPE_CHECKING:
    from concepts.workspace._workspace import Workspace, check_name
else:  # each name loads on first use: importing the package stays cheap (no torch)
    __getattr__, __dir__ = lazy_exports(__name__, __file__)

__all__ = [
    "Workspace",
    "check_name",
]
