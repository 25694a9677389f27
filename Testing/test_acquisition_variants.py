"""`scripts/acquisition_variants.py`: other protocols' versions of a FLAIR keep the lesions where they are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "acquisition_variants.py"
VARIANTS = (
    "thick3_axial",
    "thick5_coronal",
    "thick5_sagittal",
    "clinical_05x05x4",
    "oblique20",
    "gamma0.6",
    "gamma1.6",
    "bias",
    "noise5pct",
)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, sitk.Image]:
    """A 1 mm brain-like scan (white matter 100, a lesion 180 off-centre) with an oblique direction."""
    folder = tmp_path_factory.mktemp("variants")
    z, y, x = np.meshgrid(*(np.arange(n) for n in (40, 48, 56)), indexing="ij")
    brain = ((z - 20) / 17) ** 2 + ((y - 24) / 21) ** 2 + ((x - 28) / 25) ** 2 <= 1
    lesion = ((z - 26) / 4) ** 2 + ((y - 16) / 5) ** 2 + ((x - 34) / 4) ** 2 <= 1
    flair = sitk.GetImageFromArray(np.where(lesion, 180.0, np.where(brain, 100.0, 0.0)).astype(np.float32))
    mask = sitk.GetImageFromArray(lesion.astype(np.uint8))
    for image in (flair, mask):
        image.SetOrigin((-30.0, 12.0, 5.0))
        image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(flair, str(folder / "case_flair.nii.gz"))
    sitk.WriteImage(mask, str(folder / "case_lesions.nii.gz"))
    command = [
        sys.executable,
        str(SCRIPT),
        str(folder / "case_flair.nii.gz"),
        str(folder / "case_lesions.nii.gz"),
    ]
    subprocess.run([*command, str(folder / "out")], check=True, capture_output=True)
    return folder / "out", mask


def world_centroid(mask: sitk.Image) -> np.ndarray:
    voxels = np.argwhere(sitk.GetArrayFromImage(mask) > 0)[:, ::-1].mean(axis=0)  # x, y, z
    return np.array(mask.TransformContinuousIndexToPhysicalPoint(voxels.tolist()))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_version_keeps_the_lesion_where_it_lies_in_the_world(made, variant):
    out, original = made
    flair = sitk.ReadImage(str(out / f"case_{variant}_flair.nii.gz"))
    mask = sitk.ReadImage(str(out / f"case_{variant}_lesions.nii.gz"))
    assert flair.GetSize() == mask.GetSize() and flair.GetOrigin() == mask.GetOrigin()
    assert sitk.GetArrayFromImage(mask).any()
    assert np.linalg.norm(world_centroid(mask) - world_centroid(original)) < 1.5


def test_thick_and_clinical_versions_have_the_grids_they_are_named_after(made):
    out, _ = made
    spacing = {v: sitk.ReadImage(str(out / f"case_{v}_flair.nii.gz")).GetSpacing() for v in VARIANTS}
    assert spacing["thick3_axial"] == (1.0, 1.0, 3.0)
    assert spacing["thick5_coronal"] == (1.0, 5.0, 1.0)
    assert spacing["thick5_sagittal"] == (5.0, 1.0, 1.0)
    assert spacing["clinical_05x05x4"] == (0.5, 0.5, 4.0)
    oblique = np.array(sitk.ReadImage(str(out / "case_oblique20_flair.nii.gz")).GetDirection()).reshape(3, 3)
    original = np.array((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)).reshape(3, 3)
    angle = np.degrees(np.arccos((np.trace(original.T @ oblique) - 1) / 2))
    assert angle == pytest.approx(20.0)


def test_gamma_lowers_or_raises_the_lesions_contrast_to_white_matter(made):
    out, original = made
    lesion = sitk.GetArrayFromImage(original) > 0

    def contrast(variant: str) -> float:
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"case_{variant}_flair.nii.gz")))
        white_matter = (image > 0) & ~lesion
        return float(image[lesion].mean() / image[white_matter].mean())

    assert contrast("gamma0.6") < 1.8 * 0.9 and contrast("gamma1.6") > 1.8 * 1.1
