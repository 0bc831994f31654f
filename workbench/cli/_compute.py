"""The compute options shared by every command that runs the model (defined once here).

``--engine local|ray`` and ``--ray-address`` choose where activations are extracted;
``--device auto|cpu|cuda|mps`` where extraction, TCAV gradients, training and the what-if run;
``--precision fp32|bf16|fp16`` whether extraction runs under autocast. Commands take them as
parameters and build their workspace with :func:`compute_workspace`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from concepts import Workspace
from concepts.models import DEVICES, ENGINES, PRECISIONS, Compute

__all__ = ["DeviceOpt", "EngineOpt", "PrecisionOpt", "RayAddressOpt", "compute_settings", "compute_workspace"]

EngineOpt = Annotated[
    str,
    typer.Option("--engine", help=f"Where activations are extracted: {' or '.join(ENGINES)} (an actor pool "
                 "on a Ray cluster; needs the optional ray extra, see docs/scale.md).", rich_help_panel="Compute"),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", help="Ray cluster to use with --engine ray (HOST:PORT from `ray start "
                 "--head`); default: a local Ray instance.", rich_help_panel="Compute"),
]
DeviceOpt = Annotated[
    str,
    typer.Option("--device", help=f"{', '.join(DEVICES)}: where extraction, TCAV gradients, training and "
                 "the what-if run (auto: cuda, else mps, else cpu).", rich_help_panel="Compute"),
]
PrecisionOpt = Annotated[
    str,
    typer.Option("--precision", help=f"{', '.join(PRECISIONS)}: autocast of activation extraction "
                 "(cached apart from fp32; gradients and what-if stay fp32).", rich_help_panel="Compute"),
]


def compute_settings(engine: str = "local", ray_address: str | None = None, device: str = "auto",
                     precision: str = "fp32") -> Compute:
    """The :class:`Compute` of the options (a :class:`ComputeError` names a bad value)."""
    return Compute(device=device, engine=engine, ray_address=ray_address or None, precision=precision)


def compute_workspace(path: Path, engine: str = "local", ray_address: str | None = None,
                      device: str = "auto", precision: str = "fp32") -> Workspace:
    """A workspace whose activation cache and model steps use the compute options."""
    return Workspace(path, compute=compute_settings(engine, ray_address, device, precision))
