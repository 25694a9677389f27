"""Label statistics a radiologist reads: volume in ml and number of separate lesions per label."""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from .volume import Volume, publish_file


@dataclass
class LabelStatistics:
    label: int
    name: str
    voxels: int
    volume_ml: float
    components: int


def label_statistics(labels: Volume, names: dict[int, str]) -> list[LabelStatistics]:
    """One row per named label, including labels that are absent (volume 0)."""
    voxel_ml = float(np.prod(labels.geometry.spacing)) / 1000.0
    rows = []
    for value, name in sorted(names.items()):
        mask = labels.array == value
        voxels = int(np.count_nonzero(mask))
        components = ndimage.label(mask, structure=np.ones((3, 3, 3)))[1] if voxels else 0
        rows.append(LabelStatistics(value, name, voxels, round(voxels * voxel_ml, 4), int(components)))
    return rows


def write_statistics_csv(rows: list[LabelStatistics], path: str | Path, overwrite: bool = False) -> Path:
    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0]).keys()) if rows else ["label"])
            writer.writeheader()
            writer.writerows(asdict(row) for row in rows)

    return publish_file(write, path, overwrite)
