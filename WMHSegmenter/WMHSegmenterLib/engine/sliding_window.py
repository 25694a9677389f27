"""Sliding-window inference with Gaussian blending: whole volumes through a patch-sized network."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .errors import Cancelled

#: Gaussian sigma as a fraction of the patch size; 1/8 as in nnU-Net (Isensee et al., Nat. Methods 2021).
SIGMA_FRACTION = 1 / 8


def gaussian_importance(patch_size: Sequence[int], device="cpu") -> torch.Tensor:
    """Weights that trust a tile's centre more than its border, so overlapping tiles blend without seams."""
    axes = []
    for size in patch_size:
        coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        axes.append(torch.exp(-0.5 * (coords / max(size * SIGMA_FRACTION, 1e-3)) ** 2))
    weights = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    weights = weights / weights.max()
    return weights.clamp_min(1e-3).to(device)


def tile_starts(size: int, patch: int, overlap: float, align: int = 1) -> list[int]:
    """Tile starts every ``patch * (1 - overlap)`` voxels from 0, the last tile flush with the end.

    This is MONAI's placement (``sliding_window_inference``), kept on purpose: instance normalisation
    makes a tile's output depend on which voxels the tile holds, so only identical tiles give
    identical output, and the benchmark compares the two at equal output. Starts are multiples of
    ``align`` (the network's stride, with ``size`` and ``patch`` multiples of it too), so every
    tile's feature maps fall on whole voxels of each layer's coarser grid.
    """
    if size <= patch:
        return [0]
    step = max(int(patch * (1 - overlap)) // align * align, align)
    return [*range(0, size - patch, step), size - patch]


def fitted_patch_size(
    shape: Sequence[int], patch_size: Sequence[int], divisor: Sequence[int]
) -> tuple[int, ...]:
    """Shrink the patch where the volume is smaller, keeping it divisible by the network's stride.

    A patch of one stride along every axis would leave the network's deepest level a single voxel,
    which instance normalisation cannot normalise: such a patch is two strides long along x.
    """
    fitted = [min(p, int(np.ceil(s / d)) * d) for s, p, d in zip(shape, patch_size, divisor)]
    if fitted == list(divisor):
        fitted[-1] *= 2
    return tuple(fitted)


def padded_shape(shape: Sequence[int], patch_size: Sequence[int], align: Sequence[int]) -> tuple[int, ...]:
    """The volume's shape grown to at least one patch and to whole multiples of ``align``."""
    return tuple(max(-(-s // a) * a, p) for s, p, a in zip(shape, patch_size, align))


def predict_sliding_window(
    network: torch.nn.Module,
    image: torch.Tensor,
    patch_size: Sequence[int],
    activation: Callable[[torch.Tensor], torch.Tensor],
    overlap: float = 0.5,
    tile_batch: int = 1,
    mirror_axes: Sequence[int] = (),
    on_tile: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    amp_dtype: torch.dtype | None = None,
    align: Sequence[int] = (1, 1, 1),
    observed_forward: Callable[[torch.Tensor, list[tuple[slice, ...]]], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Probabilities (C_out, z, y, x) for ``image`` (C_in, z, y, x), on the image's device.

    ``mirror_axes`` are spatial axes (0=z, 1=y, 2=x) for test-time mirroring; every combination of
    flips is averaged. ``on_tile(done, total)`` reports progress; ``should_stop()`` is polled
    before every tile batch and raises :class:`Cancelled`. The volume is zero-padded to at least the
    patch and to multiples of ``align``. ``amp_dtype`` runs the network under autocast to that dtype.
    ``observed_forward(tiles, regions)`` replaces the network call of the un-mirrored pass, so
    activations can be captured without a second forward pass.
    """
    device = image.device
    shape = tuple(image.shape[1:])
    padded = padded_shape(shape, patch_size, align)
    pad = [(0, ps - s) for s, ps in zip(shape, padded)]
    if any(after for _, after in pad):
        flat_pad = [value for axis in reversed(pad) for value in axis]
        image = torch.nn.functional.pad(image, flat_pad)
    axes_starts = [tile_starts(s, p, overlap, a) for s, p, a in zip(padded, patch_size, align)]
    starts = list(itertools.product(*axes_starts))
    weights = gaussian_importance(patch_size, device)
    probabilities = None
    weight_sum = torch.zeros(padded, device=device)
    flips = [axes for n in range(len(mirror_axes) + 1) for axes in itertools.combinations(mirror_axes, n)]
    for first in range(0, len(starts), tile_batch):
        if should_stop is not None and should_stop():
            raise Cancelled()
        batch_starts = starts[first : first + tile_batch]
        regions = [tuple(slice(s, s + p) for s, p in zip(start, patch_size)) for start in batch_starts]
        tiles = torch.stack([image[(slice(None), *region)] for region in regions])
        first_pass = network if observed_forward is None else lambda t, at=regions: observed_forward(t, at)
        tile_probabilities = _mirrored_prediction(network, first_pass, tiles, activation, flips, amp_dtype)
        if probabilities is None:
            probabilities = torch.zeros((tile_probabilities.shape[1], *padded), device=device)
        for region, tile in zip(regions, tile_probabilities):
            probabilities[(slice(None), *region)] += tile * weights
            weight_sum[region] += weights
        if on_tile is not None:
            on_tile(min(first + tile_batch, len(starts)), len(starts))
    probabilities /= weight_sum
    return probabilities[(slice(None), *(slice(0, s) for s in shape))]


def _mirrored_prediction(
    network, first_pass, tiles: torch.Tensor, activation, flips, amp_dtype: torch.dtype | None
) -> torch.Tensor:
    """Only the network runs under autocast; the activation takes its logits in float32: softmax
    outputs computed in bfloat16 need not sum to 1, and a voxel's label (argmax) then disagreed with
    its probability map (> 0.5)."""
    total = None
    for axes in flips:
        dims = [a + 2 for a in axes]
        flipped = torch.flip(tiles, dims) if dims else tiles
        with torch.autocast(device_type=tiles.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = (network if dims else first_pass)(flipped)
        prediction = activation(logits.float())
        prediction = torch.flip(prediction, dims) if dims else prediction
        total = prediction if total is None else total + prediction
    return total / len(flips)
