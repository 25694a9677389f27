"""A configurable 3D U-Net whose blocks have stable names (encoder.k, bottleneck, decoder.k).

Index k is the resolution level: encoder.0 and decoder.0 work at full resolution, encoder.k and
decoder.k at the k-th downsampling. Activation capture and attribution address blocks by these
names, so renaming them breaks saved activation settings.
Kernel sizes and strides are given per level in array order (z, y, x): the WMH seed's in-plane
3x3x1 kernels are ``[1, 3, 3]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

ACTIVATIONS = ("leakyrelu", "prelu", "relu")
NORMS = ("instance", "batch", "none")


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int
    out_channels: int
    features: tuple[int, ...] = (16, 32, 64, 128)
    kernel_sizes: tuple[tuple[int, int, int], ...] | None = None
    strides: tuple[tuple[int, int, int], ...] | None = None
    convs_per_block: int = 2
    norm: str = "instance"
    activation: str = "leakyrelu"
    residual: bool = False
    deep_supervision: bool = False

    def __post_init__(self):
        levels = len(self.features)
        kernels = self.kernel_sizes or ((3, 3, 3),) * levels
        strides = self.strides or ((1, 1, 1),) + ((2, 2, 2),) * (levels - 1)
        object.__setattr__(self, "features", tuple(int(f) for f in self.features))
        object.__setattr__(self, "kernel_sizes", tuple(tuple(int(k) for k in ks) for ks in kernels))
        object.__setattr__(self, "strides", tuple(tuple(int(s) for s in st) for st in strides))
        problems = []
        if levels < 2:
            problems.append("needs at least 2 levels")
        if len(self.kernel_sizes) != levels or len(self.strides) != levels:
            problems.append("kernel_sizes and strides need one entry per level")
        if any(len(k) != 3 or any(v % 2 == 0 or v < 1 for v in k) for k in self.kernel_sizes):
            problems.append("kernel sizes must be three odd numbers per level")
        if any(len(s) != 3 or any(v < 1 for v in s) for s in self.strides) or self.strides[0] != (1, 1, 1):
            problems.append("strides must be three positive numbers per level, (1, 1, 1) at level 0")
        if self.norm not in NORMS:
            problems.append(f"norm must be one of {NORMS}")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation must be one of {ACTIVATIONS}")
        if problems:
            raise ValueError("invalid U-Net configuration: " + "; ".join(problems))

    @property
    def total_stride(self) -> tuple[int, int, int]:
        """The factor every patch dimension must be divisible by."""
        total = [1, 1, 1]
        for stride in self.strides:
            total = [t * s for t, s in zip(total, stride)]
        return tuple(total)

    def to_dict(self) -> dict:
        data = asdict(self)
        return {k: list(map(list, v)) if k in ("kernel_sizes", "strides") else v for k, v in data.items()}


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True, eps=1e-5)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    return nn.Identity()


def _activation(kind: str, channels: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(channels)
    if kind == "relu":
        return nn.ReLU(inplace=True)
    return nn.LeakyReLU(0.01, inplace=True)


class ConvBlock(nn.Module):
    """Convolutions, each followed by norm and activation; optionally residual (a 1x1 projection)."""

    def __init__(self, config: UNetConfig, in_channels: int, out_channels: int, kernel, stride):
        super().__init__()
        padding = tuple(k // 2 for k in kernel)
        layers = []
        for index in range(config.convs_per_block):
            layers += [
                nn.Conv3d(
                    in_channels if index == 0 else out_channels,
                    out_channels,
                    kernel,
                    stride=stride if index == 0 else 1,
                    padding=padding,
                    bias=config.norm == "none",
                ),
                _norm(config.norm, out_channels),
            ]
            if index < config.convs_per_block - 1 or not config.residual:
                layers.append(_activation(config.activation, out_channels))
        self.convs = nn.Sequential(*layers)
        self.skip = None
        if config.residual:
            self.skip = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                _norm(config.norm, out_channels),
            )
            self.final_activation = _activation(config.activation, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.convs(x)
        if self.skip is not None:
            out = self.final_activation(out + self.skip(x))
        return out


class UpBlock(nn.Module):
    """Transposed-conv upsampling, concatenation with the skip, then a ConvBlock."""

    def __init__(self, config: UNetConfig, level: int):
        super().__init__()
        coarse, fine = config.features[level + 1], config.features[level]
        stride = config.strides[level + 1]
        self.upsample = nn.ConvTranspose3d(coarse, fine, stride, stride=stride, bias=False)
        self.block = ConvBlock(config, 2 * fine, fine, config.kernel_sizes[level], 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([self.upsample(x), skip], dim=1))


class UNet3D(nn.Module):
    """Returns logits (N, out_channels, z, y, x); in training with deep supervision, a list finest-first."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        levels = len(config.features)
        in_channels = [config.in_channels, *config.features[:-1]]
        self.encoder = nn.ModuleList(
            ConvBlock(config, in_channels[k], config.features[k], config.kernel_sizes[k], config.strides[k])
            for k in range(levels - 1)
        )
        self.bottleneck = ConvBlock(
            config, config.features[-2], config.features[-1], config.kernel_sizes[-1], config.strides[-1]
        )
        self.decoder = nn.ModuleList(UpBlock(config, k) for k in range(levels - 1))
        self.head = nn.Conv3d(config.features[0], config.out_channels, 1)
        self.deep_heads = nn.ModuleList(
            nn.Conv3d(config.features[k], config.out_channels, 1)
            for k in (range(1, levels - 1) if config.deep_supervision else ())
        )

    def block_names(self) -> list[str]:
        """Blocks in the order data flows through them: the contracting path, then the expansive path."""
        levels = len(self.config.features)
        encoder = [f"encoder.{k}" for k in range(levels - 1)]
        decoder = [f"decoder.{k}" for k in reversed(range(levels - 1))]
        return [*encoder, "bottleneck", *decoder]

    def forward(self, x: torch.Tensor):
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        x = self.bottleneck(x)
        decoded = []
        for level in reversed(range(len(self.decoder))):
            x = self.decoder[level](x, skips[level])
            decoded.append(x)
        logits = self.head(x)
        if self.training and self.deep_heads:
            finest_first = decoded[::-1]
            return [logits, *(head(finest_first[k + 1]) for k, head in enumerate(self.deep_heads))]
        return logits

    def block(self, name: str) -> nn.Module:
        """The block called ``name`` (see :meth:`block_names`), where activations are captured."""
        return self.get_submodule(name)


