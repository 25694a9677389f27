"""Redrawing lesions at the input's resolution: what a 2 mm working grid blurs, the 1 mm input still shows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from conftest import make_bundle
from WMHSegmenterLib.engine.bundle import ModelBundle
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.metrics.overlap import dice
from WMHSegmenterLib.engine.postprocess import refine_lesions_by_intensity
from WMHSegmenterLib.engine.predictor import Predictor
from WMHSegmenterLib.engine.volume import Geometry, Volume


def small_lesions_scan(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Brain z-scores (about 0 +- 0.3) with a few bright lesions 2-5 voxels across, and their truth."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.arange(s) for s in (40, 48, 48)), indexing="ij")
    truth = np.zeros((40, 48, 48), bool)
    for cz, cy, cx, rz, ry in [(10, 12, 12, 1.6, 2.5), (20, 30, 20, 2.5, 1.8), (30, 15, 35, 1.4, 2.0)]:
        truth |= ((z - cz) / rz) ** 2 + ((y - cy) / ry) ** 2 + ((x - cx) / 2.2) ** 2 <= 1
    zscores = rng.normal(0.0, 0.3, truth.shape) + 3.0 * truth
    return zscores.astype(np.float32), truth


def made_on_thicker_slices(truth: np.ndarray) -> np.ndarray:
    """A perfect answer given on 2-voxel slices and interpolated back: what the predictor hands over."""
    coarse = truth.reshape(truth.shape[0] // 2, 2, *truth.shape[1:]).mean(axis=1) >= 0.5
    return ndimage.zoom(coarse.astype(np.float32), (2, 1, 1), order=1, mode="nearest")


def test_lesion_ends_lost_on_the_coarser_grid_come_back_from_the_input_voxels():
    zscores, truth = small_lesions_scan()
    probability = made_on_thicker_slices(truth)
    thresholded = dice(truth, probability >= 0.5)
    refined = dice(truth, refine_lesions_by_intensity(probability, zscores))
    assert refined > thresholded + 0.05
    assert refined > 0.9


def test_dark_voxels_the_network_called_lesion_are_dropped():
    zscores, truth = small_lesions_scan()
    probability = truth.astype(np.float32)
    probability[20, 30, 15:18] = 1.0  # CSF beside the second lesion, confidently but wrongly called
    zscores[20, 30, 15:18] = -2.0
    refined = refine_lesions_by_intensity(probability, zscores)
    assert not refined[20, 30, 15:18].any()
    assert refined[truth].all()


def test_a_finding_no_brighter_than_the_brain_is_left_as_the_network_drew_it():
    zscores, _ = small_lesions_scan()
    probability = np.zeros(zscores.shape, np.float32)
    probability[5:9, 5:9, 5:9] = 0.9
    probability[4:10, 4:10, 4:10] = np.maximum(probability[4:10, 4:10, 4:10], 0.4)
    zscores[4:10, 4:10, 4:10] = -0.5
    np.testing.assert_array_equal(refine_lesions_by_intensity(probability, zscores), probability >= 0.5)


def test_nothing_predicted_stays_nothing():
    zscores, _ = small_lesions_scan()
    assert not refine_lesions_by_intensity(np.zeros_like(zscores), zscores).any()


def predictor_labels(tmp_path, reference: Volume, refine: bool) -> np.ndarray:
    """The predictor's last step on a perfect answer given on 1 x 1 x 2 mm: what refinement changes."""
    _, truth = small_lesions_scan()
    coarse = truth.reshape(20, 2, 48, 48).mean(axis=1) >= 0.5
    lesion = coarse.astype(np.float32)
    working = Geometry((1.0, 1.0, 2.0), (0.0, 0.0, 0.5), Geometry.identity().direction)
    bundle = make_bundle(tmp_path / str(refine), spacing=(1.0, 1.0, 2.0), refine_on_input_grid=refine)
    predictor = Predictor(bundle, device="cpu")
    region = np.ones(coarse.shape, bool)
    return predictor.finish(np.stack([1 - lesion, lesion]), working, reference, region).labels.array


def test_thin_slice_scans_get_lesions_redrawn_on_their_own_grid(tmp_path):
    zscores, truth = small_lesions_scan()
    scan = Volume(100 + 40 * zscores, Geometry.identity())
    plain, refined = (predictor_labels(tmp_path, scan, refine) for refine in (False, True))
    assert dice(truth, refined > 0) > dice(truth, plain > 0) + 0.05


def test_thick_slice_scans_keep_the_networks_labels(tmp_path):
    """Slices thicker than the working grid's hold no detail it lost: refinement must not touch them."""
    zscores, _ = small_lesions_scan()
    thick = (100 + 40 * zscores).reshape(10, 4, 48, 48).mean(axis=1)
    scan = Volume(thick, Geometry((1.0, 1.0, 4.0), (0.0, 0.0, 1.5), Geometry.identity().direction))
    plain, refined = (predictor_labels(tmp_path, scan, refine) for refine in (False, True))
    np.testing.assert_array_equal(plain, refined)


def test_a_multi_region_model_asking_for_refinement_is_refused(tmp_path):
    folder = make_bundle(tmp_path / "brats", "brats").folder
    meta = json.loads((folder / "model.json").read_text())
    meta["inference"]["refine_on_input_grid"] = True
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(
        InputError, match="refine_on_input_grid needs a softmax model with one lesion channel"
    ):
        ModelBundle(folder)
