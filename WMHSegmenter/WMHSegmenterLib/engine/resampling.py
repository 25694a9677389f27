"""Moving volumes between grids with SimpleITK, which honours spacing, origin and direction."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .volume import Geometry, Volume


def grid_image(geometry: Geometry, shape_zyx) -> sitk.Image:
    """An empty image that stands for a grid: the target of a resampling."""
    image = sitk.Image([int(s) for s in shape_zyx[::-1]], sitk.sitkUInt8)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


def resample(
    volume: Volume, geometry: Geometry, shape_zyx, linear: bool = True, default: float = 0.0
) -> Volume:
    """``volume`` seen on another grid; points outside it get ``default``."""
    if volume.geometry.matches(geometry, tolerance=1e-6) and volume.shape == tuple(shape_zyx):
        return volume
    interpolator = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    image = sitk.Resample(
        volume.to_sitk(), grid_image(geometry, shape_zyx), sitk.Transform(), interpolator, float(default)
    )
    return Volume(sitk.GetArrayFromImage(image), geometry)


def world_bounds(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned world box around the voxel centres at the grid's corners."""
    shape = np.asarray(volume.shape) - 1
    corners = np.array([[z, y, x] for z in (0, shape[0]) for y in (0, shape[1]) for x in (0, shape[2])])
    points = volume.geometry.index_to_world(corners)
    return points.min(axis=0), points.max(axis=0)


def check_overlap(reference: Volume, other: Volume, other_source) -> None:
    """Refuse modalities that do not share space with the reference: their registration is broken."""
    low_a, high_a = world_bounds(reference)
    low_b, high_b = world_bounds(other)
    overlap = np.clip(np.minimum(high_a, high_b) - np.maximum(low_a, low_b), 0, None)
    extent = np.maximum(high_a - low_a, 1e-6)
    if np.prod(overlap / extent) < 0.5:
        raise InputError(
            "does not overlap the reference modality in space (not co-registered?)", other_source
        )


def working_grid(volume: Volume, spacing_xyz) -> tuple[Geometry, tuple[int, int, int]]:
    """The grid the network sees: the input's axes permuted/flipped towards LPS, at the model's spacing.

    Entries of ``spacing_xyz`` that are None keep the input's spacing along that (reoriented) axis.
    Obliqueness is kept: resampling across an oblique rotation would blur the image for nothing.
    """
    oriented = sitk.DICOMOrient(grid_image(volume.geometry, volume.shape), "LPS")
    size = np.asarray(oriented.GetSize(), dtype=float)
    old_spacing = np.asarray(oriented.GetSpacing())
    target = np.array([o if s is None else float(s) for s, o in zip(spacing_xyz, old_spacing)])
    new_size = np.maximum(np.round(size * old_spacing / target), 1).astype(int)
    direction = np.asarray(oriented.GetDirection()).reshape(3, 3)
    # keep the physical centre of the first voxel's corner fixed so the field of view is preserved
    corner = np.asarray(oriented.GetOrigin()) - direction @ (old_spacing / 2)
    origin = corner + direction @ (target / 2)
    geometry = Geometry(tuple(target.tolist()), tuple(origin.tolist()), tuple(direction.ravel().tolist()))
    return geometry, tuple(int(s) for s in new_size[::-1])
