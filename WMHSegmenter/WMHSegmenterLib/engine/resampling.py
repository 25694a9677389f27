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
        volume.to_sitk(),
        [int(n) for n in shape_zyx[::-1]],
        sitk.Transform(),
        interpolator,
        geometry.origin,
        geometry.spacing,
        geometry.direction,
        float(default),
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
    oriented, size_xyz = lps_oriented(volume.geometry, volume.shape)
    size = np.asarray(size_xyz, dtype=float)
    old_spacing = np.asarray(oriented.spacing)
    target = np.array([o if s is None else float(s) for s, o in zip(spacing_xyz, old_spacing)])
    new_size = np.maximum(np.round(size * old_spacing / target), 1).astype(int)
    direction = oriented.direction_matrix
    # keep the physical centre of the first voxel's corner fixed so the field of view is preserved
    corner = np.asarray(oriented.origin) - direction @ (old_spacing / 2)
    origin = corner + direction @ (target / 2)
    geometry = Geometry(tuple(target.tolist()), tuple(origin.tolist()), tuple(direction.ravel().tolist()))
    return geometry, tuple(int(s) for s in new_size[::-1])


def lps_oriented(geometry: Geometry, shape_zyx) -> tuple[Geometry, tuple[int, int, int]]:
    """The grid's axes permuted and flipped towards LPS, as SimpleITK's DICOMOrient places them, and its
    size (x, y, z); worked out on a 2-voxel stand-in, since orienting an image of the grid's own size
    would allocate it (300 MB for a 0.5 mm 3D FLAIR)."""
    old = geometry.direction_matrix
    new = np.asarray(sitk.DICOMOrient(grid_image(geometry, (2, 2, 2)), "LPS").GetDirection()).reshape(3, 3)
    source = np.argmax(np.abs(old.T @ new), axis=0)  # the old axis each new axis runs along
    flipped = np.sign(np.einsum("ij,ij->j", old[:, source], new)) < 0
    size_xyz = np.asarray(shape_zyx[::-1])[source]
    spacing = np.asarray(geometry.spacing)[source]
    # a flipped axis starts at the far end of the old one
    origin = np.asarray(geometry.origin) + new[:, flipped] @ -(spacing[flipped] * (size_xyz[flipped] - 1))
    oriented = Geometry(tuple(spacing.tolist()), tuple(origin.tolist()), tuple(new.ravel().tolist()))
    return oriented, tuple(int(n) for n in size_xyz)
