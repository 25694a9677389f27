"""Random spatial transforms: where in the anatomy each voxel of a sample comes from.

A sample's grid is mapped to atlas mm by an affine (rotation, scaling, shear), a smooth elastic
displacement and an enlargement of the ventricles. The map is smooth, so it is evaluated on a coarse copy
of the output grid and interpolated; tissue (nearest voxel) and lesions (trilinear, in white matter) are
then read at every output voxel's mapped point. Both are read at the same point, so a lesion can only
ever land where the deformed anatomy has white matter.

Ventricle enlargement stands in for the atrophy that comes with white matter disease: every point is
pulled toward the ventricles by ``growth`` mm at the wall, fading over ``anatomy.VENTRICLE_PUSH_DECAY_MM``,
so the ventricles grow by about ``growth`` mm and the tissue around them is pushed outward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .anatomy import Anatomy, Lattice, Tissue
from .fields import interpolate_grid


@dataclass(frozen=True)
class SpatialSettings:
    """Ranges of the random deformation (uniform draws)."""

    rotation_degrees: float = 15.0  # about each axis: head positioning in the scanner
    scaling: float = 0.1  # each axis scaled by 1 +- this: head size and shape
    shear: float = 0.02
    elastic_mm: float = 3.0  # the control points' displacement std is drawn from [0, elastic_mm]
    elastic_spacing_mm: float = 32.0  # control-point spacing: folds stay smooth at this scale
    ventricle_growth_mm: tuple[float, float] = (0.0, 5.0)
    centre_jitter_mm: float = 6.0  # shift of whole-brain samples from the brain's centre


@dataclass
class SpatialTransform:
    """One drawn deformation: output offsets from the sample's centre (mm, z y x) -> atlas mm."""

    matrix: np.ndarray  # (3, 3)
    elastic: np.ndarray  # (3, a, b, c) mm on a control grid spanning the output's field of view
    ventricle_growth_mm: float

    @property
    def volume_ratio(self) -> float:
        """Output volume per atlas volume: lesion volumes drawn in the atlas are scaled by it."""
        return 1.0 / abs(float(np.linalg.det(self.matrix)))


def draw_transform(rng: np.random.Generator, settings: SpatialSettings, extent_mm) -> SpatialTransform:
    """A random transform for an output field of view of ``extent_mm`` (z, y, x)."""
    angles = np.radians(rng.uniform(-settings.rotation_degrees, settings.rotation_degrees, 3))
    matrix = np.eye(3)
    for axis, angle in enumerate(angles):
        a, b = [i for i in range(3) if i != axis]
        rotation = np.eye(3)
        rotation[a, a] = rotation[b, b] = np.cos(angle)
        rotation[a, b], rotation[b, a] = -np.sin(angle), np.sin(angle)
        matrix = matrix @ rotation
    matrix = matrix @ np.diag(1.0 + rng.uniform(-settings.scaling, settings.scaling, 3))
    shear = np.eye(3) + rng.uniform(-settings.shear, settings.shear, (3, 3)) * (1 - np.eye(3))
    matrix = matrix @ shear
    nodes = [max(3, int(np.ceil(e / settings.elastic_spacing_mm)) + 2) for e in extent_mm]
    elastic = rng.normal(0.0, rng.uniform(0.0, settings.elastic_mm), (3, *nodes))
    growth = rng.uniform(*settings.ventricle_growth_mm)
    return SpatialTransform(matrix, elastic.astype(np.float32), float(growth))


def coarse_positions(shape_zyx, step: int) -> list[np.ndarray]:
    """Index positions of the coarse grid: both ends of every axis included, at most ``step`` apart."""
    return [np.linspace(0, n - 1, max(2, int(np.ceil((n - 1) / step)) + 1)) for n in shape_zyx]


def map_to_atlas(
    anatomy: Anatomy,
    transform: SpatialTransform,
    centre_mm: np.ndarray,
    shape_zyx,
    spacing_zyx: np.ndarray,
    positions: list[np.ndarray],
) -> np.ndarray:
    """Atlas mm (3, *coarse shape) float32 of the output voxels at ``positions`` (see coarse_positions).

    The output's centre lands on ``centre_mm`` exactly: the elastic displacement there is taken out, and
    the growth push is undone by one fixed-point step. A crop centred on a lesion point shows it.
    """
    lattice = anatomy.lattice
    growth = np.float32(transform.ventricle_growth_mm)
    if growth > 0:
        centre_mm = (
            centre_mm - growth * sample_lattice(lattice, lattice.ventricle_push, _column(centre_mm))[:, 0]
        )
    elastic_at_centre = [_middle_value(c) for c in transform.elastic]
    offsets = [
        ((p - (n - 1) / 2) * s).astype(np.float32) for p, n, s in zip(positions, shape_zyx, spacing_zyx)
    ]
    z, y, x = offsets[0][:, None, None], offsets[1][None, :, None], offsets[2][None, None, :]
    m = transform.matrix.astype(np.float32)
    sizes = tuple(len(p) for p in positions)
    points = np.stack([interpolate_grid(c, sizes) for c in transform.elastic])
    for k in range(3):
        points[k] += np.float32(centre_mm[k] - elastic_at_centre[k]) + m[k, 0] * z + m[k, 1] * y + m[k, 2] * x
    if growth > 0:
        points += growth * sample_lattice(lattice, lattice.ventricle_push, points)
    return points


