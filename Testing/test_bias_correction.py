"""N4 bias correction in preprocessing: coil shading divided out before the z-score, in training and use."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_bundle
from WMHSegmenterLib.engine.bundle import ModelBundle
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.preprocessing import N4_TRIMMED_PERCENTILE, n4_corrected, prepare_case
from WMHSegmenterLib.engine.volume import Geometry, Volume

SPACING_XYZ = (2.0, 2.0, 2.0)


def two_tissue_brain() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An ellipsoid 'brain' of grey (70) around white matter (100), with mild texture; and its shading.

    The shading brightens one end by 1.5 times the other, as a receive coil near the back of the head.
    """
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in (40, 48, 44)), indexing="ij")
    radius = np.sqrt((z / 0.85) ** 2 + (y / 0.9) ** 2 + (x / 0.85) ** 2)
    brain = radius < 1.0
    white = radius < 0.6
    texture = np.random.default_rng(0).normal(0, 2.0, brain.shape)
    tissue = np.where(white, 100.0, 70.0) + texture
    plain = np.where(brain, tissue, 0.0).astype(np.float32)
    shading = np.exp(np.log(1.5) * (y + 1) / 2).astype(np.float32)
    return plain, shading, white


def test_n4_divides_out_a_smooth_field_and_keeps_the_tissue_contrast():
    plain, shading, white = two_tissue_brain()
    brain = plain > 0
    grey = brain & ~white
    corrected = n4_corrected(plain * shading, brain, SPACING_XYZ)

    def spread(image, tissue):
        return image[tissue].std() / image[tissue].mean()

    for tissue in (white, grey):
        assert spread(corrected, tissue) < 0.5 * spread(plain * shading, tissue)
    contrast = corrected[white].mean() / corrected[grey].mean()
    assert contrast == pytest.approx(100 / 70, rel=0.05)
    assert (corrected[~brain] == 0).all()


@pytest.mark.parametrize("correction", [None, N4_TRIMMED_PERCENTILE], ids=["n4", "n4_trimmed"])
@pytest.mark.parametrize("rows", [slice(18, 20), slice(18, 19)], ids=["two slices", "one slice"])
def test_a_scan_thinner_than_n4s_grid_is_prepared_without_error(correction, rows):
    plain, shading, _ = two_tissue_brain()
    slab = (plain * shading)[rows, 20:23]  # three rows: thinner than the 4 mm grid along two axes
    corrected = n4_corrected(slab, slab > 0, SPACING_XYZ, correction)
    assert corrected.shape == slab.shape and np.isfinite(corrected).all()
    assert (corrected[slab == 0] == 0).all() and (corrected[slab > 0] > 0).all()


def test_trimmed_n4_keeps_a_large_bright_tumours_contrast_that_n4_dims():
    plain, shading, white = two_tissue_brain()
    brain = plain > 0
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in plain.shape), indexing="ij")
    distance = np.sqrt(z**2 + (y - 0.35) ** 2 + (x - 0.3) ** 2)
    tumour = brain & (distance < 0.5)
    # edema brightest at its centre, fading into the brain: as smooth as the fields N4 models
    with_tumour = np.where(tumour, plain * (1 + 1.2 * (1 - distance / 0.5)), plain).astype(np.float32)
    rest = brain & ~tumour

    def tumour_contrast(image):
        return image[tumour].mean() / image[rest].mean()

    true_contrast = tumour_contrast(with_tumour)
    n4 = n4_corrected(with_tumour * shading, brain, SPACING_XYZ)
    trimmed = n4_corrected(
        with_tumour * shading, brain, SPACING_XYZ, fit_below_percentile=N4_TRIMMED_PERCENTILE
    )
    assert abs(tumour_contrast(trimmed) - true_contrast) < 0.5 * abs(tumour_contrast(n4) - true_contrast)
    grey = rest & ~white
    assert trimmed[grey].std() < 0.5 * (with_tumour * shading)[grey].std()


def test_a_shaded_scan_is_prepared_like_the_unshaded_one_only_with_n4():
    plain, shading, _ = two_tissue_brain()
    geometry = Geometry.identity(spacing=SPACING_XYZ)
    settings = {"spacing_xyz_mm": list(SPACING_XYZ), "crop_margin_mm": 4}

    def prepared(image, correction):
        case = prepare_case(
            {"flair": Volume(image, geometry)}, ["flair"], {**settings, "bias_correction": correction}
        )
        return case.image[0][case.region]

    reference = prepared(plain, None)
    assert np.abs(prepared(plain * shading, None) - reference).mean() > 0.3
    assert np.abs(prepared(plain * shading, "n4") - reference).mean() < 0.05
    assert np.abs(prepared(plain * shading, "n4_trimmed") - reference).mean() < 0.05


def test_a_bundle_naming_an_unknown_bias_correction_is_refused(tmp_path):
    folder = make_bundle(tmp_path / "brats", "brats").folder
    meta = json.loads((folder / "model.json").read_text())
    meta["preprocessing"]["bias_correction"] = "n3"
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="model.json: preprocessing.bias_correction must be one of"):
        ModelBundle(folder)
