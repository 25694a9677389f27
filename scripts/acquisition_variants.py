"""Versions of a real FLAIR and its lesion mask as other protocols and scanners would give them.

The WMH model will meet FLAIRs acquired unlike the two real training scans (MNI-registered 1 mm 3D):
thick slices along any axis, a fine in-plane grid with 4 mm slices, an oblique slab, a different
lesion-to-white-matter contrast, a bias field, more noise. Each version here is made from the real
scan, so the expert mask comes along and the model can be scored on it with `wmhseg evaluate`:

- ``thick3_axial``, ``thick5_coronal``, ``thick5_sagittal``: slices 3 or 5 voxels thick along one axis
  (box slice profile, as `thick_slices.py`), the mask keeping voxels at least half lesion;
- ``clinical_05x05x4``: 4 mm axial slices on a 0.5 × 0.5 mm in-plane grid (linear, mask nearest);
- ``oblique20``: the scan on a 1 mm grid tilted 20° about its x axis (linear, mask at least half lesion);
- ``gamma0.6``, ``gamma1.6``: intensities inside the brain bent by a power (its 99.5th percentile
  fixed), which lowers or raises the lesions' contrast to white matter;
- ``bias``: a smooth multiplicative field, about ×0.6 to ×1.5 across the head;
- ``noise5pct``: Rician noise of 5 % of the mean brain intensity.

Geometry is kept in world space: every version lies where the scan lies. A reference's label 2 (the WMH
challenge's "other pathology", left out of its metrics) stays label 2 in every version.

    python scripts/acquisition_variants.py FLAIR MASK OUT_FOLDER [--seed 20261130] [--stem patient26]
        [--overwrite]

OUT_FOLDER gets ``<stem>_<variant>_flair.nii.gz`` and ``<stem>_<variant>_lesions.nii.gz``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from script_io import Pair, check_outputs, exit_status, read_pair, write_images
from thick_slices import case_stem, labels_by_fraction, thick_slice_mask, thick_slices

OBLIQUE_DEGREES = 20.0
#: The oblique grid is this much larger than the scan along each axis, so the tilted head still fits.
OBLIQUE_ROOM = 1.15
GAMMAS = (0.6, 1.6)
NOISE_FRACTION = 0.05
#: The versions `variants` makes, in order.
VARIANTS = (
    "thick3_axial",
    "thick5_coronal",
    "thick5_sagittal",
    "clinical_05x05x4",
    "oblique20",
    *(f"gamma{gamma:g}" for gamma in GAMMAS),
    "bias",
    "noise5pct",
)


def variants(flair: sitk.Image, mask: sitk.Image, rng: np.random.Generator) -> dict[str, Pair]:
    """Every version of (FLAIR, mask), by name."""
    flair = sitk.Cast(flair, sitk.sitkFloat32)
    made = {
        "thick3_axial": thick_version(flair, mask, axis=2, factor=3),
        "thick5_coronal": thick_version(flair, mask, axis=1, factor=5),
        "thick5_sagittal": thick_version(flair, mask, axis=0, factor=5),
        "clinical_05x05x4": _clinical(flair, mask),
        "oblique20": _oblique(flair, mask),
    }
    array = sitk.GetArrayFromImage(flair)
    brain = array > 0
    bright = float(np.percentile(array[brain], 99.5))
    for gamma in GAMMAS:
        bent = np.where(brain, bright * (np.clip(array, 0, None) / bright) ** gamma, 0)
        made[f"gamma{gamma:g}"] = (_like(bent, flair), mask)
    made["bias"] = (_like(array * _bias_field(array.shape), flair), mask)
    sigma = NOISE_FRACTION * float(array[brain].mean())
    real, imaginary = array + rng.normal(0, sigma, array.shape), rng.normal(0, sigma, array.shape)
    made["noise5pct"] = (_like(np.hypot(real, imaginary), flair), mask)
    return made


def thick_version(flair: sitk.Image, mask: sitk.Image, axis: int, factor: int) -> Pair:
    """Slices ``factor`` voxels thick along ``axis``, the mask keeping voxels at least half lesion."""
    return thick_slices(flair, factor, axis), thick_slice_mask(mask, factor, axis)


def _clinical(flair: sitk.Image, mask: sitk.Image) -> Pair:
    """4 mm axial slices, then a 0.5 mm in-plane grid over the same field of view."""
    thick, thick_mask = thick_version(flair, mask, axis=2, factor=4)
    factor = [s / 0.5 for s in flair.GetSpacing()[:2]]
    grid = sitk.Image(
        [round(n * f) for n, f in zip(flair.GetSize()[:2], factor)] + [thick.GetSize()[2]], sitk.sitkFloat32
    )
    grid.SetSpacing([0.5, 0.5, thick.GetSpacing()[2]])
    grid.SetDirection(thick.GetDirection())
    # the fine grid's first voxel centre sits half a fine voxel inside the coarse first voxel's edge
    grid.SetOrigin(thick.TransformContinuousIndexToPhysicalPoint([(0.5 / f) - 0.5 for f in factor] + [0.0]))
    return _resampled(thick, grid, sitk.sitkLinear), sitk.Cast(
        _resampled(thick_mask, grid, sitk.sitkNearestNeighbor), sitk.sitkUInt8
    )


def _oblique(flair: sitk.Image, mask: sitk.Image) -> Pair:
    angle = math.radians(OBLIQUE_DEGREES)
    tilt = np.array(
        [[1, 0, 0], [0, math.cos(angle), -math.sin(angle)], [0, math.sin(angle), math.cos(angle)]]
    )
    direction = np.array(flair.GetDirection()).reshape(3, 3) @ tilt
    size = [int(n * OBLIQUE_ROOM) for n in flair.GetSize()]
    centre = np.array(flair.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in flair.GetSize()]))
    half_extent = np.array([(n - 1) / 2 for n in size]) * np.array(flair.GetSpacing())
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing(flair.GetSpacing())
    grid.SetDirection(direction.ravel().tolist())
    grid.SetOrigin((centre - direction @ half_extent).tolist())
    oblique_mask = labels_by_fraction(
        mask, lambda label: _resampled(sitk.Cast(label, sitk.sitkFloat32), grid, sitk.sitkLinear)
    )
    return _resampled(flair, grid, sitk.sitkLinear), oblique_mask


def _resampled(image: sitk.Image, grid: sitk.Image, interpolator: int) -> sitk.Image:
    return sitk.Resample(image, grid, sitk.Transform(), interpolator, 0.0, image.GetPixelID())


def _bias_field(shape: tuple[int, ...]) -> np.ndarray:
    z, y, _ = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    return np.exp(0.35 * y + 0.2 * z)


def _like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.CopyInformation(reference)
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("flair", type=Path)
    parser.add_argument("mask", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=20261130, help="for the noise (default 20261130)")
    parser.add_argument("--stem", help="output name stem (default: the case's name, as thick_slices.py)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)

    def write_variants() -> None:
        flair, mask = read_pair(args.flair, args.mask)
        stem = args.stem or case_stem(args.flair)
        paths = {
            name: (args.out / f"{stem}_{name}_flair.nii.gz", args.out / f"{stem}_{name}_lesions.nii.gz")
            for name in VARIANTS
        }
        check_outputs([path for pair in paths.values() for path in pair], args.overwrite)
        images = {}
        for name, (image, version_mask) in variants(flair, mask, np.random.default_rng(args.seed)).items():
            flair_path, mask_path = paths[name]
            images[flair_path], images[mask_path] = image, version_mask
        write_images(images, args.overwrite)

    return exit_status("acquisition_variants.py", write_variants)


if __name__ == "__main__":
    sys.exit(main())
