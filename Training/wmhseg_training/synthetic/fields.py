"""Smooth random fields: the raw material of lesion shapes, head unevenness, texture, bias and warps."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def smooth_noise(rng: np.random.Generator, shape, sigma_voxels: float) -> np.ndarray:
    """Gaussian noise smoothed with ``sigma_voxels`` and rescaled to unit std (float32).

    Wide kernels are applied on a grid reduced by up to sigma/1.5 and interpolated back: the same field
    statistics at a fraction of the cost.
    """
    factor = max(1, int(sigma_voxels / 1.5))
    small = [int(np.ceil(n / factor)) + 1 for n in shape]
    noise = ndimage.gaussian_filter(rng.standard_normal(small, dtype=np.float32), sigma_voxels / factor)
    if factor > 1:
        noise = interpolate_grid(noise, [(s - 1) * factor + 1 for s in small])
    noise = noise[tuple(slice(0, n) for n in shape)]
    return ((noise - noise.mean()) / max(float(noise.std()), 1e-6)).astype(np.float32)


def control_point_field(
    rng: np.random.Generator, shape_zyx, spacing_zyx, control_spacing_mm: float, channels: int | None = None
) -> np.ndarray:
    """Unit-variance noise on control points ``control_spacing_mm`` apart, interpolated (float32).

    Control points are placed in mm, so a patch and a whole brain see fields of the same smoothness.
    With ``channels``, returns that many independent fields stacked first.
    """
    extent = (np.asarray(shape_zyx) - 1) * np.asarray(spacing_zyx)
    nodes = [max(2, int(np.ceil(e / control_spacing_mm)) + 1) for e in extent]
    control = rng.standard_normal((channels or 1, *nodes), dtype=np.float32)
    fields = np.stack([interpolate_grid(c, shape_zyx) for c in control])
    return fields if channels else fields[0]


def interpolate_grid(values: np.ndarray, shape_zyx) -> np.ndarray:
    """Trilinear resize of a 3D grid with its corners kept (align_corners), one axis at a time.

    Three small matrix products: several times faster than ``F.interpolate`` when the input is coarse.
    """
    out = np.asarray(values, dtype=np.float32)
    for axis in (2, 1, 0):  # the last axis first: the data grows as it goes
        weights = _linear_weights(int(shape_zyx[axis]), out.shape[axis])
        out = np.moveaxis(np.tensordot(weights, out, axes=([1], [axis])), 0, axis)
    return np.ascontiguousarray(out)


def refine_twice(values: np.ndarray) -> np.ndarray:
    """Trilinear values on the lattice refined twice, as (8, n-1, ...) parity blocks (separable means)."""
    blocks = [values]
    for axis in range(3):
        low = [slice(None)] * 3
        high = [slice(None)] * 3
        low[axis], high[axis] = slice(None, -1), slice(1, None)
        blocks = [
            part
            for block in blocks
            for part in (block[tuple(low)], 0.5 * (block[tuple(low)] + block[tuple(high)]))
        ]
    return np.stack(blocks)


def _linear_weights(size_out: int, size_in: int) -> np.ndarray:
    """(size_out, size_in) matrix of linear interpolation weights, ends aligned."""
    weights = np.zeros((size_out, size_in), dtype=np.float32)
    if size_in == 1:
        weights[:, 0] = 1.0
        return weights
    position = np.linspace(0.0, size_in - 1, size_out)
    low = np.minimum(np.floor(position).astype(int), size_in - 2)
    fraction = (position - low).astype(np.float32)
    rows = np.arange(size_out)
    weights[rows, low] = 1.0 - fraction
    weights[rows, low + 1] = fraction
    return weights
