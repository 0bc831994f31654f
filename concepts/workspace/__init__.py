"""concepts.workspace."""

from concepts.workspace._workspace import Workspace, check_name

__all__ = [
    "Workspace",
    "check_name",
]
