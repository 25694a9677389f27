"""WMH challenge metrics on small hand-built volumes; every expected value is worked out by hand."""

import math

import numpy as np
import pytest

from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.metrics import evaluate_wmh
from WMHSegmenterLib.engine.metrics.surface import in_plane_boundary, surface_3d
from WMHSegmenterLib.engine.volume import Geometry, Volume

SHAPE = (3, 6, 12)  # (z, y, x)


def volume(array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None) -> Volume:
    direction = direction or (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)
    return Volume(np.asarray(array), Geometry(tuple(spacing), tuple(origin), tuple(direction)))


def mask(*voxels_zyx, dtype=np.uint8, value=1, shape=SHAPE) -> np.ndarray:
    array = np.zeros(shape, dtype=dtype)
    for voxel in voxels_zyx:
        array[voxel] = value
    return array


def test_identical_masks_score_perfectly():
    reference = mask(*[(1, 2, x) for x in range(2, 6)])
    result = evaluate_wmh(volume(reference), volume(reference.copy()))
    assert result == {
        "dice": 1.0,
        "hd95": 0.0,
        "avd": 0.0,
        "lesion_recall": 1.0,
        "lesion_precision": 1.0,
        "lesion_f1": 1.0,
    }


def test_dice_and_avd_count_voxels():
    # reference x = 2..5 (4 voxels), prediction x = 4..9 (6 voxels): TP = 2, FP = 4, FN = 2
    # Dice = 2*2 / (2*2 + 4 + 2) = 0.4;  AVD = |4 - 6| / 4 * 100 = 50 %
    reference = mask(*[(1, 2, x) for x in range(2, 6)])
    prediction = mask(*[(1, 2, x) for x in range(4, 10)])
    result = evaluate_wmh(volume(reference), volume(prediction))
    assert result["dice"] == pytest.approx(0.4)
    assert result["avd"] == pytest.approx(50.0)


def test_single_voxel_distance_uses_anisotropic_spacing_in_mm():
    # one voxel each, 3 voxels apart in x with x-spacing 0.5 mm: 3 * 0.5 = 1.5 mm both ways
    reference = mask((1, 2, 2))
    prediction = mask((1, 2, 5))
    assert evaluate_wmh(
        volume(reference, spacing=(0.5, 1.0, 3.0)), volume(prediction, spacing=(0.5, 1.0, 3.0))
    )["hd95"] == pytest.approx(1.5)
    # one slice apart with 3 mm slices: 3.0 mm
    prediction = mask((2, 2, 2))
    assert evaluate_wmh(
        volume(reference, spacing=(0.5, 1.0, 3.0)), volume(prediction, spacing=(0.5, 1.0, 3.0))
    )["hd95"] == pytest.approx(3.0)


def test_hd95_on_an_oblique_grid_is_measured_in_world_mm():
    # grid rotated 30 degrees about z, shifted origin; 2 voxels apart in y (1.5 mm) and 4 in x (0.5 mm):
    # offsets 3.0 mm and 2.0 mm -> sqrt(9 + 4) = sqrt(13) = 3.6056 mm; a rotation keeps distances
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    oblique = dict(
        spacing=(0.5, 1.5, 2.0), origin=(-12.0, 40.0, 7.5), direction=(c, -s, 0, s, c, 0, 0, 0, 1.0)
    )
    reference = volume(mask((1, 2, 2)), **oblique)
    prediction = volume(mask((1, 4, 6)), **oblique)
    assert evaluate_wmh(reference, prediction)["hd95"] == pytest.approx(math.sqrt(13))


def test_hd95_is_the_linearly_interpolated_95th_percentile():
    # reference: a row of 11 voxels (x = 0..10, y = 1); prediction: the same row plus a voxel at y = 5, x = 0.
    # Every voxel of a 1-voxel-wide row is on its boundary. Prediction -> reference distances: 11 zeros and
    # 4 mm; sorted, the 95th percentile sits at position 0.95 * 11 = 10.45: 0 + 0.45 * (4 - 0) = 1.8 mm.
    # Reference -> prediction distances are all 0, so HD95 = max(1.8, 0) = 1.8 mm.
    row = [(1, 1, x) for x in range(11)]
    result = evaluate_wmh(volume(mask(*row)), volume(mask(*row, (1, 5, 0))))
    assert result["hd95"] == pytest.approx(1.8)


