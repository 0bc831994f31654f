"""The ``workbench`` command line (typer).

``app`` is the typer app of the ``workbench`` script; each command's module is imported only
when the command runs (``workbench.cli._app``), so commands that need no model start fast.
"""

from workbench.cli._app import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":  # pragma: no cover
    main()
