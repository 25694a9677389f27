"""Synthetic FLAIR samples: reproducible, labels untouched by intensity synthesis, sane intensities, and
simulated acquisitions that show in the image."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from wmhseg_training.synthetic import GeneratorSettings, SyntheticFlairGenerator, Tissue, phantom_anatomy
from wmhseg_training.synthetic.acquisition import AcquisitionSettings
from wmhseg_training.synthetic.intensity import ContrastSettings
from WMHSegmenterLib.engine.errors import InputError

SPACING = (2.0, 2.0, 2.0)
WHOLE_BRAIN = (76, 92, 80)


@pytest.fixture(scope="module")
def anatomy():
    return phantom_anatomy(2.0)


def make(anatomy, **changes) -> SyntheticFlairGenerator:
    settings = replace(GeneratorSettings(spacing_xyz_mm=SPACING, shape_zyx=WHOLE_BRAIN), **changes)
    return SyntheticFlairGenerator([anatomy], settings)


def protocol(orientation: int, thickness: float) -> AcquisitionSettings:
    """Noise-free 2D slices of one thickness along one orientation (0 axial, 1 coronal, 2 sagittal)."""
    probabilities = [0.0, 0.0, 0.0]
    probabilities[orientation] = 1.0
    return AcquisitionSettings(
        orientation_probabilities=tuple(probabilities),
        three_d_probability=0.0,
        thickness_mm=(thickness, thickness),
        slice_gap=(0.0, 0.0),
        in_plane_mm=(1.0, 1.0),
        noise=(0.0, 0.0),
    )


def roughness(image: np.ndarray, inside: np.ndarray, axis: int) -> float:
    """Root-mean-square difference between neighbours along ``axis``, inside the head.

    Blurring an edge over n voxels divides this by about sqrt(n), so it measures smoothness along an axis.
    """
    difference = np.diff(image, axis=axis)
    both = np.logical_and(np.delete(inside, 0, axis=axis), np.delete(inside, -1, axis=axis))
    return float(np.sqrt(np.mean(difference[both] ** 2)))


def anisotropy(sample, slice_axis: int) -> float:
    """Roughness across the slices over roughness in-plane: below 1 when slices are thick."""
    head = sample.tissue > 0
    in_plane = [roughness(sample.image.array, head, axis) for axis in range(3) if axis != slice_axis]
    return roughness(sample.image.array, head, slice_axis) / float(np.mean(in_plane))


def test_same_seed_gives_the_same_sample_and_another_seed_another(anatomy):
    generator = make(anatomy)
    first, again = (generator.generate(np.random.default_rng(7), fazekas=2) for _ in range(2))
    assert np.array_equal(first.image.array, again.image.array)
    assert np.array_equal(first.labels.array, again.labels.array)
    assert first.image.geometry == again.image.geometry and first.info == again.info
    other = generator.generate(np.random.default_rng(8), fazekas=2)
    assert not np.array_equal(first.labels.array, other.labels.array)


def test_intensity_and_acquisition_settings_do_not_touch_the_labels(anatomy):
    """The label map is drawn before any intensity: other contrast or protocol ranges, same lesions."""
    plain = make(anatomy).generate(np.random.default_rng(3), fazekas=3)
    restyled = make(
        anatomy,
        contrast=ContrastSettings(flair_probability=0.0, bias_log_std=(0.5, 0.5)),
        acquisition=protocol(orientation=2, thickness=7.0),
    ).generate(np.random.default_rng(3), fazekas=3)
    assert np.array_equal(plain.labels.array, restyled.labels.array)
    assert np.array_equal(plain.tissue, restyled.tissue)
    assert not np.allclose(plain.image.array, restyled.image.array)
    labels = plain.labels.array
    assert labels.dtype == np.uint8 and set(np.unique(labels).tolist()) == {0, 1}


@pytest.mark.parametrize("flair_probability", [1.0, 0.0])
def test_intensities_are_finite_and_z_scored_inside_the_head(anatomy, flair_probability):
    generator = make(anatomy, contrast=ContrastSettings(flair_probability=flair_probability))
    for seed in range(2):
        sample = generator.generate(np.random.default_rng(seed), fazekas=2)
        image = sample.image.array
        assert image.dtype == np.float32 and np.all(np.isfinite(image))
        head = sample.tissue > 0
        assert np.all(image[~head] == 0)  # as the engine's z-score leaves the background
        assert abs(float(image[head].mean())) < 0.35
        assert 0.65 < float(image[head].std()) < 1.35


def test_flair_contrast_orders_csf_white_matter_and_lesions(anatomy):
    generator = make(anatomy, contrast=ContrastSettings(flair_probability=1.0))
    for seed in range(3):
        sample = generator.generate(np.random.default_rng(seed), fazekas=3)
        image, tissue, lesion = sample.image.array, sample.tissue, sample.labels.array.astype(bool)
        white = (tissue == Tissue.WHITE_MATTER) & ~lesion
        assert image[tissue == Tissue.VENTRICLE].mean() < image[white].mean() < image[lesion].mean()


def test_lesions_are_brighter_than_white_matter_in_random_contrast(anatomy):
    generator = make(anatomy, contrast=ContrastSettings(flair_probability=0.0))
    for seed in range(3):
        sample = generator.generate(np.random.default_rng(seed), fazekas=3)
        lesion = sample.labels.array.astype(bool)
        white = (sample.tissue == Tissue.WHITE_MATTER) & ~lesion
        assert sample.image.array[lesion].mean() > sample.image.array[white].mean()


@pytest.mark.parametrize(("orientation", "slice_axis"), [(0, 0), (2, 2)])
def test_thick_slices_smooth_the_image_across_the_slices(anatomy, orientation, slice_axis):
    """8 mm axial slices smooth along z (axis 0), sagittal ones along x (axis 2), compared with 1 mm
    slices of the very same sample (same seed: same anatomy and lesions, only the protocol differs)."""
    thick = make(anatomy, acquisition=protocol(orientation, 8.0))
    thin = make(anatomy, acquisition=protocol(orientation, 1.0))
    for seed in range(2):
        sample = thick.generate(np.random.default_rng(seed), fazekas=1)
        reference = thin.generate(np.random.default_rng(seed), fazekas=1)
        assert sample.info["protocol"].endswith("8.0/1.00mm") and sample.info["slice_axis"] == slice_axis
        assert np.array_equal(sample.tissue, reference.tissue)
        assert anisotropy(sample, slice_axis) < 0.75 * anisotropy(reference, slice_axis)


def test_output_grid_has_the_requested_spacing_and_the_anatomy_axes(anatomy):
    generator = make(anatomy)
    sample = generator.generate(
        np.random.default_rng(0), shape_zyx=(20, 24, 28), centre=(100.0, 120.0, 110.0)
    )
    geometry = sample.image.geometry
    assert sample.image.array.shape == sample.labels.array.shape == sample.tissue.shape == (20, 24, 28)
    assert geometry.spacing == SPACING and geometry.direction == anatomy.geometry.direction
    centre_world = geometry.index_to_world(np.array([[9.5, 11.5, 13.5]]))[0]
    expected = anatomy.geometry.index_to_world(np.array([[100.0, 120.0, 110.0]]) / 2.0)[0]
    assert np.allclose(centre_world, expected)
    assert sample.labels.geometry == geometry


def test_settings_come_from_nested_mappings_and_refuse_unknown_keys():
    settings = GeneratorSettings.from_mapping(
        {"skull_probability": 0.2, "lesions": {"fazekas_probabilities": [0, 0, 0.5, 0.5]}}
    )
    assert settings.skull_probability == 0.2 and settings.lesions.fazekas_probabilities == (0, 0, 0.5, 0.5)
    with pytest.raises(InputError, match="generator.lesions.fazekas"):
        GeneratorSettings.from_mapping({"lesions": {"fazekas": 2}})


def test_skull_is_simulated_around_a_brain_only_anatomy(anatomy):
    with_skull = make(anatomy, skull_probability=1.0).generate(np.random.default_rng(0))
    without = make(anatomy, skull_probability=0.0).generate(np.random.default_rng(0))
    assert with_skull.info["skull"] and not without.info["skull"]
    assert np.count_nonzero(with_skull.tissue == Tissue.SKULL) > 0.1 * np.count_nonzero(with_skull.tissue)
    assert not np.any(np.isin(without.tissue, (Tissue.SKULL, Tissue.SCALP)))
