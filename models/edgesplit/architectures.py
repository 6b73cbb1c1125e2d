"""Analytic per-sample layer profiles of the preset networks (spec §7.1).

Each network is described declaratively (a VGG channel list, a ResNet stage list) and cut into
*units*, the candidate cut points. Each unit's cost is computed from tensor shapes:

* forward work = 2 x MACs of its convolution and linear layers [FLOP per sample]; 1x1
  shortcut convolutions count, BatchNorm, ReLU, pooling, residual and bias adds do not;
* parameters = conv weights (+ bias where present) + BatchNorm gamma and beta + linear
  weights and bias [count];
* output = elements of the unit's output tensor per sample [count].

All tensors are fp32, so bytes = 4 x count. :func:`layer_profile` returns the units as
canonical EdgeSplit layer dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod

BYTES_PER_VALUE = 4
"""fp32 storage of one parameter or activation [byte]."""

Shape = tuple[int, ...]
"""Per-sample tensor shape: (channels, height, width), or (features,) after flattening."""

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
"""VGG16 feature extractor: output channels of each 3x3 convolution, "M" = 2x2 max pooling."""


@dataclass(frozen=True)
class Cost:
    """Multiply-accumulates [MAC per sample] and parameters [count] of one or more layers."""

    macs: int = 0
    params: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.macs + other.macs, self.params + other.params)


@dataclass(frozen=True)
class Unit:
    """A cut unit: its name, its cost and the per-sample shape of its output."""

    name: str
    cost: Cost
    out_shape: Shape

    @property
    def fwd_flops(self) -> int:
        """Forward work per sample: 2 x MACs [FLOP]."""
        return 2 * self.cost.macs

    @property
    def param_bytes(self) -> int:
        """Parameter storage [byte]."""
        return BYTES_PER_VALUE * self.cost.params

    @property
    def out_bytes(self) -> int:
        """Output activation per sample [byte]."""
        return BYTES_PER_VALUE * prod(self.out_shape)

    def layer(self) -> dict[str, object]:
        """The canonical EdgeSplit layer dict (backward work and saved activations: defaults)."""
        return {
            "name": self.name,
            "fwd_flops": float(self.fwd_flops),
            "bwd_flops": None,
            "param_bytes": float(self.param_bytes),
            "out_bytes": float(self.out_bytes),
            "saved_act_bytes": None,
        }


# ---- layers: (input shape) -> (output shape, cost) ----------------------------------------


def conv2d(
    shape: Shape,
    out_channels: int,
    kernel: int = 3,
    stride: int = 1,
    *,
    bias: bool,
    batch_norm: bool,
) -> tuple[Shape, Cost]:
    """A square convolution with 'same' padding (kernel // 2), optionally followed by BatchNorm."""
    channels, height, width = shape
    padding = kernel // 2
    out_h = (height + 2 * padding - kernel) // stride + 1
    out_w = (width + 2 * padding - kernel) // stride + 1
    weights = channels * kernel * kernel * out_channels
    macs = weights * out_h * out_w
    params = weights + (out_channels if bias else 0) + (2 * out_channels if batch_norm else 0)
    return (out_channels, out_h, out_w), Cost(macs, params)


def max_pool(shape: Shape, size: int = 2) -> tuple[Shape, Cost]:
    """Non-overlapping max pooling (no work counted, no parameters)."""
    channels, height, width = shape
    return (channels, height // size, width // size), Cost()


def global_avg_pool(shape: Shape) -> tuple[Shape, Cost]:
    """Average over the spatial dimensions (no work counted, no parameters)."""
    return (shape[0],), Cost()


def linear(shape: Shape, out_features: int) -> tuple[Shape, Cost]:
    """A fully connected layer with bias on the flattened input."""
    weights = prod(shape) * out_features
    return (out_features,), Cost(weights, weights + out_features)


def basic_block(shape: Shape, out_channels: int, stride: int) -> tuple[Shape, Cost]:
    """ResNet BasicBlock: two 3x3 conv+BN, plus a 1x1 conv+BN shortcut when the shape changes."""
    mid, first = conv2d(shape, out_channels, 3, stride, bias=False, batch_norm=True)
    out, second = conv2d(mid, out_channels, 3, 1, bias=False, batch_norm=True)
    cost = first + second
    if stride != 1 or shape[0] != out_channels:
        _, shortcut = conv2d(shape, out_channels, 1, stride, bias=False, batch_norm=True)
        cost = cost + shortcut
    return out, cost


# ---- networks ---------------------------------------------------------------------------


def vgg(
    config: tuple[int | str, ...],
    input_shape: Shape,
    classifier: tuple[int, ...],
    *,
    batch_norm: bool,
) -> list[Unit]:
    """VGG units: each 3x3 conv (+BN) + ReLU, with a following max pool merged into it
    (name suffix ``+pool``), then one unit per fully connected layer of ``classifier``.

    Units are named ``conv<k>_<channels>`` and ``fc<k>_<in>_<out>`` (``fc_<in>_<out>`` when
    there is a single fully connected layer).
    """
    units: list[Unit] = []
    shape = input_shape
    for item in config:
        if item == "M":
            last = units[-1]
            shape, _ = max_pool(shape)
            units[-1] = Unit(f"{last.name}+pool", last.cost, shape)
            continue
        shape, cost = conv2d(shape, int(item), bias=True, batch_norm=batch_norm)
        units.append(Unit(f"conv{len(units) + 1}_{item}", cost, shape))
    for k, out_features in enumerate(classifier, start=1):
        in_features = prod(shape)
        shape, cost = linear(shape, out_features)
        label = str(k) if len(classifier) > 1 else ""
        units.append(Unit(f"fc{label}_{in_features}_{out_features}", cost, shape))
    return units


def resnet_cifar(
    stage_channels: tuple[int, ...],
    blocks_per_stage: tuple[int, ...],
    input_shape: Shape,
    classes: int,
) -> list[Unit]:
    """CIFAR-style ResNet units: a 3x3 conv+BN stem (``conv1``), one unit per BasicBlock
    (``layer<s>.<b>``; every stage after the first starts with stride 2), and the head
    ``avgpool+fc_<in>_<classes>``."""
    shape, cost = conv2d(input_shape, stage_channels[0], bias=False, batch_norm=True)
    units = [Unit("conv1", cost, shape)]
    stages = zip(stage_channels, blocks_per_stage, strict=True)
    for stage, (channels, blocks) in enumerate(stages, start=1):
        for block in range(blocks):
            stride = 2 if stage > 1 and block == 0 else 1
            shape, cost = basic_block(shape, channels, stride)
            units.append(Unit(f"layer{stage}.{block}", cost, shape))
    shape, _ = global_avg_pool(shape)
    in_features = prod(shape)
    shape, cost = linear(shape, classes)
    units.append(Unit(f"avgpool+fc_{in_features}_{classes}", cost, shape))
    return units


ARCHITECTURES: dict[str, Callable[[], list[Unit]]] = {
    "vgg16-cifar10": lambda: vgg(VGG16, (3, 32, 32), (10,), batch_norm=True),
    "resnet18-cifar10": lambda: resnet_cifar((64, 128, 256, 512), (2, 2, 2, 2), (3, 32, 32), 10),
    "vgg16-imagenet": lambda: vgg(VGG16, (3, 224, 224), (4096, 4096, 1000), batch_norm=False),
}
"""The preset networks by name (spec §7.1)."""


def architecture_names() -> list[str]:
    """Names accepted by :func:`units` and :func:`layer_profile`."""
    return list(ARCHITECTURES)


def units(name: str) -> list[Unit]:
    """The cut units of network ``name``, in execution order."""
    try:
        build = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(
            f"unknown architecture {name!r}; valid: {', '.join(ARCHITECTURES)}"
        ) from None
    return build()


def layer_profile(name: str) -> list[dict[str, object]]:
    """The canonical EdgeSplit ``layers`` list of network ``name`` (per sample, fp32).

    >>> [layer["name"] for layer in layer_profile("resnet18-cifar10")][-2:]
    ['layer4.1', 'avgpool+fc_512_10']
    >>> layer_profile("resnet18-cifar10")[-1]["fwd_flops"]
    10240.0
    """
    return [unit.layer() for unit in units(name)]
