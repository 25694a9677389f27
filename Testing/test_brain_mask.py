"""The brain mask that lets the WMH model read skull-on FLAIR as it reads skull-stripped FLAIR."""

from __future__ import annotations

import numpy as np
import pytest

from WMHSegmenterLib.engine.preprocessing import background_level, brain_mask, head_mask, prepare_case
from WMHSegmenterLib.engine.volume import Geometry, Volume

SPACING_ZYX = (2.0, 1.0, 1.0)  # the WMH model's working grid
SHAPE = (84, 176, 150)
BRAIN_SEMI_AXES_MM = np.array([52.0, 68.0, 56.0])
#: FLAIR-like layers outside the brain, from inside out: (thickness mm, intensity); brain tissue is 100.
HEAD_LAYERS = [(3, 25), (2, 10), (2, 90), (2, 10), (5, 150), (1, 60)]  # CSF, tables and marrow, fat, skin


def ellipsoid_depth(semi_axes_mm, centre_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Roughly mm outside an ellipsoid (negative inside), on the test grid."""
    axes = [(np.arange(n) - n / 2) * s - c for n, s, c in zip(SHAPE, SPACING_ZYX, centre_mm)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    radius = np.sqrt((z / semi_axes_mm[0]) ** 2 + (y / semi_axes_mm[1]) ** 2 + (x / semi_axes_mm[2]) ** 2)
    return (radius - 1.0) * float(np.min(semi_axes_mm))


def phantom(with_head: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """FLAIR-like image, its brain, its lesion and its scalp fat (empty without a head)."""
    rng = np.random.default_rng(seed)
    depth = ellipsoid_depth(BRAIN_SEMI_AXES_MM)
    brain = depth <= 0
    image = np.where(brain, 100.0, 0.0)
    ventricles = ellipsoid_depth([14.0, 22.0, 6.0], (4.0, 0.0, 9.0)) <= 0
    ventricles |= ellipsoid_depth([14.0, 22.0, 6.0], (4.0, 0.0, -9.0)) <= 0
    image[ventricles] = 20.0
    lesion = ellipsoid_depth([6.0, 8.0, 6.0], (10.0, 15.0, 30.0)) <= 0
    image[lesion] = 170.0
    fat = np.zeros_like(brain)
    if with_head:
        outer = 0.0
        for thickness, intensity in HEAD_LAYERS:
            layer = (depth > outer) & (depth <= outer + thickness)
            image[layer] = intensity
            fat |= layer & (intensity == 150)
            outer += thickness
    scanned = image > 0 if not with_head else np.ones(SHAPE, dtype=bool)  # stripping zeroes the air
    image = np.abs(image + scanned * rng.normal(0.0, 4.0, SHAPE))
    return image.astype(np.float32), brain, lesion, fat


def test_brain_mask_keeps_the_brain_and_drops_the_bright_scalp_fat_of_a_skull_on_scan():
    image, brain, lesion, fat = phantom(with_head=True)
    mask = brain_mask(image, SPACING_ZYX)
    assert mask[brain].mean() > 0.99
    assert mask[lesion].all()
    assert mask[fat].mean() < 0.01
    assert head_mask(image)[fat].mean() > 0.99  # what the whole-head z-score used to include


def test_brain_mask_of_a_skull_stripped_scan_is_its_head_mask():
    image, brain, lesion, _ = phantom(with_head=False)
    mask = brain_mask(image, SPACING_ZYX)
    head = head_mask(image)
    assert mask[lesion].all()
    assert (mask & head).sum() / head.sum() > 0.98
    assert not (mask & ~head).any()


@pytest.mark.parametrize("with_head", [True, False], ids=["skull-on", "skull-stripped"])
def test_brain_mask_is_found_the_same_on_thick_slices(with_head):
    """2D clinical FLAIR: 6 mm slices blur the dark gap between brain and scalp along z."""
    image, brain, lesion, fat = phantom(with_head)
    thick = image.reshape(SHAPE[0] // 3, 3, *SHAPE[1:]).mean(axis=1).repeat(3, axis=0)
    mask = brain_mask(thick, SPACING_ZYX)
    assert mask[lesion].all()
    assert mask[brain].mean() > 0.97
    if with_head:
        assert mask[fat].mean() < 0.05


@pytest.mark.parametrize("within_brain", [True, False], ids=["brain", "head"])
@pytest.mark.parametrize("offset", [-1000.0, 250.0])
def test_a_skull_stripped_flair_stored_with_an_offset_is_prepared_as_the_plain_one(offset, within_brain):
    """Air at -1000 (or a FLAIR z-scored elsewhere) used to leave no bright head, hence an empty mask."""
    image, _, _, _ = phantom(with_head=False)
    geometry = Geometry.identity(spacing=SPACING_ZYX[::-1])
    settings = {"spacing_xyz_mm": [1.0, 1.0, 2.0]}
    plain = prepare_case({"flair": Volume(image, geometry)}, ["flair"], settings, within_brain=within_brain)
    shifted = prepare_case(
        {"flair": Volume(image + offset, geometry)}, ["flair"], settings, within_brain=within_brain
    )
    np.testing.assert_array_equal(shifted.region, plain.region)
    np.testing.assert_allclose(shifted.image, plain.image, atol=1e-3)


def test_a_noisy_background_or_a_few_dark_voxels_are_not_taken_for_an_offset():
    skull_on, _, _, _ = phantom(with_head=True)
    stripped, _, _, _ = phantom(with_head=False)
    stripped[0, 0, :20] = -40.0  # bias correction's odd negative voxels
    assert background_level(skull_on - 3.0) == 0.0  # noise around the air, no constant fill
    assert background_level(stripped) == 0.0
    assert background_level(stripped - 1000.0) == -1000.0
