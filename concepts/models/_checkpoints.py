"""Checkpoints read without running code: state dicts (``torch.load(weights_only=True)`` or
safetensors) and the weights' digest that goes into a model id.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch
from torch import nn

from concepts._errors import ModelError, UnsafeCheckpointError

__all__ = ["load_state_dict_safely"]


def load_state_dict_safely(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict: ``.safetensors`` with safetensors, anything else with
    ``torch.load(..., weights_only=True)`` only.

    Raises
    ------
    UnsafeCheckpointError
        The file needs arbitrary unpickling (it may run code): it is refused.
    ModelError
        Missing file, not a checkpoint, or not a state dict of tensors.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"checkpoint not found: {p}")
    if p.suffix == ".safetensors":
        return _load_safetensors(p)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{p}: refused — this checkpoint needs arbitrary unpickling (it could run code). "
            "Re-save it as a plain state dict: torch.save(model.state_dict(), path)"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelError(f"{p}: not a readable torch checkpoint ({exc})") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise ModelError(f"{p}: expected a state dict (str -> tensor), got {type(obj).__name__}")
    return obj


def _load_safetensors(p: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise ModelError("reading .safetensors needs the safetensors package — `pip install safetensors`") from exc
    try:
        return dict(load_file(str(p), device="cpu"))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{p}: not a readable safetensors file ({exc})") from exc


def _weights_sha256(module: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        t = v.detach().cpu().contiguous()
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()
