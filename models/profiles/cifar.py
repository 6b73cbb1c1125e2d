"""The spec's CIFAR-10 networks in plain ``torch.nn``, one child per cut unit (imports torch).

:func:`vgg16` and :func:`resnet18` are ``nn.Sequential`` models whose top-level children are
the units of the analytic presets (spec §7.1 of EdgeSplit, §7 of TinyFEL), so
``from_torch(vgg16(), x)`` needs no ``blocks``, and the command line works on them:

    edgeopt profile edgeopt.models.profiles.cifar:resnet18 --input-shape 3 32 32 -o layers.json

Child names follow the spec's unit names with ``.`` and ``+`` replaced by ``_`` (module
names cannot contain dots): ``conv2_64_pool``, ``layer1_0``, ``avgpool_fc_512_10``.
No weights are downloaded; parameters are randomly initialised (seeded by the caller).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
"""Output channels of each 3x3 convolution; "M" = 2x2 max pooling merged into the unit before."""


def vgg16(classes: int = 10) -> nn.Sequential:
    """VGG16 for 32x32 inputs: 13 conv(bias)+BN+ReLU units (pooling merged) and one FC unit."""
    units: OrderedDict[str, nn.Module] = OrderedDict()
    channels = 3
    layers: list[nn.Module] = []
    name = ""
    for item in VGG16_CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
            units[f"{name}_pool"] = nn.Sequential(*layers)
            layers, name = [], ""
            continue
        if layers:
            units[name] = nn.Sequential(*layers)
        layers = [nn.Conv2d(channels, int(item), 3, padding=1), nn.BatchNorm2d(int(item)), nn.ReLU()]
        name = f"conv{len(units) + 1}_{item}"
        channels = int(item)
    units[f"fc_{channels}_{classes}"] = nn.Sequential(nn.Flatten(), nn.Linear(channels, classes))
    return nn.Sequential(units)


class BasicBlock(nn.Module):
    """ResNet BasicBlock: two 3x3 conv+BN (no bias), a 1x1 conv+BN shortcut when the shape
    changes, ReLU after the residual add."""

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def resnet18(classes: int = 10) -> nn.Sequential:
    """CIFAR ResNet-18: 3x3 conv+BN+ReLU stem, eight BasicBlocks, average pool + FC head."""
    units: OrderedDict[str, nn.Module] = OrderedDict(
        conv1=nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
    )
    channels = 64
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            units[f"layer{stage}_{block}"] = BasicBlock(channels, width, stride)
            channels = width
    units[f"avgpool_fc_{channels}_{classes}"] = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)
    )
    return nn.Sequential(units)


NETWORKS = {"vgg16-cifar10": vgg16, "resnet18-cifar10": resnet18}
"""Builders by the preset architecture names of :mod:`edgeopt.models.edgesplit.architectures`."""
