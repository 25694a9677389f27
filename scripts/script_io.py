"""Reading and writing for the scripts that make versions of real scans to score the models on.

They follow `wmhseg`'s rules: a bad input or an output that exists (without --overwrite) is refused in
one line naming the file, exit status 2, before anything is written; each image is written atomically,
so a stopped run leaves whole files or none.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.metrics.wmh import require_wmh_labels
from WMHSegmenterLib.engine.volume import (
    Volume,
    check_output_path,
    make_output_folder,
    read_volume,
    write_volume,
)

#: A FLAIR and its reference (uint8 WMH labels: 0, 1 WMH, 2 other pathology) on the same grid.
Pair = tuple[sitk.Image, sitk.Image]


def read_pair(flair_path: Path, mask_path: Path) -> Pair:
    """A scan and its reference as uint8 labels, refused if either cannot be read, the mask lies on
    another grid, or it holds values that are not WMH labels (`wmhseg evaluate` would refuse them too).
    Label 2, other pathology, is kept: the challenge leaves it out of every metric, and a version that
    called it lesion would score the model against lesions the experts never marked."""
    flair, mask = read_volume(flair_path), read_volume(mask_path)
    if flair.shape != mask.shape or not flair.geometry.matches(mask.geometry):
        raise InputError("lesion mask is not on the FLAIR's voxel grid", mask_path)
    require_wmh_labels(mask.array, mask_path)
    labels = mask.with_array(np.rint(mask.array).astype(np.uint8))
    return flair.to_sitk(), labels.to_sitk()


def check_outputs(paths: Iterable[Path], overwrite: bool) -> None:
    """Create the output folders and refuse any path that could not be written, before any work."""
    for path in paths:
        make_output_folder(path.parent)
        check_output_path(path, overwrite)


def write_images(images: dict[Path, sitk.Image], overwrite: bool) -> None:
    """Each image written atomically to its path, the path printed."""
    for path, image in images.items():
        write_volume(Volume.from_sitk(image), path, overwrite)
        print(path)


def refuse_shared_case_names(parser: argparse.ArgumentParser, cases: list[Path]) -> None:
    """Outputs are named by case folder, so two folders of one name would write the same files."""
    names = [case.name for case in cases]
    if len(set(names)) != len(names):
        parser.error("two case folders have the same name")


def exit_status(script: str, work: Callable[[], None]) -> int:
    """Run ``work``; a refused input or output is reported once, in one line, as exit status 2."""
    try:
        work()
    except InputError as error:
        print(f"{script}: error: {error}", file=sys.stderr)
        return 2
    return 0
