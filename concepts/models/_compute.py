"""Where the numbers are computed: the extraction engine, the torch device and the precision.

A :class:`Compute` is a frozen value passed from the command line (``--engine``, ``--ray-address``,
``--device``, ``--precision``) to the activation cache and to the steps that run the model:
extraction, TCAV gradients, training and the what-if at spatial layers. Each of those moves the
model to the device once per call (:func:`on_device`) and every batch to it, and returns CPU
arrays, so nothing else in the workbench needs to know the device.

Mixed precision (``bf16`` / ``fp16``) applies to extraction and to training forward passes only,
never to TCAV gradients or to the what-if (their verdicts hinge on small differences); it is off
by default, and activations computed with it are cached under a different key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from concepts._errors import ComputeError

if TYPE_CHECKING:
    import torch

    from concepts.models._classifier import ClassifierModel

__all__ = [
    "DEVICES",
    "ENGINES",
    "PRECISIONS",
    "Compute",
    "autocast",
    "on_device",
    "resolve_device",
]

#: ``--device`` choices; ``auto`` picks cuda, then mps, then cpu.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
#: ``--engine`` choices: ``local`` (this process) or ``ray`` (an actor pool on a Ray cluster).
ENGINES: tuple[str, ...] = ("local", "ray")
#: ``--precision`` choices: ``fp32`` (default) or autocast to ``bf16`` / ``fp16``.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Compute:
    """How extraction and the model steps run.

    Attributes
    ----------
    device
        ``auto``, ``cpu``, ``cuda`` (or ``cuda:N``) or ``mps``.
    engine
        ``local`` or ``ray`` (activation extraction only).
    ray_address
        Address of a running Ray cluster (``HOST:PORT`` or ``ray://HOST:PORT``); ``None``
        starts a local Ray instance (or reuses the one this process is connected to).
    precision
        ``fp32``, ``bf16`` or ``fp16`` (autocast of extraction and training forwards).
    """

    device: str = "cpu"
    engine: str = "local"
    ray_address: str | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        base = self.device.split(":", 1)[0]
        if base not in DEVICES or (":" in self.device and base != "cuda"):
            raise ComputeError(f"unknown device {self.device!r}: use one of {', '.join(DEVICES)} (or cuda:N)")
        if self.engine not in ENGINES:
            raise ComputeError(f"unknown engine {self.engine!r}: use one of {', '.join(ENGINES)}")
        if self.precision not in PRECISIONS:
            raise ComputeError(f"unknown precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if self.ray_address is not None and self.engine != "ray":
            raise ComputeError("--ray-address needs --engine ray")

    @property
    def torch_device(self) -> torch.device:
        """The resolved device (``auto`` becomes the best one available)."""
        return resolve_device(self.device)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``auto`` -> cuda if available, else mps if available, else cpu; others as given.

    Raises
    ------
    ComputeError
        An unknown name, or a device this machine does not have.
    """
    import torch

    if isinstance(name, torch.device):
        return name
    name = name or "cpu"
    if name == "auto":
        if _cuda_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    Compute(device=name)  # validates the name
    if name.startswith("cuda") and not _cuda_available():
        raise ComputeError(f"--device {name}: torch sees no CUDA GPU here (torch {torch.__version__}) — "
                           "use --device cpu or auto, or install a CUDA build of torch")
    if name == "mps" and not _mps_available():
        raise ComputeError("--device mps: this torch has no Metal (MPS) backend — use --device cpu or auto")
    return torch.device(name)


@contextmanager
def on_device(model: ClassifierModel, device: str | torch.device | None) -> Iterator[torch.device]:
    """Move ``model``'s module to ``device`` for the block, then back to where it was.

    Yields the device; a model already there is not copied (nested blocks move it once).
    ``None`` keeps the model where it is.
    """
    here = model.device
    dev = here if device is None else resolve_device(device)
    if dev == here:
        yield dev
        return
    model.module.to(dev)
    try:
        yield dev
    finally:
        model.module.to(here)


def autocast(device: torch.device, precision: str) -> Any:
    """``torch.autocast`` for ``bf16``/``fp16``; a no-op context for ``fp32``."""
    if precision == "fp32":
        return nullcontext()
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
