"""Which architectures may be built, by name only: the built-in ones and the entry points installed
packages register in :data:`ARCHITECTURE_GROUP` (the operator's allow-list; ``model.json`` names
the entry point, never a module path), and the JSON-scalar ``factory_kwargs`` they take.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from torch import nn

from concepts._errors import ModelError
from concepts.models._networks import BUILTIN_ARCHITECTURES

__all__ = [
    "ARCHITECTURE_GROUP",
    "PROGRAM_ARCHITECTURE",
    "architecture_names",
    "check_architecture_name",
    "check_factory_kwargs",
]


ARCHITECTURE_GROUP = "concept_workbench.architectures"

#: ``architecture`` of a model loaded from a ``torch.export`` program.
PROGRAM_ARCHITECTURE = "torch.export"

_ARCH_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

FactoryKwargs = dict[str, str | int | float | bool | None]


def check_factory_kwargs(kwargs: Any) -> FactoryKwargs:
    """``factory_kwargs`` as a dict of JSON scalars (str, int, float, bool, None).

    Raises
    ------
    ModelError
        Not a dict of scalars.
    """
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise ModelError(f"factory_kwargs must be an object of JSON scalars, got {type(kwargs).__name__}")
    for k, v in kwargs.items():
        if not isinstance(k, str) or not k.isidentifier():
            raise ModelError(f"factory_kwargs: invalid keyword {k!r}")
        if v is not None and not isinstance(v, str | int | float | bool):
            raise ModelError(f"factory_kwargs[{k!r}] must be a JSON scalar (string, number, true/false, null)")
    return dict(kwargs)


def check_architecture_name(architecture: Any) -> str:
    """A built-in or entry-point architecture name; module paths are refused.

    Raises
    ------
    ModelError
        A ``module:function`` path, or not a plain name.
    """
    name = str(architecture)
    if ":" in name or "/" in name or "\\" in name:
        raise ModelError(
            f"architecture {name[:80]!r} names code to import — refused: a model file may name only a "
            f"built-in architecture ({', '.join(sorted(BUILTIN_ARCHITECTURES))}) or an entry point; to "
            f"use your own, register it in your package's pyproject.toml under "
            f'[project.entry-points."{ARCHITECTURE_GROUP}"] as NAME = "package.module:factory", '
            "pip install the package, and give NAME as the architecture"
        )
    if not _ARCH_NAME_RE.fullmatch(name):
        raise ModelError(f"invalid architecture name {name[:80]!r} (letters, digits, '.', '_', '-')")
    return name


def architecture_names() -> list[str]:
    """Built-in architectures plus the entry points installed packages register."""
    from importlib.metadata import entry_points

    plugins = sorted({ep.name for ep in entry_points(group=ARCHITECTURE_GROUP)} - set(BUILTIN_ARCHITECTURES))
    return sorted(BUILTIN_ARCHITECTURES) + plugins


def _resolve_factory(architecture: str) -> Callable[..., nn.Module]:
    """The factory of a built-in architecture or of an installed entry point (never a path)."""
    name = check_architecture_name(architecture)
    if name in BUILTIN_ARCHITECTURES:
        return BUILTIN_ARCHITECTURES[name][0]
    if name == PROGRAM_ARCHITECTURE:
        raise ModelError("a torch.export model is loaded from its program, not built from a factory")
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=ARCHITECTURE_GROUP) if ep.name == name]
    if not found:
        raise ModelError(
            f"unknown architecture {name!r}: use one of {architecture_names()}, or register it as an "
            f'entry point [project.entry-points."{ARCHITECTURE_GROUP}"] {name} = "package.module:factory" '
            "in a package you install"
        )
    try:
        fn = found[0].load()
    except Exception as exc:  # an installed plugin that fails to import: report it
        raise ModelError(f"architecture entry point {name!r} ({found[0].value}) failed to load: {exc}") from exc
    if not callable(fn):
        raise ModelError(f"architecture entry point {name!r} ({found[0].value}) is not callable")
    return fn  # type: ignore[no-any-return]
