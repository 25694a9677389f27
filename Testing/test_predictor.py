"""The predictor: outputs on the input's grid whatever the geometry, monotonic progress, cancellation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import blob_volume, make_bundle, oblique_geometry
from WMHSegmenterLib.engine.errors import Cancelled, InputError
from WMHSegmenterLib.engine.predictor import Predictor
from WMHSegmenterLib.engine.volume import Geometry, Volume


@pytest.mark.parametrize("spacing", [(None, None, None), (1.5, 1.5, 1.5)])
def test_labels_and_probabilities_lie_on_an_oblique_anisotropic_input_grid(tmp_path, spacing):
    bundle = make_bundle(tmp_path / "m", "wmh", spacing=spacing)
    flair = blob_volume(shape=(10, 40, 33), geometry=oblique_geometry())
    prediction = Predictor(bundle, device="cpu").predict({"flair": flair})
    assert prediction.labels.geometry == flair.geometry
    assert prediction.labels.shape == flair.shape
    assert prediction.probabilities.shape == flair.shape
    assert prediction.labels.array.dtype == np.uint8
    assert set(np.unique(prediction.labels.array)) <= {0, 1}
    assert np.all((prediction.probabilities.array >= 0) & (prediction.probabilities.array <= 1))


def test_labels_follow_the_probabilities_on_the_input_grid(wmh_bundle):
    flair = blob_volume(geometry=oblique_geometry())
    prediction = Predictor(wmh_bundle, device="cpu").predict({"flair": flair})
    np.testing.assert_array_equal(
        prediction.labels.array, (prediction.probabilities.array > 0.5).astype(np.uint8)
    )


def test_brats_modalities_are_brought_onto_the_flair_grid(brats_bundle):
    flair = blob_volume(shape=(12, 32, 30), geometry=Geometry.identity(spacing=(1, 1, 2)))
    t1 = blob_volume(shape=(24, 32, 30), geometry=Geometry.identity(spacing=(1, 1, 1)), seed=1)
    inputs = {"flair": flair, "t1": t1, "t1ce": t1, "t2": flair}
    prediction = Predictor(brats_bundle, device="cpu").predict(inputs)
    assert prediction.labels.geometry == flair.geometry
    assert set(np.unique(prediction.labels.array)) <= {0, 1, 2, 4}
    assert prediction.probabilities.array.shape == (3, *flair.shape)
    assert prediction.channel_names == ("whole tumor", "tumor core", "enhancing tumor")


def test_modalities_that_do_not_overlap_are_refused(brats_bundle):
    flair = blob_volume(shape=(12, 32, 30))
    far = Volume(flair.array, Geometry.identity(origin=(500.0, 0.0, 0.0)))
    with pytest.raises(InputError, match="t2.nii.gz: does not overlap"):
        Predictor(brats_bundle, device="cpu").predict(
            {"flair": flair, "t1": flair, "t1ce": flair, "t2": far},
            sources={"flair": "flair.nii.gz", "t1": "t1.nii.gz", "t1ce": "t1ce.nii.gz", "t2": "t2.nii.gz"},
        )


def test_progress_is_monotonic_and_reaches_one(wmh_bundle):
    seen = []
    Predictor(wmh_bundle, device="cpu").predict(
        {"flair": blob_volume(shape=(20, 48, 40))}, progress=lambda s, f: seen.append((s, f))
    )
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {s for s, _ in seen} == {"preprocess", "network", "postprocess"}
    assert sum(s == "network" for s, _ in seen) > 1


def test_cancellation_stops_within_one_tile(tmp_path):
    bundle = make_bundle(tmp_path / "m", "wmh", tile_batch=1)
    tiles_done = []

    def progress(stage, fraction):
        if stage == "network":
            tiles_done.append(fraction)

    with pytest.raises(Cancelled):
        Predictor(bundle, device="cpu").predict(
            {"flair": blob_volume(shape=(30, 60, 60))},
            progress=progress,
            should_stop=lambda: len(tiles_done) >= 1,
        )
    assert len(tiles_done) == 1


def test_mirroring_averages_flipped_predictions_on_the_same_grid(wmh_bundle):
    flair = blob_volume(shape=(16, 32, 32))
    plain = Predictor(wmh_bundle, device="cpu").predict({"flair": flair})
    mirrored = Predictor(wmh_bundle, device="cpu", mirror=True).predict({"flair": flair})
    assert mirrored.labels.geometry == plain.labels.geometry
    assert not np.array_equal(mirrored.probabilities.array, plain.probabilities.array)


def test_mirroring_flips_only_the_axes_the_bundle_names(tmp_path):
    """Left-right alone (x, axis 2): two passes, not the eight of every axis (the sliding window's own
    tests check what each pass averages)."""
    flair = blob_volume(shape=(16, 32, 32))
    every_axis = make_bundle(tmp_path / "every", "wmh")
    left_right = make_bundle(tmp_path / "left-right", "wmh", mirror_axes=[2])
    assert Predictor(every_axis, device="cpu", mirror=True).mirror_axes == (0, 1, 2)
    assert Predictor(left_right, device="cpu", mirror=True).mirror_axes == (2,)
    assert Predictor(left_right, device="cpu").mirror_axes == ()
    predictions = [
        Predictor(bundle, device="cpu", mirror=mirror).predict({"flair": flair}).probabilities.array
        for bundle, mirror in ((left_right, False), (left_right, True), (every_axis, True))
    ]
    assert not np.allclose(predictions[1], predictions[0]) and not np.allclose(predictions[1], predictions[2])


def test_missing_modality_is_named(brats_bundle):
    with pytest.raises(InputError, match="needs --t1, --t1ce, --t2"):
        Predictor(brats_bundle, device="cpu").predict({"flair": blob_volume()})


def test_the_cpu_runs_bfloat16_by_default_where_the_processor_has_it_and_float32_when_asked(wmh_bundle):
    flair = {"flair": blob_volume(shape=(20, 48, 40))}
    exact = Predictor(wmh_bundle, device="cpu", mixed_precision=False).predict(flair).probabilities.array
    mixed = Predictor(wmh_bundle, device="cpu")  # the default
    fast = mixed.predict(flair).probabilities.array
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert mixed.amp_dtype == (torch.bfloat16 if native else None)
    assert native != np.array_equal(fast, exact)
    np.testing.assert_allclose(fast, exact, atol=0.05)


def test_regions_the_island_cleaning_removes_from_1_ml_are_named_in_a_note_and_kept_apart(tmp_path):
    bundle = make_bundle(tmp_path / "brats", "brats", min_island_fraction=1.0, island_measure="confidence")
    predictor = Predictor(bundle, device="cpu")
    shape, geometry = (40, 40, 40), Geometry.identity()  # 1 mm voxels
    probabilities = np.zeros((3, *shape), np.float32)  # whole tumour, core, enhancing
    probabilities[0, 2:17, 2:17, 2:17] = 0.95  # 3.4 ml, the island the network is surest of
    probabilities[0, 25:37, 25:37, 25:37] = 0.7  # 1.7 ml
    probabilities[0, 2:7, 30:35, 30:35] = 0.6  # 0.1 ml
    reference, inside = Volume(np.zeros(shape, np.float32), geometry), np.ones(shape, bool)

    prediction = predictor.finish(probabilities, geometry, reference, inside)
    assert prediction.labels.array.sum() == 2 * 15**3  # only the first island is left, as edema (2)
    assert prediction.notes == (
        "the island cleaning removed a region of 1.7 ml apart from what it kept; "
        "the probability maps still show it",
    )
    removed = np.zeros(shape, np.uint8)
    removed[25:37, 25:37, 25:37] = 2  # the 1.7 ml region with the label it had; the 0.1 ml one is untold
    np.testing.assert_array_equal(prediction.removed.array, removed)
    assert prediction.removed.geometry == geometry
    probabilities[0, 25:37] = 0.0
    untold = predictor.finish(probabilities, geometry, reference, inside)
    assert untold.notes == () and untold.removed is None and untold.labels.array.sum() == 2 * 15**3