def _column(point: np.ndarray) -> np.ndarray:
    return np.asarray(point, dtype=np.float32).reshape(3, 1)


def _middle_value(control: np.ndarray) -> float:
    """The trilinear value at the middle of a control grid: where the output's centre is."""
    return float(ndimage.map_coordinates(control, [[(n - 1) / 2] for n in control.shape], order=1)[0])


def sample_lattice(lattice: Lattice, fields: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Trilinear values (C, ...) float32 of lattice fields (C or none, *lattice shape) at atlas-mm ``points``.

    ``points`` is (3, ...) in (z, y, x) order; outside the lattice the border value is kept.
    """
    channels = fields if fields.ndim == 4 else fields[None]
    spatial = points.shape[1:]
    grid = np.empty((points[0].size, 3), dtype=np.float32)
    for column, axis in enumerate((2, 1, 0)):  # grid_sample wants (x, y, z), each in [-1, 1]
        scale = 2.0 / (lattice.spacing_mm * (lattice.shape[axis] - 1))
        np.multiply(points[axis].reshape(-1), np.float32(scale), out=grid[:, column])
        grid[:, column] -= np.float32(lattice.origin_mm[axis] * scale + 1.0)
    values = F.grid_sample(
        torch.from_numpy(np.ascontiguousarray(channels, dtype=np.float32))[None],
        torch.from_numpy(grid).reshape(1, 1, 1, -1, 3),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    return values.numpy().reshape(channels.shape[0], *spatial)


def upsample(coarse: np.ndarray, shape_zyx) -> np.ndarray:
    """(C, *coarse shape) -> (C, *shape_zyx) float32 by trilinear interpolation, corners aligned."""
    if tuple(coarse.shape[1:]) == tuple(shape_zyx):
        return coarse
    fine = F.interpolate(
        torch.from_numpy(coarse)[None], size=tuple(shape_zyx), mode="trilinear", align_corners=True
    )
    return fine[0].numpy()


def tissue_at(anatomy: Anatomy, points: np.ndarray) -> np.ndarray:
    """Tissue class (nearest anatomy voxel) at atlas-mm ``points`` (3, ...); background outside."""
    labels = anatomy.labels
    flat = np.zeros(points.shape[1:], dtype=np.intp)
    inside = np.ones(points.shape[1:], dtype=bool)
    stride = 1
    for axis in (2, 1, 0):
        position = points[axis] * np.float32(1.0 / anatomy.spacing_zyx[axis]) + np.float32(0.5)
        inside &= (position >= 0) & (position < labels.shape[axis])
        index = position.astype(np.intp)  # floor where it matters: outside points are masked anyway
        np.clip(index, 0, labels.shape[axis] - 1, out=index)
        flat += index * stride
        stride *= labels.shape[axis]
    tissue = labels.ravel()[flat]
    tissue[~inside] = Tissue.BACKGROUND
    return tissue


def growth_volume_factor(lattice: Lattice, box: tuple[slice, ...], growth_mm: float) -> np.ndarray:
    """Output volume per atlas volume under ventricle growth, at the lattice points of ``box`` (slices).

    The output -> atlas map y -> y + g * push(y) has Jacobian determinant det(I + g d push/dy): tissue
    next to the ventricles is squeezed radially but stretched along the wall, which around narrow
    ventricles wins. It is evaluated at the output point y that lands on each lattice point x (one
    fixed-point step, y = x - g * push(x)); its inverse is how a lesion's volume there changes.
    """
    indices = [np.arange(lattice.shape[k])[box[k]] for k in range(3)]
    if growth_mm == 0:
        return np.ones(tuple(len(i) for i in indices), dtype=np.float32)
    axes = [lattice.origin_mm[k] + indices[k] * lattice.spacing_mm for k in range(3)]
    atlas = np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)
    source = atlas - np.float32(growth_mm) * lattice.ventricle_push[(slice(None), *box)]
    terms = sample_lattice(lattice, lattice.push_volume_terms, source)
    determinant = 1.0 + growth_mm * (terms[0] + growth_mm * (terms[1] + growth_mm * terms[2]))
    return 1.0 / np.maximum(determinant, 0.1)
