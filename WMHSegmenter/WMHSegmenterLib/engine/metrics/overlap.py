"""Voxel-overlap measures and lesion labelling shared by the WMH and BraTS metrics."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: 26-connectivity: voxels touching at a face, an edge or a corner belong to one lesion.
FULLY_CONNECTED_3D = np.ones((3, 3, 3), dtype=bool)


def dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    """2TP / (2TP + FP + FN); NaN when both masks are empty (each task decides what that means)."""
    total = int(np.count_nonzero(reference)) + int(np.count_nonzero(prediction))
    if total == 0:
        return float("nan")
    return 2.0 * int(np.count_nonzero(reference & prediction)) / total


def label_lesions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected components of a mask: (label array with 1..n, n)."""
    labelled, count = ndimage.label(mask, structure=FULLY_CONNECTED_3D)
    return labelled, int(count)
