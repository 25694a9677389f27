"""Turn a 3D FLAIR and its lesion mask into a clinical-like 2D acquisition with thick axial slices.

A 2D slice of thickness t averages the tissue across t millimetres (a box slice profile), so each thick
slice here is the mean of `factor` consecutive thin slices: SimpleITK's bin shrink, which also places
the new grid (spacing × factor, origin at the first bin's centre) in the same world position. The mask
gets the same treatment and keeps the voxels that are at least half lesion, which is what a reader
tracing on the thick slices can see ("other pathology", label 2, is kept where at least half is that).
This is how the WMH model is checked on 5 mm slices it was not validated on (`wmhseg segment` then
`wmhseg evaluate`), and what the bundled-model test does.

    python scripts/thick_slices.py FLAIR MASK OUT_FOLDER [--factor 5] [--stem NAME] [--overwrite]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import SimpleITK as sitk
from script_io import check_outputs, exit_status, read_pair, write_images

from WMHSegmenterLib.engine.cases import image_stem
from WMHSegmenterLib.engine.metrics.wmh import OTHER_PATHOLOGY, WMH

#: The part of a new voxel that must carry a label for the voxel to take it.
LABEL_FRACTION = 0.5


def thick_slices(image: sitk.Image, factor: int, axis: int = 2) -> sitk.Image:
    """``image`` averaged over ``factor`` slices along ``axis`` (SimpleITK's x, y, z; default z)."""
    factors = [1, 1, 1]
    factors[axis] = factor
    return sitk.BinShrink(sitk.Cast(image, sitk.sitkFloat32), factors)


def thick_slice_mask(mask: sitk.Image, factor: int, axis: int = 2) -> sitk.Image:
    return labels_by_fraction(mask, lambda label: thick_slices(label, factor, axis))


def labels_by_fraction(mask: sitk.Image, fraction: Callable[[sitk.Image], sitk.Image]) -> sitk.Image:
    """WMH labels on a new grid: WMH where at least half the new voxel was WMH, else other pathology
    where at least half was that, else 0. ``fraction`` takes a 0/1 image to the new grid as the share
    of each new voxel it covers."""
    wmh = fraction(mask == WMH) >= LABEL_FRACTION
    other = (fraction(mask == OTHER_PATHOLOGY) >= LABEL_FRACTION) & (wmh == 0)
    return sitk.Cast(wmh, sitk.sitkUInt8) * WMH + sitk.Cast(other, sitk.sitkUInt8) * OTHER_PATHOLOGY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("flair", type=Path)
    parser.add_argument("mask", type=Path)
    parser.add_argument("out", type=Path, help="folder for <stem>_thick<k>_flair.nii.gz and _mask.nii.gz")
    parser.add_argument("--factor", type=int, default=5, help="thin slices per thick slice (default 5)")
    parser.add_argument("--stem", help="output name stem (default: the case's name, see case_stem)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    if args.factor < 1:
        parser.error("--factor must be at least 1")

    def write_thick_version() -> None:
        flair, mask = read_pair(args.flair, args.mask)
        stem = f"{args.stem or case_stem(args.flair)}_thick{args.factor}"
        paths = {kind: args.out / f"{stem}_{kind}.nii.gz" for kind in ("flair", "mask")}
        check_outputs(paths.values(), args.overwrite)
        images = {
            paths["flair"]: thick_slices(flair, args.factor),
            paths["mask"]: thick_slice_mask(mask, args.factor),
        }
        write_images(images, args.overwrite)

    return exit_status("thick_slices.py", write_thick_version)


def case_stem(flair: Path) -> str:
    """``patient26`` of ``patient26_flair.nii.gz``, and of ``patient26/flair.nii.gz`` (a folder per case,
    files named by modality alone), so two cases' versions never share a name."""
    stem = image_stem(flair.name) or flair.stem
    if stem.lower() == "flair":
        return flair.absolute().parent.name
    return stem.removesuffix("_flair")


if __name__ == "__main__":
    sys.exit(main())
