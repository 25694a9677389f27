"""Label statistics a radiologist reads: volume in ml and number of separate lesions per label.

A BraTS result is also read by region (whole tumor, tumor core, enhancing tumor): those are the
volumes tumor response is judged on, and each unites several labels, so it gets a row of its own.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from scipy import ndimage

from .bundle import ModelBundle
from .labels import BRATS2018, REGION_NAMES, converted_value, region_labels
from .postprocess import islands_largest_first
from .volume import LPS_TO_RAS, Volume, publish_file


@dataclass
class LabelStatistics:
    #: the label value, or for a region the values it unites joined by "+" (e.g. "1+2+4")
    label: str
    name: str
    voxels: int
    volume_ml: float
    components: int


COLUMNS = [column.name for column in fields(LabelStatistics)]


@dataclass(frozen=True)
class Island:
    """One separate piece of a label map (26-connected, all labels together): a lesion, a tumour's
    focus, or a region the island cleaning removed. A reader goes through them one by one."""

    voxels: int
    volume_ml: float
    centre_ras_mm: tuple[float, float, float]  # the mean of its voxels, as Slicer shows positions
    labels: tuple[int, ...]  # the label values in it
    #: whether it meets the mask :func:`islands` was given (a detection, as lesion-wise metrics count one)
    overlaps: bool | None = None


#: The per-island table's columns (``--lesions``): its number (1 the largest), then the island's facts.
ISLAND_COLUMNS = ["number", "labels", "voxels", "volume_ml", "centre_r_mm", "centre_a_mm", "centre_s_mm"]

#: What one separate piece of a label is called in a task's summary: a WMH comes in lesions, a glioma's
#: regions (and the sub-regions within them) in foci.
PIECE_NOUNS = {"wmh": ("lesion", "lesions"), "brats": ("focus", "foci")}


def task_regions(task: str, convention: str = BRATS2018) -> dict[str, tuple[int, ...]]:
    """Region name -> the label values it unites, for the tasks read by region (BraTS); none for WMH."""
    if task != "brats":
        return {}
    return {
        f"{REGION_NAMES[region]} ({region.upper()})": values
        for region, values in region_labels(convention).items()
    }


def bundle_statistics(
    labels: Volume, bundle: ModelBundle, convention: str = BRATS2018
) -> list[LabelStatistics]:
    """A label map as written in ``convention``: its labels by the model's names, and a tumor's regions."""
    return label_statistics(
        labels, bundle_label_names(bundle, convention), task_regions(bundle.task, convention)
    )


def bundle_label_names(bundle: ModelBundle, convention: str = BRATS2018) -> dict[int, str]:
    """Label value, as written in ``convention``, -> the model's name for it."""
    return {converted_value(info.value, convention): info.name for info in bundle.labels}


def label_statistics(
    labels: Volume, names: Mapping[int, str], regions: Mapping[str, Sequence[int]] | None = None
) -> list[LabelStatistics]:
    """One row per named label, including labels that are absent (volume 0), then one per region."""
    voxel_ml = float(np.prod(labels.geometry.spacing)) / 1000.0
    groups = [((value,), name) for value, name in sorted(names.items())]
    groups += [(tuple(values), name) for name, values in (regions or {}).items()]
    array = labels.array[foreground_box(labels.array)]
    rows = []
    for values, name in groups:
        mask = np.isin(array, values)
        voxels = int(np.count_nonzero(mask))
        components = ndimage.label(mask, structure=np.ones((3, 3, 3)))[1] if voxels else 0
        label = "+".join(str(value) for value in values)
        rows.append(LabelStatistics(label, name, voxels, round(voxels * voxel_ml, 4), int(components)))
    return rows


