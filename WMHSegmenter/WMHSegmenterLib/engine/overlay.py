"""A PNG a person can glance at: the axial plane with the most foreground, image and labels side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .resampling import resample, working_grid
from .volume import Geometry, Volume, publish_file

#: Axial planes this far apart (mm) are compared for their label area.
PLANE_SEARCH_MM = 2.0
#: Each panel is drawn at least this many pixels across its longer side, so a small crop is legible.
PANEL_PIXELS = 400


def overlay_png(
    image: Volume,
    labels: Volume,
    colors: dict[int, tuple[float, float, float]],
    path: str | Path,
    overwrite: bool = False,
    opacity: float = 0.5,
) -> Path:
    """Grey image left, overlay right, through the axial plane with the largest label area.

    The plane is axial in the patient's axes whatever the acquisition (a sagittal 3D FLAIR is resliced),
    with square pixels (a thick-slice scan is not squashed) and in radiological convention.
    """
    geometry, shape = axial_plane(labels)
    plane = resample(image, geometry, shape).array[0].astype(np.float32)
    low, high = np.percentile(plane, (1, 99.5))
    grey = np.clip((plane - low) / max(high - low, 1e-6), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    blended = rgb.copy()
    for value, color in colors.items():
        mask = _share(labels, value, geometry, shape)[0] >= 0.5
        blended[mask] = (1 - opacity) * rgb[mask] + opacity * np.asarray(color)
    panel = np.concatenate([rgb, blended], axis=1)
    picture = Image.fromarray((panel * 255).astype(np.uint8))
    return publish_file(lambda temporary: picture.save(temporary, format="PNG"), path, overwrite)


def axial_plane(labels: Volume) -> tuple[Geometry, tuple[int, int, int]]:
    """The grid (one plane thick) of the axial plane through the most foreground, or the middle one.

    On the grid reoriented to LPS, rows run from anterior to posterior and columns from the patient's
    right to left: drawn as an array, the plane is in radiological convention without flips.
    """
    search, search_shape = working_grid(labels, (PLANE_SEARCH_MM,) * 3)
    area = _share(labels, None, search, search_shape).sum(axis=(1, 2))
    index = int(np.argmax(area)) if area.any() else search_shape[0] // 2
    extent_mm = max(search_shape[1:]) * PLANE_SEARCH_MM
    pixel_mm = min(min(labels.geometry.spacing), extent_mm / PANEL_PIXELS)
    fine, fine_shape = working_grid(labels, (pixel_mm, pixel_mm, PLANE_SEARCH_MM))
    # both grids keep the field of view's corner and step PLANE_SEARCH_MM in z: their planes coincide
    origin = np.asarray(fine.origin) + fine.direction_matrix[:, 2] * PLANE_SEARCH_MM * index
    return Geometry(fine.spacing, tuple(origin.tolist()), fine.direction), (1, *fine_shape[1:])


def _share(labels: Volume, value: int | None, geometry: Geometry, shape) -> np.ndarray:
    """How much of each point of another grid holds ``value`` (None: any label), from 0 to 1.

    Interpolated, not the nearest voxel's: a point halfway between two slices reads the same whichever
    way the scan was stored, so the same scan gives the same picture.
    """
    inside = labels.array > 0 if value is None else labels.array == value
    scaled = labels.with_array(inside.astype(np.uint8) * _SHARE_SCALE)
    return resample(scaled, geometry, shape).array / _SHARE_SCALE


#: Shares are interpolated on this integer scale: a byte a voxel rather than a float.
_SHARE_SCALE = 250
