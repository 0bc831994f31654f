"""workbench.auth."""
