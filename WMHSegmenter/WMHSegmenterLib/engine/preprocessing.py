"""Preprocessing shared by the predictor and by training, so both see identical network inputs."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Voxels darker than this fraction of the bright end (99.5th percentile) count as air.
HEAD_THRESHOLD_FRACTION = 0.05


def head_mask(image: np.ndarray) -> np.ndarray:
    """Voxels belonging to the head (or brain, if skull-stripped): bright enough, holes filled."""
    sample = image[::2, ::2, ::2]
    positive = sample[sample > 0]
    if positive.size == 0:
        return np.ones(image.shape, dtype=bool)
    threshold = HEAD_THRESHOLD_FRACTION * float(np.percentile(positive, 99.5))
    mask = image > threshold
    # fill holes slice by slice along z: cheap, and catches dark CSF/ventricles inside the brain
    for index in range(mask.shape[0]):
        mask[index] = ndimage.binary_fill_holes(mask[index])
    return mask


def bounding_box(mask: np.ndarray, margin_voxels) -> tuple[slice, slice, slice]:
    """The box around ``mask`` widened by a margin, clipped to the array; the whole array if empty."""
    if not mask.any():
        return tuple(slice(0, s) for s in mask.shape)
    box = []
    for axis, size in enumerate(mask.shape):
        others = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.any(axis=others))
        start = max(int(present[0]) - int(margin_voxels[axis]), 0)
        stop = min(int(present[-1]) + 1 + int(margin_voxels[axis]), size)
        box.append(slice(start, stop))
    return tuple(box)


def zscore(channel: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance inside the mask; outside the mask 0 (the mean), as in training."""
    values = channel[mask]
    mean = float(values.mean()) if values.size else 0.0
    std = float(values.std()) if values.size else 1.0
    normalized = (channel - mean) / max(std, 1e-8)
    normalized[~mask] = 0.0
    return normalized.astype(np.float32, copy=False)
