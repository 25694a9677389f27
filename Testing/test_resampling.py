"""The working grid: the input's axes turned towards LPS exactly as SimpleITK's DICOMOrient turns them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from WMHSegmenterLib.engine.resampling import grid_image, lps_oriented
from WMHSegmenterLib.engine.volume import Geometry


def directions() -> list[np.ndarray]:
    """Every axis permutation with every flip, each also tilted off the axes by up to 30 degrees."""
    rng = np.random.default_rng(0)
    made = []
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            axes = np.eye(3)[:, list(order)] * signs
            made.append(axes)
            made.append(Rotation.from_rotvec(rng.uniform(-0.3, 0.3, 3)).as_matrix() @ axes)
    return made


@pytest.mark.parametrize("direction", directions(), ids=lambda d: np.array2string(d.round(2).ravel()))
def test_the_lps_grid_is_the_one_dicom_orient_gives(direction):
    geometry = Geometry((0.5, 0.9, 4.0), (12.5, -30.0, 7.25), tuple(direction.ravel().tolist()))
    shape_zyx = (9, 14, 11)
    oriented, size_xyz = lps_oriented(geometry, shape_zyx)
    expected = sitk.DICOMOrient(grid_image(geometry, shape_zyx), "LPS")
    assert size_xyz == expected.GetSize()
    np.testing.assert_allclose(oriented.spacing, expected.GetSpacing())
    np.testing.assert_allclose(oriented.direction, expected.GetDirection(), atol=1e-12)
    np.testing.assert_allclose(oriented.origin, expected.GetOrigin(), atol=1e-9)