def test_boundary_is_eroded_in_plane_only_not_across_slices():
    # a 3x3x3 cube: in-plane erosion leaves only the centre of each 3x3 slice -> 27 - 3 = 24 boundary voxels,
    # while a 3D (6-connected) erosion leaves only the cube's centre -> 27 - 1 = 26 surface voxels
    cube = np.zeros((5, 5, 5), dtype=bool)
    cube[1:4, 1:4, 1:4] = True
    assert np.count_nonzero(in_plane_boundary(cube)) == 24
    assert not in_plane_boundary(cube)[2, 2, 2] and not in_plane_boundary(cube)[1, 2, 2]
    assert np.count_nonzero(surface_3d(cube)) == 26


def test_in_plane_boundary_treats_outside_the_image_as_lesion_like_itk():
    # a 3x3 square in rows 0..2: ITK's erosion counts outside voxels as foreground, so the middle voxel of
    # row 0 (all in-image neighbours set) and the centre erode away: boundary = 9 - 2 = 7 voxels
    square = np.zeros((1, 4, 5), dtype=bool)
    square[0, 0:3, 1:4] = True
    boundary = in_plane_boundary(square)
    assert np.count_nonzero(boundary) == 7
    assert not boundary[0, 0, 2] and not boundary[0, 1, 2]


def test_empty_prediction_gives_zero_dice_nan_hd95_and_no_detections():
    # Dice 0 / (2 + 0 + 2) = 0; HD95 undefined; AVD |2 - 0| / 2 = 100 %; recall 0 of 1 lesion;
    # precision 1 (no predicted lesions, the challenge's rule); F1 = 2*1*0 / (1 + 0) = 0
    reference = mask((1, 2, 2), (1, 2, 3))
    result = evaluate_wmh(volume(reference), volume(mask()))
    assert result["dice"] == 0.0
    assert math.isnan(result["hd95"])
    assert result["avd"] == 100.0
    assert (result["lesion_recall"], result["lesion_precision"], result["lesion_f1"]) == (0.0, 1.0, 0.0)


def test_empty_reference_gives_nan_hd95_and_avd():
    # Dice 0 / (0 + 1 + 0) = 0; AVD divides by V_ref = 0 -> NaN; recall 1 (no reference lesions);
    # precision 0 of 1 predicted lesion; F1 = 2*0*1 / (0 + 1) = 0
    result = evaluate_wmh(volume(mask()), volume(mask((1, 2, 2))))
    assert result["dice"] == 0.0
    assert math.isnan(result["hd95"]) and math.isnan(result["avd"])
    assert (result["lesion_recall"], result["lesion_precision"], result["lesion_f1"]) == (1.0, 0.0, 0.0)


def test_both_empty_leaves_dice_undefined():
    # 2TP / (2TP + FP + FN) = 0 / 0: undefined, reported as NaN (and ignored by the summaries)
    result = evaluate_wmh(volume(mask()), volume(mask()))
    assert math.isnan(result["dice"]) and math.isnan(result["hd95"]) and math.isnan(result["avd"])
    assert result["lesion_f1"] == 1.0


def test_single_voxel_match_is_perfect():
    result = evaluate_wmh(volume(mask((1, 3, 3))), volume(mask((1, 3, 3))))
    assert (result["dice"], result["hd95"], result["avd"], result["lesion_f1"]) == (1.0, 0.0, 0.0, 1.0)


def test_lesions_touching_only_at_a_corner_are_one_lesion():
    # (1,2,2) and (2,3,3) share only a corner: 26-connected, so one lesion. Detecting one voxel of it
    # detects the lesion: recall 1/1 (it would be 1/2 with 6-connectivity). Dice = 2*1 / (2*1 + 0 + 1) = 2/3,
    # AVD = |2 - 1| / 2 = 50 %
    reference = mask((1, 2, 2), (2, 3, 3))
    result = evaluate_wmh(volume(reference), volume(mask((1, 2, 2))))
    assert result["lesion_recall"] == 1.0 and result["lesion_precision"] == 1.0
    assert result["dice"] == pytest.approx(2 / 3)
    assert result["avd"] == pytest.approx(50.0)


