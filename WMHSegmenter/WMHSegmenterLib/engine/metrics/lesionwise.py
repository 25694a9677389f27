"""BraTS 2023 lesion-wise Dice and HD95 of one region.

After the BraTS 2023 lesion-wise performance metrics (R. Saluja et al., "BraTS 2023 Lesion-Wise
Performance Metrics for Segmentation Challenges", https://github.com/rachitsaluja/BraTS-2023-Metrics),
parameters of the glioma challenge (BraTS-GLI): reference lesions are 26-connected components,
merged when their dilations (3 iterations of the 18-connected structuring element) touch; a
predicted lesion matches a reference lesion when it meets that lesion's own dilation; reference
lesions of at most 50 voxels (50 mm^3 on BraTS's 1 mm grid) are left out of the scores; every
predicted lesion that matches nothing is a false positive scoring Dice 0 and HD95 374 mm.

Scoring lesion by lesion keeps one large tumor from hiding missed or spurious small lesions. HD95
here uses the same 3D surfaces as the legacy metrics; the reference code uses DeepMind's
surface-distance package (surfel-area weighted), so HD95 can differ from it by a fraction of a voxel.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..volume import Geometry
from .overlap import dice, label_lesions
from .surface import hd95, surface_3d

DILATION_ITERATIONS = 3
DILATION_STRUCTURE = ndimage.generate_binary_structure(3, 2)
MIN_LESION_VOXELS = 50
#: Score of a missed lesion or a false positive; also replaces an undefined HD95.
HD95_MISSED = 374.0


def lesionwise_scores(truth: np.ndarray, predicted: np.ndarray, geometry: Geometry) -> tuple[float, float]:
    """(lesion-wise Dice, lesion-wise HD95 in mm): the mean over scored reference lesions and false positives.

    No scored reference lesion and no false positive gives Dice 1 / HD95 0, as the reference code.
    """
    reference_lesions = merged_reference_lesions(truth)
    predicted_lesions, _ = label_lesions(predicted)
    matched: set[int] = set()
    dices: list[float] = []
    distances: list[float] = []
    for index, box in enumerate(ndimage.find_objects(reference_lesions), start=1):
        lesion = reference_lesions == index
        hits = _predicted_lesions_meeting(lesion, predicted_lesions, box)
        matched.update(hits)
        if np.count_nonzero(lesion) <= MIN_LESION_VOXELS:
            continue
        if not hits:
            dices.append(0.0)
            distances.append(HD95_MISSED)
            continue
        segment = np.isin(predicted_lesions, hits)
        dices.append(dice(lesion, segment))
        distances.append(hd95(surface_3d(lesion), surface_3d(segment), geometry))
    false_positives = len(set(np.unique(predicted_lesions[predicted_lesions > 0]).tolist()) - matched)
    scored = len(dices) + false_positives
    if scored == 0:
        return 1.0, 0.0
    return sum(dices) / scored, (sum(distances) + HD95_MISSED * false_positives) / scored


def merged_reference_lesions(truth: np.ndarray) -> np.ndarray:
    """Reference lesions 1..n: 26-connected components whose dilations touch share one label."""
    dilated = ndimage.binary_dilation(truth, structure=DILATION_STRUCTURE, iterations=DILATION_ITERATIONS)
    merged, _ = label_lesions(dilated)
    merged[~truth] = 0
    return merged


def _predicted_lesions_meeting(
    lesion: np.ndarray, predicted_lesions: np.ndarray, box: tuple[slice, ...]
) -> list[int]:
    """Labels of the predicted lesions that meet the dilated reference lesion.

    The dilation grows at most DILATION_ITERATIONS voxels per axis, so it is done in the lesion's
    bounding box widened by that margin: the same result as on the whole volume, much faster.
    """
    window = tuple(
        slice(max(part.start - DILATION_ITERATIONS, 0), min(part.stop + DILATION_ITERATIONS, size))
        for part, size in zip(box, lesion.shape, strict=True)
    )
    grown = ndimage.binary_dilation(
        lesion[window], structure=DILATION_STRUCTURE, iterations=DILATION_ITERATIONS
    )
    labels = np.unique(predicted_lesions[window][grown])
    return labels[labels > 0].tolist()
