"""Cleaning a label map: small islands go, the one finding of a scan stays."""

from __future__ import annotations

import numpy as np

from WMHSegmenterLib.engine.postprocess import keep_largest_component, remove_small_components


def test_islands_under_the_size_go_and_larger_ones_keep_their_labels():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[1:4, 1:4, 1:4] = 2  # 27 voxels, edema around
    labels[2, 2, 2] = 4  # an enhancing voxel inside: the same island
    labels[8, 8, 8] = 1  # a lone voxel far away
    labels[8, 1, 7:9] = 4  # two voxels
    cleaned = remove_small_components(labels, 3)
    expected = labels.copy()
    expected[8, 8, 8] = 0
    expected[8, 1, 7:9] = 0
    np.testing.assert_array_equal(cleaned, expected)


def test_the_largest_island_stays_even_when_every_island_is_small():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[2, 2, 2:5] = 1  # 3 voxels: the scan's largest finding
    labels[7, 7, 7] = 1
    cleaned = remove_small_components(labels, 100)
    assert cleaned[2, 2, 2:5].tolist() == [1, 1, 1]
    assert cleaned.sum() == 3


def test_nothing_to_clean_leaves_the_map_as_it_was():
    labels = np.zeros((4, 4, 4), np.uint8)
    np.testing.assert_array_equal(remove_small_components(labels, 10), labels)
    labels[1, 1, 1] = 1
    np.testing.assert_array_equal(remove_small_components(labels, 0), labels)


def test_largest_only_keeps_the_biggest_island_with_all_its_labels_and_nothing_else():
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[1:5, 1:5, 1:5] = 2  # 64 voxels of edema around
    labels[2:4, 2:4, 2:4] = 4  # an enhancing core: the same island
    labels[8:11, 8:11, 8:11] = 1  # 27 voxels: a large island, but not the largest
    cleaned = keep_largest_component(labels)
    expected = labels.copy()
    expected[8:11, 8:11, 8:11] = 0
    np.testing.assert_array_equal(cleaned, expected)
    single = expected.copy()
    np.testing.assert_array_equal(keep_largest_component(single), single)
