"""BraTS region metrics (WT, TC, ET) with the legacy BraTS evaluation's edge cases.

Legacy BraTS (2017-2022, CaPTk): Dice and HD95 per region, HD95 over 3D surfaces in mm; a region
empty in both files scores Dice 1 / HD95 0, empty in exactly one scores Dice 0 / HD95 373.13 mm
(the diagonal of the 240x240x155 mm BraTS volume). Sensitivity and specificity as GaNDLF computes
them for the BraTS 2023 evaluation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..labels import AUTO, REGIONS, region_masks
from ..volume import Volume
from .grid import require_same_grid
from .lesionwise import lesionwise_scores
from .overlap import dice
from .surface import hd95, surface_3d

#: HD95 when exactly one of reference and prediction is empty: sqrt(240^2 + 240^2 + 155^2) mm.
HD95_ONE_EMPTY = 373.13
MM3_PER_ML = 1000.0
METRIC_NAMES = ("dice", "hd95", "sensitivity", "specificity", "volume_ref_ml", "volume_pred_ml")


def evaluate_brats(
    reference: Volume,
    prediction: Volume,
    convention: str = AUTO,
    lesionwise: bool = False,
    source: str | Path | None = None,
    reference_source: str | Path | None = None,
) -> dict[str, float]:
    """Per region (wt, tc, et): ``<region>_dice``, ``_hd95`` (mm), ``_sensitivity``, ``_specificity``,
    ``_volume_ref_ml``, ``_volume_pred_ml``; with ``lesionwise`` also ``_lesionwise_dice`` and
    ``_lesionwise_hd95``.

    ``convention`` is "brats2018", "brats2023" or "auto"; with "auto" each file is read in the
    convention its labels show, so a 2023-style prediction scores correctly against a 2018 reference.
    ``source`` and ``reference_source`` name the files in error messages.
    """
    require_same_grid(reference, prediction, source)
    truth_regions = region_masks(reference.array, convention, reference_source)
    predicted_regions = region_masks(prediction.array, convention, source)
    voxel_ml = float(np.prod(reference.geometry.spacing)) / MM3_PER_ML
    metrics: dict[str, float] = {}
    for region in REGIONS:
        truth, predicted = truth_regions[region], predicted_regions[region]
        scores = region_scores(truth, predicted, reference)
        scores["volume_ref_ml"] = int(np.count_nonzero(truth)) * voxel_ml
        scores["volume_pred_ml"] = int(np.count_nonzero(predicted)) * voxel_ml
        if lesionwise:
            scores["lesionwise_dice"], scores["lesionwise_hd95"] = lesionwise_scores(
                truth, predicted, reference.geometry
            )
        metrics.update({f"{region}_{name}": value for name, value in scores.items()})
    return metrics


def region_scores(truth: np.ndarray, predicted: np.ndarray, reference: Volume) -> dict[str, float]:
    """Legacy BraTS Dice, HD95 (mm), sensitivity and specificity of one region."""
    truth_empty, predicted_empty = not truth.any(), not predicted.any()
    if truth_empty and predicted_empty:
        overlap, distance = 1.0, 0.0
    elif truth_empty or predicted_empty:
        overlap, distance = 0.0, HD95_ONE_EMPTY
    else:
        overlap = dice(truth, predicted)
        distance = hd95(surface_3d(truth), surface_3d(predicted), reference.geometry)
    sensitivity, specificity = sensitivity_specificity(truth, predicted)
    return {"dice": overlap, "hd95": distance, "sensitivity": sensitivity, "specificity": specificity}


def sensitivity_specificity(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """TP/(TP+FN) and TN/(TN+FP); a zero denominator gives 0, except sensitivity 1 when both are empty.

    These are the rules of GaNDLF's function used by the BraTS 2023 evaluation.
    """
    true_positive = int(np.count_nonzero(truth & predicted))
    false_negative = int(np.count_nonzero(truth)) - true_positive
    false_positive = int(np.count_nonzero(predicted)) - true_positive
    true_negative = truth.size - true_positive - false_negative - false_positive
    if true_positive + false_negative + false_positive == 0:
        sensitivity = 1.0
    else:
        sensitivity = _ratio(true_positive, true_positive + false_negative)
    return sensitivity, _ratio(true_negative, true_negative + false_positive)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0
