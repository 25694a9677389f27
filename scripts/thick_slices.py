"""Turn a 3D FLAIR and its lesion mask into a clinical-like 2D acquisition with thick axial slices.

A 2D slice of thickness t averages the tissue across t millimetres (a box slice profile), so each thick
slice here is the mean of `factor` consecutive thin slices: SimpleITK's bin shrink, which also places
the new grid (spacing × factor, origin at the first bin's centre) in the same world position. The mask
gets the same treatment and keeps the voxels that are at least half lesion, which is what a reader
tracing on the thick slices can see. This is how the WMH model is checked on 5 mm slices it was not
validated on (`wmhseg segment` then `wmhseg evaluate`), and what the bundled-model test does.

    python scripts/thick_slices.py FLAIR MASK OUT_FOLDER [--factor 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import SimpleITK as sitk

from WMHSegmenterLib.engine.cases import image_stem

#: Thin-slice voxels of a thick one that must be lesion for the thick voxel to count as lesion.
LESION_FRACTION = 0.5


def thick_slices(image: sitk.Image, factor: int, axis: int = 2) -> sitk.Image:
    """``image`` averaged over ``factor`` slices along ``axis`` (SimpleITK's x, y, z; default z)."""
    factors = [1, 1, 1]
    factors[axis] = factor
    return sitk.BinShrink(sitk.Cast(image, sitk.sitkFloat32), factors)


def thick_slice_mask(mask: sitk.Image, factor: int, axis: int = 2) -> sitk.Image:
    lesion_fraction = thick_slices(mask > 0, factor, axis)
    return sitk.Cast(lesion_fraction >= LESION_FRACTION, sitk.sitkUInt8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("flair", type=Path)
    parser.add_argument("mask", type=Path)
    parser.add_argument("out", type=Path, help="folder for <stem>_thick<k>_flair.nii.gz and _mask.nii.gz")
    parser.add_argument("--factor", type=int, default=5, help="thin slices per thick slice (default 5)")
    args = parser.parse_args(argv)
    if args.factor < 1:
        parser.error("--factor must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    flair = thick_slices(sitk.ReadImage(str(args.flair)), args.factor)
    mask = thick_slice_mask(sitk.ReadImage(str(args.mask)), args.factor)
    write_images(args.out, f"{case_stem(args.flair)}_thick{args.factor}", {"flair": flair, "mask": mask})
    return 0


def case_stem(flair: Path) -> str:
    """``patient26`` of ``patient26_flair.nii.gz``."""
    return (image_stem(flair.name) or flair.stem).removesuffix("_flair")


def write_images(folder: Path, stem: str, images: dict[str, sitk.Image]) -> None:
    """``<stem>_<kind>.nii.gz`` for each image, the paths printed."""
    for kind, image in images.items():
        path = folder / f"{stem}_{kind}.nii.gz"
        sitk.WriteImage(image, str(path))
        print(path)


if __name__ == "__main__":
    sys.exit(main())