def foreground_box(array: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of the labelled voxels (empty slices when none): counting in it rather than the
    whole scan takes a BraTS label map's statistics from 0.54-0.63 s to a tenth of that, and they are
    recounted after every edit."""
    boxes = ndimage.find_objects((array > 0).astype(np.uint8))
    return boxes[0] if boxes else (slice(0, 0),) * array.ndim


def islands(labels: Volume, overlapping: np.ndarray | None = None) -> list[Island]:
    """Every island of ``labels``, the largest first (as :func:`postprocess.islands_largest_first`
    numbers them); with ``overlapping`` (a mask on the same grid), whether each meets it."""
    box = foreground_box(labels.array)
    array = labels.array[box]
    if not array.size:
        return []
    numbered, sizes = islands_largest_first(array)
    numbers = np.arange(1, len(sizes) + 1)
    centres_zyx = np.asarray(ndimage.center_of_mass(numbered > 0, numbered, numbers)).reshape(-1, 3)
    centres_zyx += [piece.start for piece in box]
    centres_ras = labels.geometry.index_to_world(centres_zyx) @ LPS_TO_RAS
    voxel_ml = float(np.prod(labels.geometry.spacing)) / 1000.0
    found = []
    other = None if overlapping is None else overlapping[box]
    for number, island_box, size, centre in zip(numbers, ndimage.find_objects(numbered), sizes, centres_ras):
        inside = numbered[island_box] == number
        values = tuple(map(int, np.unique(array[island_box][inside])))
        overlaps = None if other is None else bool(other[island_box][inside].any())
        found.append(Island(int(size), float(size * voxel_ml), tuple(map(float, centre)), values, overlaps))
    return found


def write_islands_csv(
    found: Sequence[Island], names: Mapping[int, str], path: str | Path, overwrite: bool = False
) -> Path:
    """One row per island, numbered from the largest; labels by name, joined by "+"."""
    return _write_csv(island_rows(found, names), ISLAND_COLUMNS, path, overwrite)


def write_case_islands_csv(
    table: Mapping[str, Sequence[Island]], names: Mapping[int, str], path: str | Path, overwrite: bool = False
) -> Path:
    """A batch's islands as one table: every case's rows, each led by the case id."""
    rows = [{"case": case, **row} for case, found in table.items() for row in island_rows(found, names)]
    return _write_csv(rows, ["case", *ISLAND_COLUMNS], path, overwrite)


def write_lesion_matches_csv(
    table: Mapping[str, tuple[Sequence[Island], Sequence[Island]]], path: str | Path, overwrite: bool = False
) -> Path:
    """``wmhseg evaluate --lesions``: per case, each reference lesion and whether the prediction found
    it, then each predicted lesion and whether it is one (meets the reference)."""
    rows = [
        {"case": case, "lesion": kind, **row, "overlaps": island.overlaps}
        for case, pair in table.items()
        for kind, found in zip(("reference", "predicted"), pair)
        for row, island in zip(island_rows(found, {}), found)
    ]
    columns = ["case", "lesion", *(c for c in ISLAND_COLUMNS if c != "labels"), "overlaps"]
    return _write_csv([{k: row[k] for k in columns} for row in rows], columns, path, overwrite)


def island_rows(found: Sequence[Island], names: Mapping[int, str]) -> list[dict]:
    return [
        {
            "number": number,
            "labels": "+".join(names.get(value, str(value)) for value in island.labels),
            "voxels": island.voxels,
            "volume_ml": round(island.volume_ml, 4),
            **dict(zip(ISLAND_COLUMNS[-3:], (round(c, 2) for c in island.centre_ras_mm))),
        }
        for number, island in enumerate(found, start=1)
    ]


def piece_nouns(task: str) -> tuple[str, str]:
    """Singular and plural of a separate piece of ``task``'s labels ("part" for a task not listed)."""
    return PIECE_NOUNS.get(task, ("part", "parts"))


def count_heading(task: str) -> str:
    """The heading of the column counting separate pieces: "Lesions" for WMH, "Foci" for a tumour."""
    return piece_nouns(task)[1].capitalize()


def summary(rows: Sequence[LabelStatistics], task: str) -> str:
    """The statistics in one line, as the Slicer panel and the web page report them after Segment."""
    singular, plural = piece_nouns(task)

    def pieces(count: int) -> str:
        return f"{count} {singular if count == 1 else plural}"

    return "; ".join(f"{row.name}: {row.volume_ml:.2f} ml in {pieces(row.components)}" for row in rows)


def write_statistics_csv(rows: list[LabelStatistics], path: str | Path, overwrite: bool = False) -> Path:
    return _write_csv([asdict(row) for row in rows], COLUMNS, path, overwrite)


def write_case_statistics_csv(
    table: Mapping[str, list[LabelStatistics]], path: str | Path, overwrite: bool = False
) -> Path:
    """A batch's statistics as one table: every case's rows, each led by the case id."""
    rows = [{"case": case, **asdict(row)} for case, case_rows in table.items() for row in case_rows]
    return _write_csv(rows, ["case", *COLUMNS], path, overwrite)


def _write_csv(rows: list[dict], columns: list[str], path: str | Path, overwrite: bool) -> Path:
    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    return publish_file(write, path, overwrite)
