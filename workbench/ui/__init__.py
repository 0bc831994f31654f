"""workbench.ui."""
