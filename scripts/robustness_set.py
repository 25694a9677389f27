"""The WMH model card's robustness set: 14 versions of each real FLAIR and its lesion mask, in one command.

The card's robustness tables and its shipping checks score a model on each real scan as other protocols
and scanners would give it. The versions come from three scripts (`acquisition_variants.py`,
`thick_slices.py`, `skull_composite.py`); this one makes all of them with the card's seeds and writes
them under names that batch segmentation and evaluation pair by case id, so a check is three commands:

    python scripts/robustness_set.py OUT ../shared/data/open_ms/patient07 ../shared/data/open_ms/patient26
    wmhseg segment --model wmh-flair --input-dir OUT/images --output-dir OUT/pred
    wmhseg evaluate --task wmh --reference-dir OUT/references --prediction-dir OUT/pred --csv scores.csv

Each CASE folder holds flair.nii.gz and lesions.nii.gz (the open_ms layout). OUT/images gets
``<case>_<version>_flair.nii.gz`` and OUT/references ``<case>_<version>_lesions.nii.gz`` for the
versions in VERSIONS: the scan as it is, 5 mm axial slices, the nine of `acquisition_variants.py` (its
noise seeded by --seed for each case), two drawn heads (`skull_composite.py`, one generator seeded by
--seed over the cases in the order given) and the second head at 5 mm slices. The same seed and order
write the same images. Nothing is written if any output exists, unless --overwrite.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from acquisition_variants import VARIANTS, thick_version, variants
from script_io import Pair, check_outputs, exit_status, read_pair, refuse_shared_case_names
from skull_composite import drawn_head

from WMHSegmenterLib.engine.volume import Volume, write_volume

#: The card's seed for the noise and the drawn heads.
DEFAULT_SEED = 20261130
#: Thin slices per thick slice of the 5 mm versions (the real scans are 1 mm).
THICK_FACTOR = 5
VERSIONS = ("plain", "thick5", *VARIANTS, "skull0", "skull1", "skull1_thick5")


def case_versions(
    flair: sitk.Image, lesions: sitk.Image, noise_rng: np.random.Generator, head_rng: np.random.Generator
) -> dict[str, Pair]:
    """Every version of one case's (FLAIR, lesion mask), by name."""
    made = {"plain": (flair, lesions), "thick5": thick_version(flair, lesions, axis=2, factor=THICK_FACTOR)}
    made.update(variants(flair, lesions, noise_rng))
    for draw in (0, 1):
        head, head_lesions, _ = drawn_head(flair, lesions, head_rng)
        made[f"skull{draw}"] = (head, head_lesions)
    made["skull1_thick5"] = thick_version(*made["skull1"], axis=2, factor=THICK_FACTOR)
    return {name: made[name] for name in VERSIONS}


def write_set(out: Path, cases: list[Path], seed: int, overwrite: bool = False) -> None:
    """Check every input and output first, so a bad case or an existing file leaves nothing half-made."""
    images, references = out / "images", out / "references"
    inputs = [read_pair(case / "flair.nii.gz", case / "lesions.nii.gz") for case in cases]
    check_outputs(_output_paths(images, references, [case.name for case in cases]), overwrite)
    head_rng = np.random.default_rng(seed)
    for case, (flair, lesions) in zip(cases, inputs):
        made = case_versions(flair, lesions, np.random.default_rng(seed), head_rng)
        for version, (image, mask) in made.items():
            image_path, reference_path = _version_paths(images, references, case.name, version)
            write_volume(Volume.from_sitk(image), image_path, overwrite)
            write_volume(Volume.from_sitk(mask), reference_path, overwrite)
        print(f"{case.name}: {len(made)} versions")


def _output_paths(images: Path, references: Path, case_names: list[str]) -> Iterator[Path]:
    for name in case_names:
        for version in VERSIONS:
            yield from _version_paths(images, references, name, version)


def _version_paths(images: Path, references: Path, case_name: str, version: str) -> tuple[Path, Path]:
    """Where one version's image and reference go, named so batch segmentation and evaluation pair them."""
    stem = f"{case_name}_{version}"
    return images / f"{stem}_flair.nii.gz", references / f"{stem}_lesions.nii.gz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for images/ and references/")
    parser.add_argument("cases", type=Path, nargs="+", help="folders with flair.nii.gz and lesions.nii.gz")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"default {DEFAULT_SEED}")
    parser.add_argument("--overwrite", action="store_true", help="replace existing versions")
    args = parser.parse_args(argv)
    refuse_shared_case_names(parser, args.cases)
    return exit_status(
        "robustness_set.py", lambda: write_set(args.out, args.cases, args.seed, args.overwrite)
    )


if __name__ == "__main__":
    sys.exit(main())