class Ensemble(nn.Module):
    """U-Nets of one architecture whose probabilities are averaged, called like one U-Net.

    Averaging the networks' probabilities (not their logits) is how nnU-Net ensembles its folds
    (Isensee et al., Nature Methods 2021). To stay a drop-in network for the sliding window, mirroring
    and attribution, it returns the logits of the averaged probabilities: the output activation turns
    them back into exactly that average. Activations are the first member's: its blocks are the ones
    :meth:`block` hands out.
    """

    def __init__(self, members: list[UNet3D], sigmoid: bool):
        super().__init__()
        if len(members) < 2 or any(member.config != members[0].config for member in members):
            raise ValueError("an ensemble needs at least two U-Nets of one configuration")
        self.members = nn.ModuleList(members)
        self.sigmoid = sigmoid

    @property
    def config(self) -> UNetConfig:
        return self.members[0].config

    def block_names(self) -> list[str]:
        return self.members[0].block_names()

    def block(self, name: str) -> nn.Module:
        return self.members[0].block(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activation = torch.sigmoid if self.sigmoid else lambda logits: logits.softmax(1)
        average = sum(activation(member(x).float()) for member in self.members) / len(self.members)
        average = average.clamp(_EPSILON, 1 - _EPSILON)
        return torch.logit(average) if self.sigmoid else average.log()


#: Averaged probabilities are kept this far from 0 and 1 so their logits stay finite.
_EPSILON = 1e-6
