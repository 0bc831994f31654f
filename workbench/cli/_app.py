"""The ``workbench`` typer app, whose commands are loaded only when they are used.

The app is a :class:`_LazyGroup`: ``COMMANDS`` names, for every top-level command, the module
and attribute that define it, and a command's module is imported the first time the command is
looked up. ``workbench audit verify`` therefore imports the audit module only, not the modules
(and the typer parameters) of the other ~40 commands; ``workbench --help`` loads them all, since
it lists their help. Module names are fixed here in code; nothing read from a file names one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import typer
from typer.core import TyperCommand, TyperGroup

from workbench.cli._coercion import plain_coercion, plain_option

__all__ = ["COMMANDS", "app", "main"]


@dataclass(frozen=True)
class LazyCommand:
    """Where a top-level command is defined.

    Attributes
    ----------
    module:
        The ``workbench.cli`` module that defines it.
    attr:
        The command function, or the ``typer.Typer`` of a command group.
    help:
        A group's help in the top-level listing (``None``: the group's own help).
    hidden:
        Left out of the listing (aliases).
    """

    module: str
    attr: str
    help: str | None = None
    hidden: bool = False

    def load(self, name: str) -> TyperCommand | TyperGroup:
        """The click command of this entry, built as ``app.command``/``app.add_typer`` would."""
        obj = getattr(importlib.import_module(self.module), self.attr)
        holder = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
        if isinstance(obj, typer.Typer):
            holder.add_typer(obj, name=name, help=self.help, hidden=self.hidden)
        else:
            holder.command(name, hidden=self.hidden)(obj)
        command = typer.main.get_group(holder).commands[name]
        if not isinstance(command, TyperCommand | TyperGroup):  # pragma: no cover - typer builds one of these
            raise TypeError(f"{self.module}.{self.attr} is not a typer command")
        return command


_WS = "workbench.cli._workspace"

#: Every top-level command, in the order ``workbench --help`` lists them.
COMMANDS: dict[str, LazyCommand] = {
    "demo": LazyCommand("workbench.cli._demo", "demo"),
    "serve": LazyCommand("workbench.cli._demo", "serve"),
    "tcav": LazyCommand("workbench.cli._tcav", "tcav_command"),
    "info": LazyCommand("workbench.cli._info", "info"),
    "confounders": LazyCommand("workbench.cli._confounders", "confounders_command"),
    "clusters": LazyCommand("workbench.cli._confounders", "clusters_command"),
    "name-cluster": LazyCommand("workbench.cli._confounders", "name_cluster_command"),
    "intervene": LazyCommand("workbench.cli._interventions", "intervene"),
    "apply": LazyCommand("workbench.cli._interventions", "apply"),
    "predict": LazyCommand("workbench.cli._interventions", "predict"),
    "fix": LazyCommand("workbench.cli._fix", "fix"),
    "train": LazyCommand(_WS, "train"),
    "audit": LazyCommand("workbench.cli._audit", "audit_app", "Verify, export and report the intervention history."),
    "graph": LazyCommand("workbench.cli._graph", "graph_app", "7-point-checklist knowledge graph and alignment."),
    "import": LazyCommand("workbench.cli._import", "import_app",
                          "Import a data set (folder + CSV, ISIC, derm7pt, sub-folders)."),
    "workspace": LazyCommand(_WS, "workspace_app", "Create and inspect a workspace."),
    "datasets": LazyCommand(_WS, "datasets_app", "List and select the active data set."),
    "dataset": LazyCommand(_WS, "datasets_app", hidden=True),
    "models": LazyCommand(_WS, "models_app", "List, select and add models (safe formats only)."),
    "model": LazyCommand(_WS, "models_app", hidden=True),
    "concepts": LazyCommand("workbench.cli._concepts", "concepts_app",
                            "List, build, add and remove the concepts of the bank."),
}


class _LazyGroup(TyperGroup):
    """A typer group that builds a top-level command from ``COMMANDS`` when it is looked up."""

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        return [*self.commands, *(name for name in COMMANDS if name not in self.commands)]

    def get_command(self, ctx: typer.Context, cmd_name: str) -> TyperCommand | TyperGroup | None:  # type: ignore[override]
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            loaded = COMMANDS[cmd_name].load(cmd_name)
            plain_coercion(loaded, ctx)
            self.commands[cmd_name] = loaded
        command = self.commands.get(cmd_name)
        return command if isinstance(command, TyperCommand | TyperGroup) else None

    def get_help_option(self, ctx: typer.Context):  # type: ignore[no-untyped-def,override]
        option = super().get_help_option(ctx)
        plain_option(option)
        return option


app = typer.Typer(
    name="workbench",
    cls=_LazyGroup,
    help="Concept Workbench: find and correct what a dermatology classifier relies on.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Concept Workbench: find and correct what a dermatology classifier relies on."""


def main() -> None:  # pragma: no cover
    """Run the command line (the ``workbench`` script)."""
    app()
