"""Saving a corrected segmentation next to its case, never over an earlier file.

Four files with one name: ``<case>_seg.seg.nrrd`` (Slicer's format: segment names, colours and
terminology, reopens in Slicer for more editing), ``<case>_seg.nii.gz`` (label values on the input's
voxel grid, for training and for every other tool), ``<case>_seg.csv`` (the volumes and lesion counts
of exactly those labels, for the report) and ``<case>_seg_lesions.csv`` (each lesion, or tumour focus,
with its volume and centre, as ``wmhseg segment --lesions`` writes them). When any name is taken, all
get the next free numeric suffix (``_seg_1``, ``_seg_2``...), so the files always belong together and
nothing is overwritten.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..engine.errors import InputError
from ..engine.quantify import islands, write_islands_csv, write_statistics_csv
from ..engine.volume import Volume, publish_file, write_volume
from ..scene.logic import SegmenterLogic
from ..scene.segmentation import label_names

EXTENSIONS = (".seg.nrrd", ".nii.gz", ".csv", "_lesions.csv")


def free_stem(folder: Path, stem: str, extensions: tuple[str, ...] = EXTENSIONS) -> str:
    """``stem``, or ``stem_N`` with the smallest N > 0, such that no ``<result><extension>`` exists."""
    candidate, number = stem, 0
    while any((folder / f"{candidate}{extension}").exists() for extension in extensions):
        number += 1
        candidate = f"{stem}_{number}"
    return candidate


def save_segmentation(
    logic: SegmenterLogic, segmentation_node: Any, labels: Volume, folder: Path, case_id: str
) -> list[Path]:
    """Write the segmentation as it is now (edits included, ``labels``: its ``logic.labels``) with its
    statistics and lesions; returns the .seg.nrrd, .nii.gz, .csv and _lesions.csv paths."""
    stem = free_stem(folder, f"{case_id}_seg")
    dtype = np.uint8 if labels.array.max(initial=0) < 256 else np.int16
    label_file = write_volume(labels.with_array(labels.array.astype(dtype)), folder / f"{stem}.nii.gz")
    segmentation_file = publish_file(
        lambda temporary: _write_seg_nrrd(segmentation_node, temporary), folder / f"{stem}.seg.nrrd"
    )
    statistics_file = write_statistics_csv(
        logic.update_statistics(segmentation_node, labels), folder / f"{stem}.csv"
    )
    names = label_names(segmentation_node)
    lesions_file = write_islands_csv(islands(labels), names, folder / f"{stem}_lesions.csv")
    return [segmentation_file, label_file, statistics_file, lesions_file]


def _write_seg_nrrd(segmentation_node: Any, path: Path) -> None:
    """Slicer's own writer, through the node (only scene/ imports MRML classes)."""
    storage = segmentation_node.CreateDefaultStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(True)
    if not storage.WriteData(segmentation_node):
        raise InputError("could not write the segmentation", path)
