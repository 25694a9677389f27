"""BraTS label conventions, region metrics and lesion-wise metrics; expected values worked out by hand."""

import math

import numpy as np
import pytest

from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.labels import (
    BRATS2018,
    BRATS2023,
    convert_convention,
    detect_convention,
    region_labels,
    region_masks,
)
from WMHSegmenterLib.engine.metrics import evaluate_brats
from WMHSegmenterLib.engine.metrics.lesionwise import lesionwise_scores
from WMHSegmenterLib.engine.volume import Geometry, Volume

IDENTITY = Geometry.identity()


def volume(array, spacing=(1.0, 1.0, 1.0), direction=None) -> Volume:
    direction = direction or (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)
    return Volume(np.asarray(array), Geometry(tuple(spacing), (10.0, -20.0, 5.0), tuple(direction)))


def row(labels_by_x: dict[int, int], shape=(4, 6, 8)) -> np.ndarray:
    """Labels along the row z = 1, y = 2 of an otherwise empty volume."""
    array = np.zeros(shape, dtype=np.uint8)
    for x, label in labels_by_x.items():
        array[1, 2, x] = label
    return array


# ---- label conventions ---------------------------------------------------------------------------------


def test_region_labels_follow_each_convention():
    assert region_labels(BRATS2018) == {"wt": (1, 2, 4), "tc": (1, 4), "et": (4,)}
    assert region_labels(BRATS2023) == {"wt": (1, 2, 3), "tc": (1, 3), "et": (3,)}


def test_convention_is_detected_from_the_enhancing_label():
    assert detect_convention(np.array([0, 1, 2, 4])) == BRATS2018
    assert detect_convention(np.array([0, 1, 2, 3])) == BRATS2023
    assert detect_convention(np.array([0, 1, 2])) is None  # no ET: both conventions read it the same
    with pytest.raises(InputError, match="both label 3 and label 4"):
        detect_convention(np.array([0, 3, 4]), source="mixed.nii.gz")
    with pytest.raises(
        InputError, match=r"^flair\.nii\.gz: not a BraTS label map: holds values 5, 6, 7, 8, \.\.\."
    ):
        detect_convention(np.arange(300), source="flair.nii.gz")  # an image, not labels


def test_region_masks_read_both_conventions_alike():
    labels_2018 = np.array([0, 1, 2, 4])
    labels_2023 = np.array([0, 1, 2, 3])
    for masks in (region_masks(labels_2018), region_masks(labels_2023)):
        assert masks["wt"].tolist() == [False, True, True, True]
        assert masks["tc"].tolist() == [False, True, False, True]
        assert masks["et"].tolist() == [False, False, False, True]


def test_reading_a_file_in_the_wrong_convention_is_an_input_error():
    with pytest.raises(InputError, match=r"seg\.nii\.gz: labels \[3\] are not brats2018 labels"):
        region_masks(np.array([0, 1, 3]), BRATS2018, source="seg.nii.gz")
    with pytest.raises(InputError, match=r"not a BraTS label map: holds value\(s\) 5 "):
        region_masks(np.array([0, 1, 5]))


def test_float_label_maps_are_read_and_non_integer_values_refused():
    assert region_masks(np.array([0.0, 1.0, 3.0002], dtype=np.float32))["et"].tolist() == [False, False, True]
    with pytest.raises(InputError, match="not a label map"):
        region_masks(np.array([0.0, 0.4, 1.0]))


def test_conversion_changes_only_the_enhancing_label_and_round_trips():
    labels_2018 = np.array([0, 1, 2, 4, 4])
    labels_2023 = convert_convention(labels_2018, BRATS2023)
    assert labels_2023.tolist() == [0, 1, 2, 3, 3]
    assert convert_convention(labels_2023, BRATS2018).tolist() == labels_2018.tolist()


# ---- region metrics ------------------------------------------------------------------------------------


