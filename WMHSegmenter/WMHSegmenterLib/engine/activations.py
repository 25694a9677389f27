"""What the network sees: feature maps of named U-Net blocks and Grad-CAM attribution, whole-volume.

Captured during the normal sliding-window prediction (forward hooks on the un-mirrored pass; no
second forward pass) and blended with the same Gaussian weights as the probabilities. Maps stay
on each layer's own grid (stride s: spacing times s, first voxel centred on the s input voxels it
summarises), which is exact and small; :func:`on_input_grid` resamples one for display.
Accumulators larger than the in-memory budget spill to memory-mapped files in a temporary folder.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import InputError
from .resampling import resample
from .sliding_window import gaussian_importance
from .volume import Geometry, Volume

#: Accumulators beyond this many bytes go to disk (np.memmap) instead of RAM.
DEFAULT_MEMORY_BUDGET = 1 << 30
VIEWS = ("mean", "max", "pca", "channel:<k>", "gradcam:<class>")


@dataclass(frozen=True)
class LayerInfo:
    name: str
    channels: int
    stride: tuple[int, int, int]  # (z, y, x) relative to the network's input grid


def list_layers(network) -> list[LayerInfo]:
    """The addressable blocks, contracting path first, with channel count and cumulative stride."""
    config = network.config
    strides, total = [], np.ones(3, dtype=int)
    for stride in config.strides:
        total = total * np.asarray(stride)
        strides.append(tuple(int(s) for s in total))
    levels = len(config.features)
    info = {
        f"encoder.{k}": LayerInfo(f"encoder.{k}", config.features[k], strides[k]) for k in range(levels - 1)
    }
    info["bottleneck"] = LayerInfo("bottleneck", config.features[-1], strides[-1])
    for k in range(levels - 1):
        info[f"decoder.{k}"] = LayerInfo(f"decoder.{k}", config.features[k], strides[k])
    return [info[name] for name in network.block_names()]


@dataclass
class LayerActivations:
    """One layer's whole-volume maps on its own grid."""

    layer: LayerInfo
    geometry: Geometry
    features: np.ndarray  # (channels, z, y, x)
    gradcam: dict[str, np.ndarray] = field(default_factory=dict)

    def view(self, spec: str) -> Volume:
        """``mean``, ``max``, ``pca`` (first principal component), ``channel:K`` or ``gradcam:CLASS``."""
        kind, _, argument = spec.partition(":")
        if kind == "channel":
            if not argument.isdigit() or int(argument) >= self.layer.channels:
                raise InputError(f"{self.layer.name} has channels 0..{self.layer.channels - 1}; got {spec!r}")
            array = self.features[int(argument)]
        elif kind == "mean":
            array = self.features.mean(axis=0)
        elif kind == "max":
            array = self.features.max(axis=0)
        elif kind == "pca":
            array = first_principal_component(self.features)
        elif kind == "gradcam":
            if argument not in self.gradcam:
                raise InputError(
                    f"no attribution for class {argument!r} was captured (have: {sorted(self.gradcam)})"
                )
            array = self.gradcam[argument]
        else:
            raise InputError(f"unknown activation view {spec!r} (choose from {', '.join(VIEWS)})")
        return Volume(np.asarray(array, dtype=np.float32), self.geometry)


