"""Cleaning a label map: small islands go, the one finding of a scan stays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_bundle
from WMHSegmenterLib.engine.bundle import ModelBundle
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.postprocess import (
    clean_islands,
    foreground_probability,
    island_fraction,
    islands_largest_first,
)
from WMHSegmenterLib.engine.predictor import Predictor
from WMHSegmenterLib.engine.volume import Geometry, Volume


def test_islands_under_the_size_go_and_larger_ones_keep_their_labels():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[1:4, 1:4, 1:4] = 2  # 27 voxels, edema around
    labels[2, 2, 2] = 4  # an enhancing voxel inside: the same island
    labels[8, 8, 8] = 1  # a lone voxel far away
    labels[8, 1, 7:9] = 4  # two voxels
    cleaned = clean_islands(labels, 3)
    expected = labels.copy()
    expected[8, 8, 8] = 0
    expected[8, 1, 7:9] = 0
    np.testing.assert_array_equal(cleaned, expected)


def test_the_largest_island_stays_even_when_every_island_is_small():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[2, 2, 2:5] = 1  # 3 voxels: the scan's largest finding
    labels[7, 7, 7] = 1
    cleaned = clean_islands(labels, 100)
    assert cleaned[2, 2, 2:5].tolist() == [1, 1, 1]
    assert cleaned.sum() == 3


def test_nothing_to_clean_leaves_the_map_as_it_was():
    labels = np.zeros((4, 4, 4), np.uint8)
    np.testing.assert_array_equal(clean_islands(labels, 10), labels)
    labels[1, 1, 1] = 1
    np.testing.assert_array_equal(clean_islands(labels, 0), labels)


def test_a_fraction_of_one_keeps_the_biggest_island_with_all_its_labels_and_nothing_else():
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[1:5, 1:5, 1:5] = 2  # 64 voxels of edema around
    labels[2:4, 2:4, 2:4] = 4  # an enhancing core: the same island
    labels[8:11, 8:11, 8:11] = 1  # 27 voxels: a large island, but not the largest
    cleaned = clean_islands(labels, min_island_fraction=1.0)
    expected = labels.copy()
    expected[8:11, 8:11, 8:11] = 0
    np.testing.assert_array_equal(cleaned, expected)
    single = expected.copy()
    np.testing.assert_array_equal(clean_islands(single, min_island_fraction=1.0), single)


def test_islands_nearly_as_large_as_the_largest_stay_under_a_fraction():
    labels = np.zeros((12, 12, 24), np.uint8)
    labels[1:5, 1:5, 1:5] = 2  # 64 voxels: the largest
    labels[1:5, 1:5, 8:12] = 2  # 64 voxels less one: 0.98 of it
    labels[1, 1, 11] = 0
    labels[8:11, 8:11, 8:11] = 1  # 27 voxels: 0.42 of it
    cleaned = clean_islands(labels, min_island_fraction=0.8)
    expected = labels.copy()
    expected[8:11, 8:11, 8:11] = 0
    np.testing.assert_array_equal(cleaned, expected)
    np.testing.assert_array_equal(clean_islands(labels, min_island_fraction=0.4), labels)
    assert clean_islands(labels, min_island_fraction=1.0).sum() == 64 * 2


def test_a_bundle_made_before_the_fraction_keeping_the_largest_island_means_a_fraction_of_one():
    assert island_fraction({"largest_component_only": True, "min_island_fraction": 0.0}) == 1.0
    assert island_fraction({"largest_component_only": False, "min_island_fraction": 0.8}) == 0.8
    assert island_fraction({}) == 0.0


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        *(("min_island_fraction", value, "must be a number in") for value in (1.5, -0.1, "all", True)),
        ("island_measure", "mean", "must be one of"),
        *(("island_neck_mm", value, "must be a number >= 0") for value in (-1, "wide", True)),
        *(("mirror_axes", value, "must list one to three distinct axes") for value in ([], [3], [2, 2], 2)),
    ],
)
def test_a_bundle_with_an_impossible_island_cleaning_or_mirroring_is_refused(
    tmp_path, setting, value, message
):
    folder = make_bundle(tmp_path / "brats", "brats").folder
    meta = json.loads((folder / "model.json").read_text())
    meta["inference"][setting] = value
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=f"model.json: inference.{setting} {message}"):
        ModelBundle(folder)


def tumour_beside_a_larger_false_island() -> tuple[np.ndarray, np.ndarray]:
    """Labels and whole-tumour probability: a 64-voxel tumour the network is sure of (0.95) beside a
    125-voxel island it is less sure of (0.7), as on Brats18_2013_11_1 in cross-validation."""
    labels = np.zeros((12, 12, 24), np.uint8)
    probability = np.zeros(labels.shape, np.float32)
    labels[1:5, 1:5, 1:5], probability[1:5, 1:5, 1:5] = 2, 0.95
    labels[2:4, 2:4, 2:4] = 4
    labels[1:6, 1:6, 10:15], probability[1:6, 1:6, 10:15] = 2, 0.7
    return labels, probability


def test_measured_by_confidence_the_tumour_the_network_is_surer_of_stays_over_a_larger_island():
    labels, probability = tumour_beside_a_larger_false_island()
    by_confidence = clean_islands(labels, min_island_fraction=1.0, foreground_probability=probability)
    expected = labels.copy()
    expected[:, :, 10:15] = 0
    np.testing.assert_array_equal(by_confidence, expected)
    by_size = clean_islands(labels, min_island_fraction=1.0)
    assert by_size[:, :, :5].sum() == 0 and by_size[:, :, 10:15].sum() == 125 * 2


def test_an_island_under_a_quarter_of_the_largest_cannot_displace_it_by_confidence():
    labels, probability = tumour_beside_a_larger_false_island()
    labels[8:10, 8:10, 20:22], probability[8:10, 8:10, 20:22] = 1, 0.99  # 8 voxels: 0.06 of the largest
    cleaned = clean_islands(labels, min_island_fraction=1.0, foreground_probability=probability)
    assert cleaned[8:10, 8:10, 20:22].sum() == 0
    assert cleaned[1:5, 1:5, 1:5].any()


def test_any_foreground_is_the_sum_of_softmax_lesion_channels_and_the_outermost_sigmoid_region():
    softmax = np.array([[0.5, 0.05], [0.3, 0.05]], np.float32)  # background (0.2, 0.9) not written
    np.testing.assert_allclose(foreground_probability(softmax, "softmax"), [0.8, 0.1], rtol=1e-6)
    nested = np.array([[0.9, 0.3], [0.6, 0.4], [0.2, 0.1]], np.float32)  # WT, TC, ET
    np.testing.assert_allclose(foreground_probability(nested, "sigmoid"), [0.9, 0.4])


def test_a_bundle_measuring_islands_by_confidence_cleans_with_its_probabilities(tmp_path):
    labels, probability = tumour_beside_a_larger_false_island()
    regions = np.stack([probability, (labels == 4) * probability, (labels == 4) * probability])
    reference = Volume(np.zeros(labels.shape, np.float32), Geometry.identity())
    region = np.ones(labels.shape, bool)
    kept = {}
    for measure in ("size", "confidence"):
        bundle = make_bundle(tmp_path / measure, "brats", min_island_fraction=1.0, island_measure=measure)
        predicted = Predictor(bundle, device="cpu").finish(regions, reference.geometry, reference, region)
        kept[measure] = predicted.labels.array
    assert kept["confidence"][:, :, 10:15].sum() == 0 and kept["confidence"][2, 2, 2] == 4
    assert kept["size"][:, :, :5].sum() == 0


def tumour_joined_to_a_larger_false_region() -> tuple[np.ndarray, np.ndarray]:
    """Labels and whole-tumour probability: a 9-voxel cube of tumour the network is sure of (0.95)
    joined by a 2x2-voxel bridge to an 11-voxel cube it is less sure of (0.7): one island, as a false
    region touching the tumour was on Brats18_CBICA_AME_1 in cross-validation."""
    labels = np.zeros((13, 13, 30), np.uint8)
    probability = np.zeros(labels.shape, np.float32)
    labels[1:10, 1:10, 1:10], probability[1:10, 1:10, 1:10] = 2, 0.95
    labels[4:6, 4:6, 10:14], probability[4:6, 4:6, 10:14] = 2, 0.8
    labels[1:12, 1:12, 14:25], probability[1:12, 1:12, 14:25] = 2, 0.7
    return labels, probability


def test_a_false_region_joined_to_the_tumour_by_a_narrow_neck_is_cut_off_and_dropped():
    labels, probability = tumour_joined_to_a_larger_false_region()
    whole = clean_islands(labels, min_island_fraction=1.0, foreground_probability=probability)
    np.testing.assert_array_equal(whole, labels)
    cut = clean_islands(labels, min_island_fraction=1.0, foreground_probability=probability, neck_mm=3)
    assert (cut[1:10, 1:10, 1:10] == 2).all()
    assert cut[:, :, 14:].sum() == 0


def test_fingers_thinner_than_the_neck_stay_with_their_lesion_and_a_thin_lesion_stays_whole():
    labels = np.zeros((13, 13, 30), np.uint8)
    labels[1:10, 1:10, 1:10] = 2  # a lesion with a core
    labels[4:6, 4:6, 10:20] = 2  # a 2x2-voxel finger from it: no core of its own
    cleaned = clean_islands(labels, min_island_fraction=1.0, neck_mm=3)
    np.testing.assert_array_equal(cleaned, labels)
    thin = np.zeros((13, 13, 30), np.uint8)
    thin[4:6, 4:6, 2:28] = 1  # thinner than the neck everywhere: no core at all
    np.testing.assert_array_equal(clean_islands(thin, min_island_fraction=1.0, neck_mm=3), thin)


def test_the_neck_is_measured_in_millimetres_so_thick_slices_are_not_eroded_through():
    """One 5 mm slice holding two 9x9 mm blobs joined by a 2 mm bar: in voxels the slice is thinner than
    any ball, in millimetres only the bar is narrow."""
    labels = np.zeros((3, 13, 30), np.uint8)
    probability = np.zeros(labels.shape, np.float32)
    labels[1, 1:10, 1:10], probability[1, 1:10, 1:10] = 2, 0.95
    labels[1, 4:6, 10:18], probability[1, 4:6, 10:18] = 2, 0.8
    labels[1, 1:12, 18:29], probability[1, 1:12, 18:29] = 2, 0.7
    settings = {"min_island_fraction": 1.0, "foreground_probability": probability, "neck_mm": 3}
    np.testing.assert_array_equal(clean_islands(labels, **settings), labels)
    cut = clean_islands(labels, **settings, spacing_zyx=(5.0, 1.0, 1.0))
    assert (cut[1, 1:10, 1:10] == 2).all() and cut[:, :, 18:].sum() == 0


def test_a_bundle_with_a_neck_cuts_the_joined_false_region_on_the_input_grid(tmp_path):
    labels, probability = tumour_joined_to_a_larger_false_region()
    regions = np.stack([probability, np.zeros_like(probability), np.zeros_like(probability)])
    reference = Volume(np.zeros(labels.shape, np.float32), Geometry.identity())
    region = np.ones(labels.shape, bool)
    kept = {}
    for neck in (0, 3):
        bundle = make_bundle(
            tmp_path / f"neck{neck}",
            "brats",
            min_island_fraction=1.0,
            island_measure="confidence",
            island_neck_mm=neck,
        )
        predicted = Predictor(bundle, device="cpu").finish(regions, reference.geometry, reference, region)
        kept[neck] = predicted.labels.array
    assert kept[0][:, :, 14:].any()
    assert kept[3][:, :, 14:].sum() == 0 and (kept[3][1:10, 1:10, 1:10] == 2).all()


def test_islands_are_numbered_from_the_largest_down():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:4, 2:4, 2:4] = 1  # 8 voxels
    labels[10:15, 6:9, 12:20] = 2  # 120 voxels, centre (12, 7, 15.5)
    labels[16:19, 16:19, 0:3] = 4  # 27 voxels
    numbered, sizes = islands_largest_first(labels)
    assert sizes.tolist() == [120, 27, 8]
    assert (numbered[10:15, 6:9, 12:20] == 1).all() and (numbered[2:4, 2:4, 2:4] == 3).all()
    assert np.array_equal(numbered > 0, labels > 0)
    empty, no_sizes = islands_largest_first(np.zeros_like(labels))
    assert not empty.any() and no_sizes.size == 0