def test_region_metrics_of_a_2018_reference_against_a_2023_prediction():
    # row z=1, y=2 (x: label); voxels 1 x 1 x 2 mm = 0.002 ml; the volume holds 4*6*8 = 192 voxels.
    # reference (2018): x1 NCR, x2-3 ET(4), x4-6 ED -> WT {1..6}, TC {1,2,3}, ET {2,3}
    # prediction (2023): x1-2 ET(3), x3 NCR, x4-5 ED, x7 ED -> WT {1..5,7}, TC {1,2,3}, ET {1,2}
    reference = row({1: 1, 2: 4, 3: 4, 4: 2, 5: 2, 6: 2})
    prediction = row({1: 3, 2: 3, 3: 1, 4: 2, 5: 2, 7: 2})
    result = evaluate_brats(volume(reference, (1.0, 1.0, 2.0)), volume(prediction, (1.0, 1.0, 2.0)))
    # WT: TP 5, FP 1 (x7), FN 1 (x6): Dice 10/12; sensitivity 5/6; TN = 192-7 = 185, specificity 185/186.
    # Every voxel of a 1-voxel row is surface; x-distances: ref->pred [0,0,0,0,0,1], pred->ref [0,0,0,0,0,1];
    # 95th percentile at position 0.95*5 = 4.75: 0 + 0.75*(1-0) = 0.75 mm
    assert result["wt_dice"] == pytest.approx(10 / 12)
    assert result["wt_hd95"] == pytest.approx(0.75)
    assert result["wt_sensitivity"] == pytest.approx(5 / 6)
    assert result["wt_specificity"] == pytest.approx(185 / 186)
    assert result["wt_volume_ref_ml"] == pytest.approx(6 * 0.002)
    assert result["wt_volume_pred_ml"] == pytest.approx(6 * 0.002)
    # TC: identical {1,2,3}
    assert (result["tc_dice"], result["tc_hd95"], result["tc_sensitivity"]) == (1.0, 0.0, 1.0)
    # ET: TP 1 (x2), FP 1 (x1), FN 1 (x3): Dice 2/4; distances [0,1] both ways -> 0 + 0.95*1 = 0.95 mm;
    # sensitivity 1/2; TN = 192-3 = 189, specificity 189/190
    assert result["et_dice"] == pytest.approx(0.5)
    assert result["et_hd95"] == pytest.approx(0.95)
    assert result["et_sensitivity"] == pytest.approx(0.5)
    assert result["et_specificity"] == pytest.approx(189 / 190)
    assert result["et_volume_ref_ml"] == pytest.approx(2 * 0.002)


def test_region_empty_in_both_scores_dice_1_and_hd95_0():
    # no enhancing tumor anywhere: ET is empty in both files
    reference = row({1: 1, 2: 2})
    result = evaluate_brats(volume(reference), volume(reference.copy()))
    assert (result["et_dice"], result["et_hd95"], result["et_sensitivity"], result["et_specificity"]) == (
        1.0,
        0.0,
        1.0,
        1.0,
    )


def test_region_empty_in_one_file_scores_dice_0_and_hd95_373_13():
    # ET only in the prediction: legacy BraTS gives Dice 0 and HD95 373.13 mm (the BraTS volume's diagonal);
    # sensitivity has TP + FN = 0 and a non-empty prediction -> 0
    reference = row({1: 1, 2: 2})
    prediction = row({1: 1, 2: 4})
    result = evaluate_brats(volume(reference), volume(prediction))
    assert (result["et_dice"], result["et_hd95"], result["et_sensitivity"]) == (0.0, 373.13, 0.0)
    # and the other way round: ET only in the reference
    result = evaluate_brats(volume(prediction), volume(reference))
    assert (result["et_dice"], result["et_hd95"]) == (0.0, 373.13)


def test_hd95_uses_world_mm_on_anisotropic_oblique_grids():
    # one NCR voxel each, one slice apart; 2.5 mm slices on a grid tilted 45 degrees about x:
    # the distance is 2.5 mm whatever the direction (rotations keep lengths)
    c = math.cos(math.radians(45))
    tilted = (1.0, 0, 0, 0, c, -c, 0, c, c)
    reference = np.zeros((4, 6, 8), np.uint8)
    prediction = np.zeros((4, 6, 8), np.uint8)
    reference[1, 2, 2], prediction[2, 2, 2] = 1, 1
    result = evaluate_brats(
        volume(reference, (0.8, 0.8, 2.5), tilted), volume(prediction, (0.8, 0.8, 2.5), tilted)
    )
    assert result["wt_hd95"] == pytest.approx(2.5) and result["tc_hd95"] == pytest.approx(2.5)
    assert result["wt_dice"] == 0.0


def test_explicit_convention_reads_both_files_in_it():
    reference = row({1: 1, 2: 3})
    result = evaluate_brats(volume(reference), volume(reference.copy()), convention=BRATS2023)
    assert result["et_dice"] == 1.0 and result["et_volume_ref_ml"] == pytest.approx(0.001)
    with pytest.raises(InputError, match="pred.nii.gz: labels \\[3\\] are not brats2018 labels"):
        evaluate_brats(volume(row({1: 1})), volume(reference), convention=BRATS2018, source="pred.nii.gz")


def test_lesionwise_flag_adds_lesionwise_keys():
    reference = cubes((2, 6))  # 4x4x4 = 64 voxels of ET(4)
    result = evaluate_brats(volume(reference * 4), volume(reference * 4), lesionwise=True)
    for region in ("wt", "tc", "et"):
        assert result[f"{region}_lesionwise_dice"] == 1.0 and result[f"{region}_lesionwise_hd95"] == 0.0
    assert "wt_lesionwise_dice" not in evaluate_brats(volume(reference * 4), volume(reference * 4))