def test_lesion_recall_precision_and_f1_count_components():
    # reference lesions A, B, C; prediction hits A and B and adds two lesions far from any WMH
    # recall = 2/3, precision = 2/4 = 1/2, F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = (2/3) / (7/6) = 4/7
    reference = mask((0, 0, 0), (0, 0, 5), (0, 5, 10))
    prediction = mask((0, 0, 0), (0, 0, 5), (2, 3, 2), (2, 5, 8))
    result = evaluate_wmh(volume(reference), volume(prediction))
    assert result["lesion_recall"] == pytest.approx(2 / 3)
    assert result["lesion_precision"] == pytest.approx(1 / 2)
    assert result["lesion_f1"] == pytest.approx(4 / 7)


def test_other_pathology_label_2_is_excluded_from_scoring():
    # reference: WMH (label 1) at x = 2..3, other pathology (label 2) at x = 6..9; the prediction covers both.
    # Prediction voxels on label 2 are zeroed: Dice = 2*2 / (2*2) = 1, AVD 0, no false-positive lesion.
    # (Without the exclusion Dice would be 2*2 / (2 + 6) = 0.5.)
    reference = mask(*[(1, 2, x) for x in (2, 3)])
    reference[1, 2, 6:10] = 2
    prediction = mask(*[(1, 2, x) for x in (2, 3, 6, 7, 8, 9)])
    result = evaluate_wmh(volume(reference), volume(prediction))
    assert result["dice"] == 1.0 and result["avd"] == 0.0 and result["hd95"] == 0.0
    assert result["lesion_precision"] == 1.0


def test_float_and_integer_references_give_identical_results():
    # a float reference with resampling noise (0.9999, 2.0001) reads exactly like the integer one
    integer_reference = mask((1, 2, 2), (1, 2, 3), (1, 4, 8))
    integer_reference[2, 2, 2:4] = 2
    float_reference = integer_reference.astype(np.float32)
    float_reference[1, 2, 2] = 0.9999
    float_reference[2, 2, 2] = 2.0001
    prediction = mask((1, 2, 2), (2, 2, 2), (0, 0, 0))
    from_integer = evaluate_wmh(volume(integer_reference), volume(prediction))
    from_float = evaluate_wmh(volume(float_reference), volume(prediction))
    assert from_integer == from_float
    # TP = 1 (1,2,2); (2,2,2) lies on label 2 and is dropped; FP = 1 (0,0,0); FN = 2 -> Dice 2/(2+1+2) = 0.4
    assert from_integer["dice"] == pytest.approx(0.4)


def test_probability_prediction_is_wmh_from_one_half():
    # 0.5 counts, 0.49 does not: prediction = {(1,2,2)}, reference = {(1,2,2), (1,2,3)} -> Dice 2/3
    reference = mask((1, 2, 2), (1, 2, 3))
    prediction = np.zeros(SHAPE, dtype=np.float32)
    prediction[1, 2, 2], prediction[1, 2, 3] = 0.5, 0.49
    assert evaluate_wmh(volume(reference), volume(prediction))["dice"] == pytest.approx(2 / 3)


def test_prediction_off_the_reference_grid_is_an_input_error_naming_the_prediction():
    reference = volume(mask((1, 2, 2)))
    with pytest.raises(InputError, match=r"pred\.nii\.gz: prediction does not lie on the reference grid"):
        evaluate_wmh(reference, volume(mask((1, 2, 2)), spacing=(1.0, 1.0, 2.0)), source="pred.nii.gz")
    with pytest.raises(InputError, match="size 12x6x4 differs from the reference's 12x6x3"):
        evaluate_wmh(reference, volume(np.zeros((4, 6, 12), np.uint8)), source="pred.nii.gz")


@pytest.mark.parametrize(
    "stray,listed",
    [
        (255, r"value\(s\) 255 "),
        (np.arange(6, 18).reshape(1, 1, 12), r"values 6, 7, 8, 9, \.\.\. \(12 in all\)"),
    ],
    ids=["0-255 mask", "an image"],
)
def test_a_reference_that_is_not_a_wmh_label_map_is_refused_by_name(stray, listed):
    """Read as labels, both would be an empty reference: every score would be nonsense, silently."""
    reference = mask((1, 2, 2), value=1)
    reference[0] = stray
    with pytest.raises(InputError, match=rf"^ref\.nii\.gz: not a WMH reference: holds {listed}"):
        evaluate_wmh(volume(reference), volume(mask((1, 2, 2))), reference_source="ref.nii.gz")
