"""workbench.services."""
