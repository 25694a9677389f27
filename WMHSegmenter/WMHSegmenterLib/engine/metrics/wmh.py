"""The MICCAI 2017 WMH Segmentation Challenge metrics, as its published ``evaluation.py`` defines them.

Kuijf et al., "Standardized Assessment of Automatic Segmentation of White Matter Hyperintensities
and Results of the WMH Segmentation Challenge", IEEE TMI 38(11), 2019; https://wmh.isi.uu.nl.
Reproducing the challenge's definitions (rather than a library's look-alikes) is what makes our
numbers comparable with the published leaderboard.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..labels import described_values
from ..quantify import Island, islands
from ..volume import Volume
from .grid import require_same_grid
from .overlap import dice, label_lesions
from .surface import hd95, in_plane_boundary

WMH = 1
OTHER_PATHOLOGY = 2
#: A prediction voxel is WMH from this value up: 1 for integer label maps, 0.5 for probabilities.
PREDICTION_THRESHOLD = 0.5
METRIC_KEYS = ("dice", "hd95", "avd", "lesion_recall", "lesion_precision", "lesion_f1")


def wmh_masks(reference: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean reference WMH and prediction masks, with "other pathology" (label 2) excluded.

    Reference values are rounded before comparing, so float and integer files give the same masks
    (the challenge thresholds at 0.5-1.5 and 1.5-2.5). Prediction voxels on label 2 are zeroed.
    """
    rounded = _rounded(reference)
    reference_mask = rounded == WMH
    prediction_mask = (prediction >= PREDICTION_THRESHOLD) & (rounded != OTHER_PATHOLOGY)
    return reference_mask, prediction_mask


def _rounded(reference: np.ndarray) -> np.ndarray:
    return reference if np.issubdtype(reference.dtype, np.integer) else np.rint(reference)


def evaluate_wmh(
    reference: Volume,
    prediction: Volume,
    source: str | Path | None = None,
    reference_source: str | Path | None = None,
) -> dict[str, float]:
    """Dice, HD95 (mm), AVD (%), lesion recall, precision and F1 of one subject.

    ``prediction`` may be a label map or a probability map (WMH from 0.5). ``source`` and
    ``reference_source`` name the files in error messages.
    """
    require_same_grid(reference, prediction, source)
    require_wmh_labels(reference.array, reference_source)
    truth, predicted = wmh_masks(reference.array, prediction.array)
    recall, precision, f1 = lesion_detection(truth, predicted)
    return {
        "dice": dice(truth, predicted),
        "hd95": hd95(in_plane_boundary(truth), in_plane_boundary(predicted), reference.geometry),
        "avd": absolute_volume_difference(truth, predicted),
        "lesion_recall": recall,
        "lesion_precision": precision,
        "lesion_f1": f1,
    }


def lesion_matches(
    reference: Volume, prediction: Volume, source: str | Path | None = None
) -> tuple[list[Island], list[Island]]:
    """The reference's lesions, each marked whether the prediction meets it (found), and the
    prediction's, each marked whether it meets the reference (true): what lesion recall and precision
    count, lesion by lesion, so a reader can see which were missed."""
    require_same_grid(reference, prediction, source)
    truth, predicted = wmh_masks(reference.array, prediction.array)
    on_grid = reference.with_array
    return (
        islands(on_grid(truth.astype(np.uint8)), overlapping=predicted),
        islands(on_grid(predicted.astype(np.uint8)), overlapping=truth),
    )


def require_wmh_labels(reference: np.ndarray, source: str | Path | None = None) -> None:
    """Refuse a reference that is not a WMH label map (an image given by mistake, a 0/255 mask): the
    challenge's definitions would read it as an empty or near-empty reference and score nonsense."""
    unknown = sorted(set(np.unique(_rounded(reference)).tolist()) - {0, WMH, OTHER_PATHOLOGY})
    if unknown:
        raise InputError(
            f"not a WMH reference: holds {described_values(unknown)} "
            "(its labels are 0, 1 for WMH and 2 for other pathology)",
            source,
        )


def absolute_volume_difference(truth: np.ndarray, predicted: np.ndarray) -> float:
    """|V_ref - V_pred| / V_ref x 100; NaN for an empty reference (the challenge divides by zero)."""
    reference_voxels = int(np.count_nonzero(truth))
    if reference_voxels == 0:
        return float("nan")
    return abs(reference_voxels - int(np.count_nonzero(predicted))) / reference_voxels * 100.0


def lesion_detection(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    """(recall, precision, F1) over 26-connected lesions, any overlap counts as a detection.

    As in the challenge: recall (precision) is 1 when there are no reference (predicted) lesions,
    and F1 is 0 when recall and precision both are.
    """
    truth_lesions, truth_count = label_lesions(truth)
    predicted_lesions, predicted_count = label_lesions(predicted)
    detected = np.unique(truth_lesions[predicted & (truth_lesions > 0)]).size
    correct = np.unique(predicted_lesions[truth & (predicted_lesions > 0)]).size
    recall = detected / truth_count if truth_count else 1.0
    precision = correct / predicted_count if predicted_count else 1.0
    f1 = 2.0 * precision * recall / (precision + recall) if precision + recall else 0.0
    return recall, precision, f1
