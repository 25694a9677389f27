"""The glance PNG: an axial plane in the patient's axes, square pixels, radiological convention."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from conftest import blob_volume
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.overlay import PANEL_PIXELS, AxialPlanes, overlay_png
from WMHSegmenterLib.engine.volume import Geometry, Volume

YELLOW = {1: (1.0, 1.0, 0.0)}


def stored_as(volume: Volume, orientation: str) -> Volume:
    """The same scan with its voxels stored in another order (e.g. "PIL": sagittal slices)."""
    return Volume.from_sitk(sitk.DICOMOrient(volume.to_sitk(), orientation))


def picture(tmp_path, image: Volume, labels: Volume, name: str) -> np.ndarray:
    path = overlay_png(image, labels, YELLOW, tmp_path / f"{name}.png")
    with Image.open(path) as png:
        return np.asarray(png.convert("RGB")).astype(int)


def overlay_half(rgb: np.ndarray) -> np.ndarray:
    """Where the right panel is coloured (yellow: red and green well above blue)."""
    right = rgb[:, rgb.shape[1] // 2 :]
    return (right[..., 0] - right[..., 2] > 60) & (right[..., 1] - right[..., 2] > 60)


def test_a_sagittally_stored_scan_gives_the_same_axial_picture_as_its_axial_storage(tmp_path):
    image = blob_volume((24, 40, 36), Geometry.identity(spacing=(1.0, 1.0, 1.0)))
    labels = image.with_array((image.array > 150).astype(np.uint8))
    axial = picture(tmp_path, image, labels, "axial")
    sagittal = picture(tmp_path, stored_as(image, "PIL"), stored_as(labels, "PIL"), "sagittal")
    assert overlay_half(axial).any()
    np.testing.assert_array_equal(axial, sagittal)


def test_a_square_in_the_patients_right_front_is_drawn_square_at_the_top_left_of_the_overlay(tmp_path):
    # thick slices and unequal in-plane spacing: 0.5 mm along x, 1 mm along y, 5 mm along z
    geometry = Geometry.identity(spacing=(0.5, 1.0, 5.0))
    image = Volume(np.full((8, 60, 120), 100.0, dtype=np.float32), geometry)
    labels = np.zeros(image.shape, dtype=np.uint8)
    labels[3:5, 5:25, 10:50] = 1  # 20 mm by 20 mm, at low x (the patient's right) and low y (front)
    rgb = picture(tmp_path, image, image.with_array(labels), "square")
    assert max(rgb.shape[0], rgb.shape[1] // 2) >= PANEL_PIXELS
    rows, columns = np.nonzero(overlay_half(rgb))
    height, width = np.ptp(rows) + 1, np.ptp(columns) + 1
    assert abs(height - width) <= 2, (height, width)
    assert rows.max() < rgb.shape[0] / 2 and columns.max() < rgb.shape[1] / 4


def test_axial_planes_run_from_the_feet_up_and_a_height_picks_the_nearest():
    # stored head first (z axis towards the feet): the planes still run inferior to superior
    geometry = Geometry((1.0, 1.0, 3.0), (0.0, 0.0, 30.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, -1.0))
    planes = AxialPlanes(Volume(np.zeros((11, 8, 8), dtype=np.float32), geometry))
    heights = planes.heights_mm()
    assert np.all(np.diff(heights) > 0) and heights[0] < 0 < 30 < heights[-1] + 1.5
    assert heights[planes.nearest(10.2)] == pytest.approx(10.2, abs=1.0)
    with pytest.raises(InputError, match="axial planes lie from"):
        planes.nearest(40.0)
