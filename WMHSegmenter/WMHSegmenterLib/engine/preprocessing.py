"""Preprocessing shared by the predictor and by training, so both see identical network inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from .resampling import check_overlap, resample, working_grid
from .volume import Geometry, Volume

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


@dataclass
class PreparedCase:
    """What the network sees, and where it lies: the cropped working grid."""

    image: np.ndarray  # (channels, z, y, x), normalized
    geometry: Geometry  # of the cropped working grid
    labels: np.ndarray | None = None  # (z, y, x) on the same grid, when a reference was given


def prepare_case(
    inputs: Mapping[str, Volume],
    input_names: Sequence[str],
    settings: Mapping[str, Any],
    sources: Mapping[str, str | Path] | None = None,
    labels: Volume | None = None,
) -> PreparedCase:
    """Modalities onto the first one's grid, then the working grid (model spacing), head crop, z-score.

    ``settings`` is a bundle's preprocessing section. Training passes ``labels`` (nearest-neighbour
    resampled alongside) so its patches come from exactly the images the predictor would build.
    """
    sources = sources or {name: name for name in input_names}
    reference = inputs[input_names[0]]
    for name in input_names[1:]:
        check_overlap(reference, inputs[name], sources[name])
    geometry, shape = working_grid(reference, settings.get("spacing_xyz_mm", (None, None, None)))
    channels = [
        resample(inputs[name], geometry, shape).array.astype(np.float32, copy=False) for name in input_names
    ]
    mask = head_mask(channels[0])
    margin_mm = float(settings.get("crop_margin_mm", 10.0))
    box = bounding_box(mask, [int(np.ceil(margin_mm / s)) for s in geometry.spacing[::-1]])
    image = np.stack([zscore(channel[box], mask[box]) for channel in channels])
    cropped_origin = tuple(geometry.index_to_world(np.array([[b.start for b in box]]))[0].tolist())
    cropped = Geometry(geometry.spacing, cropped_origin, geometry.direction)
    label_array = None if labels is None else resample(labels, geometry, shape, linear=False).array[box]
    return PreparedCase(image, cropped, label_array)
