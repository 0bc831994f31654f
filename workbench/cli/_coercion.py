"""Option values converted without pydantic, so that a command starts ~0.2 s sooner.

typer converts each option's value through a pydantic ``TypeAdapter`` that it builds when the
command runs; importing pydantic is about a fifth of ``workbench audit verify``'s start-up.
Most of the workbench's options are a plain ``str``, ``int``, ``float``, ``Path`` or flag (or a
``None``-able one) with no range, choice, parser, file mode or path check, and for those the
conversion is ``T(value)``. :func:`plain_coercion` gives exactly those options that conversion
through typer's own per-parameter hook; every other option keeps typer's. If typer's internals
change shape, nothing is replaced and typer converts as before.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import typer

__all__ = ["plain_coercion", "plain_option"]

#: The option types converted here, with the word an error names them by.
_PLAIN: dict[type, str] = {str: "text", int: "integer", float: "number", Path: "path", bool: "flag"}


def _plain_type(annotation: object) -> type | None:
    """``T`` for an annotation ``T`` or ``T | None`` with ``T`` in :data:`_PLAIN`, else ``None``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else None
    return annotation if isinstance(annotation, type) and annotation in _PLAIN else None


def _is_plain(param: Any) -> type | None:
    """The plain type of a typer parameter that has no constraint typer would check, else ``None``."""
    desc: Any = getattr(param, "type_descriptor", None)
    info = getattr(desc, "parameter_info", None)
    kind = _plain_type(getattr(desc, "annotation", None))
    if kind is None or info is None or getattr(param, "_runtime_param", 0) is not None:
        return None
    checked = (getattr(param, "multiple", True) or desc.is_file or desc.is_ranged or desc.is_choice
               or info.parser is not None or info.exists or not (info.file_okay and info.dir_okay)
               or info.writable or info.readable is not True or info.resolve_path or info.allow_dash
               or info.path_type is not None)
    return None if checked else kind


@functools.cache
def _plain_class() -> type:
    """The runtime-parameter class of plain options (built once: typer's base class is private)."""
    from typer._coercion import RuntimeParam, build_runtime_param  # typer's hook (private)

    @dataclass(frozen=True)
    class Plain(RuntimeParam):  # type: ignore[misc]
        """``kind(value)``; a value of another shape goes to typer's own conversion."""

        kind: type
        descriptor: Any

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, self.kind) and (self.kind is bool or not isinstance(value, bool)):
                return value
            if self.kind is bool or not isinstance(value, str | int | float):
                return build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)
            try:
                return self.kind(value)
            except ValueError:
                raise typer.BadParameter(f"{value!r} is not a valid {_PLAIN[self.kind]}.", ctx=ctx,
                                         param=param) from None

    return Plain


def _plain_param(kind: type, descriptor: Any) -> Any:
    return _plain_class()(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation, kind=kind,
                          descriptor=descriptor)


def plain_option(param: Any) -> None:
    """Give one typer option plain conversion if it is plain (else leave it to typer)."""
    try:
        kind = _is_plain(param)
        if kind is not None:
            param._runtime_param = _plain_param(kind, param.type_descriptor)
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - typer changed: keep its own
        return


def plain_coercion(command: Any, ctx: typer.Context) -> None:
    """Give the plain options of ``command``, of its sub-commands and their ``--help`` plain conversion.

    Parameters
    ----------
    command:
        A typer command or group, as ``typer.main.get_group`` builds it.
    ctx:
        The context the command runs under (it names the ``--help`` option).
    """
    for param in [*command.params, command.get_help_option(ctx)]:
        plain_option(param)
    for sub in getattr(command, "commands", {}).values():
        plain_coercion(sub, ctx)