def first_principal_component(features: np.ndarray, max_samples: int = 200_000) -> np.ndarray:
    """Projection on the channels' main direction of variation; signed to correlate with the mean."""
    flat = features.reshape(features.shape[0], -1)
    step = max(flat.shape[1] // max_samples, 1)
    sample = flat[:, ::step].astype(np.float64)
    mean = sample.mean(axis=1, keepdims=True)
    _, vectors = np.linalg.eigh(np.cov(sample - mean))
    component = vectors[:, -1]
    if component.sum() < 0:
        component = -component
    return (component @ (flat - mean)).reshape(features.shape[1:]).astype(np.float32)


def output_channel_index(bundle, name: str) -> int:
    """The output channel a class name means: a channel name, a label value, or wt/tc/et (BraTS)."""
    aliases = {"wt": "whole tumor", "tc": "tumor core", "et": "enhancing tumor"}
    wanted = aliases.get(name.lower(), name.lower())
    for index, channel in enumerate(bundle.output_channels):
        if wanted in (channel.name.lower(), str(channel.label)) and not (
            bundle.output_activation == "softmax" and index == 0
        ):
            return index
    choices = [c.name for c in bundle.output_channels][1 if bundle.output_activation == "softmax" else 0 :]
    raise InputError(f"model {bundle.id} has no class {name!r} (choose from {', '.join(choices)})")


def on_input_grid(volume: Volume, reference: Volume) -> Volume:
    """A layer-grid map resampled (linearly) onto the input's grid: what the Slicer views overlay."""
    return resample(volume, reference.geometry, reference.shape, linear=True, default=0.0)


def layer_geometry(working: Geometry, stride_zyx: Sequence[int]) -> Geometry:
    stride_xyz = np.asarray(stride_zyx[::-1], dtype=float)
    first_centre = working.index_to_world(np.array([[(s - 1) / 2 for s in stride_zyx]]))[0]
    spacing = tuple((np.asarray(working.spacing) * stride_xyz).tolist())
    return Geometry(spacing, tuple(first_centre.tolist()), working.direction)


class ActivationRecorder:
    """Hooks on the requested blocks that blend every tile's features into whole-volume maps.

    Memory: channels x layer-grid voxels x 4 bytes per layer (plus one weight map per layer), e.g.
    16 channels of encoder.0 on a 200x200x150 crop take 384 MB; past ``memory_budget`` bytes the
    accumulators are files in a temporary folder (deleted by :meth:`close`).
    """

    def __init__(
        self,
        network,
        layers: Sequence[str],
        gradcam_classes: dict[str, int] | None = None,
        gradcam_region: str = "predicted",
        sigmoid: bool = False,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ):
        known = {info.name: info for info in list_layers(network)}
        unknown = [name for name in layers if name not in known]
        if unknown:
            raise InputError(f"unknown layer(s) {', '.join(unknown)} (available: {', '.join(known)})")
        if gradcam_region not in ("predicted", "image"):
            raise InputError("attribution region must be 'predicted' or 'image'")
        self.network = network
        self.layers = [known[name] for name in dict.fromkeys(layers)]
        self.gradcam_classes = gradcam_classes or {}
        self.gradcam_region = gradcam_region
        self.sigmoid = sigmoid
        self.memory_budget = memory_budget
        self.bytes_in_memory = 0
        self.spill_folder: str | None = None
        self._captured: dict[str, torch.Tensor] = {}
        self._accumulators: dict[str, dict[str, np.ndarray]] = {}
        self._shape: tuple[int, int, int] | None = None

    def start(self, padded_shape: Sequence[int], patch_size: Sequence[int]) -> None:
        """Allocate accumulators for a volume; called by the predictor before the first tile."""
        self._shape = tuple(padded_shape)
        self._weights = {}
        for info in self.layers:
            grid = tuple(-(-p // s) for p, s in zip(padded_shape, info.stride))
            tile = tuple(p // s for p, s in zip(patch_size, info.stride))
            self._weights[info.name] = gaussian_importance(tile)
            maps = {"features": self._allocate((info.channels, *grid)), "weight": self._allocate(grid)}
            maps.update({f"gradcam:{c}": self._allocate(grid) for c in self.gradcam_classes})
            self._accumulators[info.name] = maps

    def forward(self, tiles: torch.Tensor, regions: list[tuple[slice, ...]]) -> torch.Tensor:
        """The network's forward pass with capture (and, for attribution, one backward pass)."""
        handles = [
            self.network.block(info.name).register_forward_hook(self._hook(info.name)) for info in self.layers
        ]
        try:
            with torch.enable_grad() if self.gradcam_classes else torch.no_grad():
                logits = self.network(tiles)
                cams = self._gradcam(logits) if self.gradcam_classes else {}
        finally:
            for handle in handles:
                handle.remove()
        for info in self.layers:
            self._accumulate(info, self._captured[info.name].detach(), cams.get(info.name, {}), regions)
        self._captured.clear()
        return logits.detach()

    def results(self, shape: Sequence[int], working: Geometry) -> dict[str, LayerActivations]:
        """Blended maps cropped to the unpadded volume ``shape`` on each layer's grid."""
        results = {}
        for info in self.layers:
            maps = self._accumulators[info.name]
            extent = tuple(slice(0, -(-s // st)) for s, st in zip(shape, info.stride))
            weight = np.maximum(maps["weight"][extent], 1e-8)
            features = maps["features"][(slice(None), *extent)]
            features /= weight
            gradcam = {c: maps[f"gradcam:{c}"][extent] / weight for c in self.gradcam_classes}
            results[info.name] = LayerActivations(
                info, layer_geometry(working, info.stride), features, gradcam
            )
        return results

    def close(self) -> None:
        """Remove spilled files (maps already handed out stay readable until they are released)."""
        if self.spill_folder is not None:
            shutil.rmtree(self.spill_folder, ignore_errors=True)

    def _allocate(self, shape: tuple[int, ...]) -> np.ndarray:
        size = int(np.prod(shape)) * 4
        if self.bytes_in_memory + size <= self.memory_budget:
            self.bytes_in_memory += size
            return np.zeros(shape, dtype=np.float32)
        self.spill_folder = self.spill_folder or tempfile.mkdtemp(prefix="wmhseg-activations-")
        with tempfile.NamedTemporaryFile(dir=self.spill_folder, suffix=".f32", delete=False) as handle:
            name = handle.name
        return np.memmap(name, dtype=np.float32, mode="w+", shape=shape)

    def _hook(self, name: str):
        def capture(_module, _inputs, output):
            self._captured[name] = output

        return capture

    def _gradcam(self, logits: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """Grad-CAM (Selvaraju et al., ICCV 2017): channel weights = mean gradient of the class score."""
        tensors = [self._captured[info.name] for info in self.layers]
        cams: dict[str, dict[str, torch.Tensor]] = {info.name: {} for info in self.layers}
        for class_name, channel in self.gradcam_classes.items():
            if self.gradcam_region == "image":
                region = torch.ones_like(logits[:, channel])
            elif self.sigmoid:
                region = (logits[:, channel] > 0).float()
            else:
                region = (logits.argmax(1) == channel).float()
            score = (logits[:, channel] * region).sum()
            gradients = torch.autograd.grad(score, tensors, retain_graph=True, allow_unused=True)
            for info, activation, gradient in zip(self.layers, tensors, gradients):
                if gradient is None:
                    gradient = torch.zeros_like(activation)
                weights = gradient.mean(dim=(2, 3, 4), keepdim=True)
                cams[info.name][class_name] = torch.relu((weights * activation).sum(1)).detach()
        return cams

    def _accumulate(self, info: LayerInfo, features, cams: dict[str, torch.Tensor], regions) -> None:
        maps = self._accumulators[info.name]
        weight = self._weights[info.name]
        for index, region in enumerate(regions):
            cell = tuple(
                slice(r.start // s, r.start // s + w) for r, s, w in zip(region, info.stride, weight.shape)
            )
            maps["features"][(slice(None), *cell)] += (features[index].float().cpu() * weight).numpy()
            maps["weight"][cell] += weight.numpy()
            for class_name, cam in cams.items():
                maps[f"gradcam:{class_name}"][cell] += (cam[index].float().cpu() * weight).numpy()
