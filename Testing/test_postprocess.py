"""Cleaning a label map: small islands go, the one finding of a scan stays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_bundle
from WMHSegmenterLib.engine.bundle import ModelBundle
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.postprocess import clean_islands, island_fraction


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


@pytest.mark.parametrize("fraction", [1.5, -0.1, "all", True])
def test_a_bundle_with_an_island_fraction_outside_zero_to_one_is_refused(tmp_path, fraction):
    folder = make_bundle(tmp_path / "brats", "brats").folder
    meta = json.loads((folder / "model.json").read_text())
    meta["inference"]["min_island_fraction"] = fraction
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="model.json: inference.min_island_fraction must be a number in"):
        ModelBundle(folder)
