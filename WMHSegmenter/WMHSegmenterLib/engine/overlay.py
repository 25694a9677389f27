"""A PNG a person can glance at: the axial plane with the most foreground, image and labels side by side.

Pictures are drawn on axial planes in the patient's axes, whatever the acquisition (a sagittal 3D FLAIR
is resliced), with square pixels and in radiological convention, so every scan reads the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import InputError
from .resampling import resample, working_grid
from .volume import Geometry, Volume, publish_file

#: Axial planes are this far apart (mm).
PLANE_STEP_MM = 2.0
#: A plane is drawn with at least this many pixels across its longer side, so a small crop is legible.
PANEL_PIXELS = 400


class AxialPlanes:
    """The axial planes through a scan's field of view, :data:`PLANE_STEP_MM` apart, inferior first.

    On the scan's grid reoriented to LPS, rows run from anterior to posterior and columns from the
    patient's right to left: drawn as an array, a plane is in radiological convention without flips.
    """

    def __init__(self, volume: Volume):
        self.volume = volume
        self.search, self.search_shape = working_grid(volume, (PLANE_STEP_MM,) * 3)

    def heights_mm(self) -> np.ndarray:
        """Each plane's height: the world (LPS) z of its centre, as Slicer's axial slice offset reads it."""
        rows, columns = self.search_shape[1:]
        centres = [[k, (rows - 1) / 2, (columns - 1) / 2] for k in range(self.search_shape[0])]
        return self.search.index_to_world(np.asarray(centres))[:, 2]

    def middle(self) -> int:
        return self.search_shape[0] // 2

    def busiest(self, labels: Volume) -> int:
        """The plane with the largest label area (the middle one when there are no labels)."""
        area = label_share(labels, None, self.search, self.search_shape).sum(axis=(1, 2))
        return int(np.argmax(area)) if area.any() else self.middle()

    def nearest(self, height_mm: float) -> int:
        heights = self.heights_mm()
        low, high = sorted((float(heights[0]), float(heights[-1])))
        if not low - PLANE_STEP_MM / 2 <= height_mm <= high + PLANE_STEP_MM / 2:
            raise InputError(
                f"the image's axial planes lie from {low:.1f} to {high:.1f} mm, not at {height_mm:g}"
            )
        return int(np.argmin(np.abs(heights - height_mm)))

    def grid(self, index: int) -> tuple[Geometry, tuple[int, int, int]]:
        """Plane ``index`` as a grid one voxel thick, in pixels no coarser than the scan's finest spacing."""
        extent_mm = max(self.search_shape[1:]) * PLANE_STEP_MM
        pixel_mm = min(min(self.volume.geometry.spacing), extent_mm / PANEL_PIXELS)
        fine, fine_shape = working_grid(self.volume, (pixel_mm, pixel_mm, PLANE_STEP_MM))
        # both grids keep the field of view's corner and step PLANE_STEP_MM in z: their planes coincide
        origin = np.asarray(fine.origin) + fine.direction_matrix[:, 2] * PLANE_STEP_MM * index
        return Geometry(fine.spacing, tuple(origin.tolist()), fine.direction), (1, *fine_shape[1:])


def label_share(labels: Volume, value: int | None, geometry: Geometry, shape) -> np.ndarray:
    """How much of each point of another grid holds ``value`` (None: any label), from 0 to 1.

    Interpolated, not the nearest voxel's: a point halfway between two slices reads the same whichever
    way the scan was stored, so the same scan gives the same picture.
    """
    inside = labels.array > 0 if value is None else labels.array == value
    scaled = labels.with_array(inside.astype(np.uint8) * _SHARE_SCALE)
    return resample(scaled, geometry, shape).array / _SHARE_SCALE


#: Shares are interpolated on this integer scale: a byte a voxel rather than a float.
_SHARE_SCALE = 250


def overlay_png(
    image: Volume,
    labels: Volume,
    colors: dict[int, tuple[float, float, float]],
    path: str | Path,
    overwrite: bool = False,
    opacity: float = 0.5,
) -> Path:
    """Grey image left, overlay right, through the axial plane with the largest label area."""
    planes = AxialPlanes(labels)
    geometry, shape = planes.grid(planes.busiest(labels))
    plane = resample(image, geometry, shape).array[0].astype(np.float32)
    low, high = np.percentile(plane, (1, 99.5))
    grey = np.clip((plane - low) / max(high - low, 1e-6), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    blended = rgb.copy()
    for value, color in colors.items():
        mask = label_share(labels, value, geometry, shape)[0] >= 0.5
        blended[mask] = (1 - opacity) * rgb[mask] + opacity * np.asarray(color)
    panel = np.concatenate([rgb, blended], axis=1)
    picture = Image.fromarray((panel * 255).astype(np.uint8))
    return publish_file(lambda temporary: picture.save(temporary, format="PNG"), path, overwrite)
