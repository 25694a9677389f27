"""Boundaries of masks and the 95th-percentile Hausdorff distance between them, in mm.

One HD95 for both tasks; the tasks differ only in how they define a boundary, so each passes its
own boundary masks in: the WMH challenge erodes slice by slice, BraTS erodes in 3D.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..volume import Geometry

#: 3x3 neighbourhood in the (y, x) plane, none across slices: the WMH challenge's 2D erosion.
IN_PLANE_3X3 = np.ones((1, 3, 3), dtype=bool)
#: Face-connected 3D neighbourhood (6-connectivity), the legacy BraTS (MedPy) surface definition.
FACE_CONNECTED_3D = ndimage.generate_binary_structure(3, 1)


def in_plane_boundary(mask: np.ndarray) -> np.ndarray:
    """Mask minus its slice-by-slice 3x3 erosion, as the WMH challenge's ``BinaryErode(image, (1, 1, 0))``.

    ITK's erosion treats voxels outside the image as foreground, hence ``border_value=1``: a lesion
    touching the image edge keeps no boundary along that edge, exactly as in the challenge.
    """
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=IN_PLANE_3X3, border_value=1)


def surface_3d(mask: np.ndarray) -> np.ndarray:
    """Mask minus its 6-connected 3D erosion (outside the image counts as background), as MedPy/BraTS."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=FACE_CONNECTED_3D, border_value=0)


def hd95(boundary_a: np.ndarray, boundary_b: np.ndarray, geometry: Geometry) -> float:
    """Larger of the two directed 95th-percentile nearest-neighbour distances (mm) between boundaries.

    Voxel centres go to world coordinates with the full geometry (spacing, origin, direction), so
    anisotropic and oblique grids are measured in mm. NaN when either boundary is empty: each task
    has its own rule for that case.
    """
    points_a = geometry.index_to_world(np.argwhere(boundary_a))
    points_b = geometry.index_to_world(np.argwhere(boundary_b))
    if len(points_a) == 0 or len(points_b) == 0:
        return float("nan")
    a_to_b = cKDTree(points_b).query(points_a, k=1)[0]
    b_to_a = cKDTree(points_a).query(points_b, k=1)[0]
    return float(max(np.percentile(a_to_b, 95), np.percentile(b_to_a, 95)))
