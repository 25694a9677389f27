"""Synthetic lesions: only in white matter, in the requested load, near the ventricles, found by crops."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from wmhseg_training.synthetic import (
    FAZEKAS_VOLUME_ML,
    GeneratorSettings,
    SyntheticFlairGenerator,
    Tissue,
    phantom_anatomy,
)

#: Measured volumes may miss the drawn one by this much: lesions are drawn on a 2 mm lattice and
#: the output voxels sample a deformed anatomy.
VOLUME_TOLERANCE = 0.25


@pytest.fixture(scope="module")
def generator():
    """Whole-brain samples of a 2 mm phantom (the brain is 120 x 150 x 130 mm)."""
    settings = GeneratorSettings(spacing_xyz_mm=(2.0, 2.0, 2.0), shape_zyx=(76, 92, 80))
    return SyntheticFlairGenerator([phantom_anatomy(2.0)], settings)


def lesion_ml(sample) -> float:
    return float(sample.labels.array.sum()) * np.prod(sample.image.geometry.spacing) / 1000.0


def test_lesions_lie_inside_white_matter(generator):
    for grade in (1, 2, 3):
        sample = generator.generate(np.random.default_rng(grade), fazekas=grade)
        lesion = sample.labels.array.astype(bool)
        assert lesion.any()
        assert np.all(sample.tissue[lesion] == Tissue.WHITE_MATTER)


@pytest.mark.parametrize("requested", [(2.0, 4.0), (10.0, 15.0), (30.0, 45.0)])
def test_lesion_load_follows_the_requested_volume_range(generator, requested):
    low, high = requested
    for seed in range(2):
        sample = generator.generate(np.random.default_rng(seed), volume_ml=requested)
        assert low <= sample.info["lesion_ml_drawn"] <= high
        assert low * (1 - VOLUME_TOLERANCE) <= lesion_ml(sample) <= high * (1 + VOLUME_TOLERANCE)


@pytest.mark.parametrize("grade", [2, 3])
def test_fazekas_grade_sets_the_volume_range(generator, grade):
    low, high = FAZEKAS_VOLUME_ML[grade]
    for seed in range(2):
        sample = generator.generate(np.random.default_rng(seed), fazekas=grade)
        assert sample.info["fazekas"] == grade
        assert low * (1 - VOLUME_TOLERANCE) <= lesion_ml(sample) <= high * (1 + VOLUME_TOLERANCE)


def test_fazekas_zero_has_no_lesion(generator):
    sample = generator.generate(np.random.default_rng(3), fazekas=0)
    assert sample.labels.array.sum() == 0 and sample.info["lesion_ml_drawn"] == 0


def test_lesions_gather_around_the_ventricles(generator):
    """Periventricular lesions dominate: lesion voxels lie closer to the ventricles than white matter does."""
    lesion_distance, white_distance = [], []
    for seed in range(3):
        sample = generator.generate(np.random.default_rng(seed), fazekas=2)
        distance = ndimage.distance_transform_edt(sample.tissue != Tissue.VENTRICLE)
        lesion = sample.labels.array.astype(bool)
        lesion_distance.append(np.median(distance[lesion]))
        white_distance.append(np.median(distance[(sample.tissue == Tissue.WHITE_MATTER) & ~lesion]))
    assert np.mean(lesion_distance) < 0.6 * np.mean(white_distance)


def test_a_crop_centred_on_a_lesion_holds_lesion(generator):
    for seed in range(3):
        crop = generator.generate(
            np.random.default_rng(seed), shape_zyx=(16, 16, 16), centre="lesion", fazekas=1
        )
        assert crop.labels.array.shape == (16, 16, 16)
        assert crop.labels.array[6:10, 6:10, 6:10].any()
