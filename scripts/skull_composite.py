"""Put a head around real skull-stripped FLAIRs: an evaluation proxy for skull-on clinical scans.

No skull-on FLAIR with a lesion reference is at hand, so the WMH model's robustness to a skull is
measured on real brains (open_ms, brain-extracted) given a drawn CSF rim (FLAIR-nulled), skull with
fatty marrow between its tables, bright scalp fat and darker skin, of random thickness made uneven by a
smooth field, with noise. Written apart from the training augmentation (wmhseg_training/synthetic/head.py)
so the check is not drawn by the code it checks; its ranges overlap that augmentation's, which makes it a
test of the same kind of head, not of every real one. One random generator runs over the cases in the
order given, so the same seed and order write the same files.

    python scripts/skull_composite.py OUT --seed 20261129 --draws 2 ../shared/data/open_ms/patient07 ...

Each CASE folder holds flair.nii.gz and lesions.nii.gz; OUT gets <case>_skull<k>_flair.nii.gz and
<case>_skull<k>_lesions.nii.gz, padded by 24 voxels with the origin moved so the brain stays in place;
existing files are refused unless --overwrite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from script_io import check_outputs, exit_status, read_pair, refuse_shared_case_names, write_images

PAD_VOXELS = 24
#: What each drawn head writes: the scan and its lesion mask.
KINDS = ("flair", "lesions")


def composite(flair: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The FLAIR with a drawn head; thicknesses are in voxels (open_ms is 1 mm isotropic)."""
    brain = ndimage.binary_fill_holes(flair > 0)
    median = float(np.median(flair[brain]))
    smooth = ndimage.gaussian_filter(rng.standard_normal(flair.shape).astype(np.float32), 8)
    distance = ndimage.distance_transform_edt(~brain) + 1.5 * smooth / smooth.std()
    rim, skull, scalp = rng.uniform(1, 3), rng.uniform(4, 8), rng.uniform(4, 9)
    edges = np.cumsum([rim, skull, scalp])
    head = np.zeros_like(flair)
    head[(distance > 0) & (distance <= edges[0])] = rng.uniform(0.15, 0.4)
    head[(distance > edges[0]) & (distance <= edges[1])] = rng.uniform(0.05, 0.2)
    marrow = (distance > edges[0] + skull * 0.35) & (distance <= edges[0] + skull * 0.65)
    head[marrow] = rng.uniform(0.6, 1.2)
    head[(distance > edges[1]) & (distance <= edges[2])] = rng.uniform(1.0, 1.6)
    head[(distance > edges[2] - 1.5) & (distance <= edges[2])] *= 0.6
    head = ndimage.gaussian_filter(head, 0.7) * median
    head *= 1 + 0.08 * rng.standard_normal(flair.shape).astype(np.float32)
    drawn = np.where(brain, flair, head)
    drawn = np.abs(drawn + 0.02 * median * rng.standard_normal(flair.shape).astype(np.float32))
    return drawn.astype(np.float32), f"rim {rim:.1f}, skull {skull:.1f}, scalp {scalp:.1f} mm"


def drawn_head(
    flair: sitk.Image, lesions: sitk.Image, rng: np.random.Generator
) -> tuple[sitk.Image, sitk.Image, str]:
    """The FLAIR padded by PAD_VOXELS with a head drawn in the padding, its lesions padded alike, and
    the shells' thicknesses; the brain stays where it lies in the world."""
    padded = np.pad(sitk.GetArrayFromImage(flair).astype(np.float32), PAD_VOXELS)
    drawn, shells = composite(padded, rng)
    labels = np.pad(sitk.GetArrayFromImage(lesions).astype(np.uint8), PAD_VOXELS)
    return _padded_like(drawn, flair), _padded_like(labels, flair), shells


def _padded_like(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(like.GetSpacing())
    image.SetDirection(like.GetDirection())
    image.SetOrigin(like.TransformContinuousIndexToPhysicalPoint([-PAD_VOXELS] * 3))
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("cases", type=Path, nargs="+", help="folders with flair.nii.gz and lesions.nii.gz")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--draws", type=int, default=2, help="heads per case (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)

    refuse_shared_case_names(parser, args.cases)

    def write_heads() -> None:
        pairs = {case: read_pair(case / "flair.nii.gz", case / "lesions.nii.gz") for case in args.cases}
        heads = [(case, f"{case.name}_skull{draw}") for case in args.cases for draw in range(args.draws)]
        paths = {name: [args.out / f"{name}_{kind}.nii.gz" for kind in KINDS] for _, name in heads}
        check_outputs([path for pair in paths.values() for path in pair], args.overwrite)
        rng = np.random.default_rng(args.seed)
        for case, name in heads:
            drawn, labels, shells = drawn_head(*pairs[case], rng)
            write_images(dict(zip(paths[name], (drawn, labels))), args.overwrite)
            print(f"{name}: {shells}")

    return exit_status("skull_composite.py", write_heads)


if __name__ == "__main__":
    sys.exit(main())