# ---- lesion-wise (BraTS 2023) --------------------------------------------------------------------------


def cubes(*x_ranges: tuple[int, int], size: int = 4, shape=(8, 8, 18)) -> np.ndarray:
    """4x4x4 cubes (64 voxels) at z, y = 2..5 spanning the given [start, stop) x ranges."""
    array = np.zeros(shape, dtype=np.uint8)
    for start, stop in x_ranges:
        array[2 : 2 + size, 2 : 2 + size, start:stop] = 1
    return array


def lesionwise(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    return lesionwise_scores(truth.astype(bool), predicted.astype(bool), IDENTITY)


def test_lesionwise_perfect_prediction_scores_1_and_0():
    assert lesionwise(cubes((1, 5), (12, 16)), cubes((1, 5), (12, 16))) == (1.0, 0.0)


def test_lesionwise_missed_lesion_counts_as_dice_0_hd95_374():
    # lesions 7 voxels apart (x 1..4 and 12..15) stay separate after 3 dilations (reach x 7 and x 9).
    # Lesion 1 perfect (1, 0), lesion 2 missed (0, 374): Dice (1 + 0)/2 = 0.5, HD95 (0 + 374)/2 = 187
    assert lesionwise(cubes((1, 5), (12, 16)), cubes((1, 5))) == (0.5, 187.0)


def test_lesionwise_false_positive_lesion_counts_as_dice_0_hd95_374():
    # one reference lesion found perfectly plus one predicted lesion far from it: (1 + 0)/2, (0 + 374)/2
    assert lesionwise(cubes((1, 5)), cubes((1, 5), (12, 16))) == (0.5, 187.0)


def test_lesionwise_merges_reference_lesions_whose_dilations_touch():
    # cubes at x 2..5 and 8..11 (2 voxels apart) merge into one 128-voxel lesion; predicting only the first:
    # Dice 2*64 / (128 + 64) = 2/3 (not (1 + 0)/2 as two lesions would score).
    # HD95: reference surface = 56 + 56 voxels (a 4-cube minus its 2x2x2 core); first cube at distance 0,
    # second at 3, 4, 5, 6 mm from the predicted x=5 face (16, 12, 12, 16 voxels): sorted, positions 96..111
    # hold 6 and the 95th percentile sits at 0.95 * 111 = 105.45 -> 6 mm; the other direction is all 0.
    assert lesionwise(cubes((2, 6), (8, 12)), cubes((2, 6))) == (pytest.approx(2 / 3), 6.0)


def test_lesionwise_prediction_near_but_not_on_a_lesion_matches_it_not_a_false_positive():
    # predicted cube 2 voxels beside the reference cube (x 8..11 vs 2..5): inside the reference's dilation, so
    # it is that lesion's match, not a false positive: Dice 0 (no overlap); HD95: reference surface layers at
    # x = 2, 3, 4, 5 lie 6, 5, 4, 3 mm from the predicted x = 8 face (16, 12, 12, 16 voxels) -> 95th = 6 mm,
    # the same the other way. As a false positive it would score Dice 0 and HD95 (374 + 374)/2 = 374.
    assert lesionwise(cubes((2, 6)), cubes((8, 12))) == (0.0, 6.0)


def test_lesionwise_ignores_reference_lesions_of_at_most_50_voxels():
    # big lesion found, small 2x2x2 = 8-voxel lesion missed: the small one is not scored -> (1, 0)
    truth = cubes((1, 5))
    truth[2:4, 2:4, 12:14] = 1
    assert lesionwise(truth, cubes((1, 5))) == (1.0, 0.0)
    # a prediction of the small lesion is its match, not a false positive -> still (1, 0)
    assert lesionwise(truth, truth) == (1.0, 0.0)


def test_lesionwise_threshold_is_50_voxels_inclusive():
    # 5x5x2 = 50 voxels missed: ignored, nothing scored -> (1, 0); one voxel more (51) missed -> (0, 374)
    truth = np.zeros((8, 8, 18), dtype=np.uint8)
    truth[2:4, 1:6, 1:6] = 1
    assert lesionwise(truth, np.zeros_like(truth)) == (1.0, 0.0)
    truth[4, 3, 3] = 1
    assert lesionwise(truth, np.zeros_like(truth)) == (0.0, 374.0)


def test_lesionwise_empty_reference_scores_by_false_positives():
    empty = np.zeros((8, 8, 18), dtype=np.uint8)
    assert lesionwise(empty, empty) == (1.0, 0.0)
    assert lesionwise(empty, cubes((1, 5))) == (0.0, 374.0)
