"""Dataset layouts -> cases (a file per modality and a label file), checked before any training starts.

Readers only find files; :func:`check_case_files` then reads every header so that a missing modality
or a label map on another grid stops the run in seconds with one line naming the file, rather than
hours later. Label values are checked when a case is first cached (see cache.py).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from WMHSegmenterLib.engine.cases import image_stem
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.labels import BRATS2018, as_label_array, convert_convention, detect_convention
from WMHSegmenterLib.engine.metrics.wmh import require_wmh_labels
from WMHSegmenterLib.engine.volume import READABLE_EXTENSIONS, Geometry

#: WMH challenge references: 2 is "other pathology", excluded from the loss and from scoring.
WMH_IGNORE_LABEL = 2

#: WMH 2017: <site>/<id>/pre/<FILE>.nii.gz and <site>/<id>/wmh.nii.gz.
WMH2017_FILES = {"flair": "FLAIR", "t1": "T1"}
WMH2017_LABEL = "wmh"

#: BraTS file suffixes after the case id: 2017-2021 names, then 2023 names (BraTS-GLI-00000-000-t2f).
BRATS_NAMINGS = (
    {"flair": "_flair", "t1": "_t1", "t1ce": "_t1ce", "t2": "_t2", "label": "_seg"},
    {"flair": "-t2f", "t1": "-t1n", "t1ce": "-t1c", "t2": "-t2w", "label": "-seg"},
)
CSV_LABEL_COLUMN = "label"
CSV_ID_COLUMN = "id"


@dataclass
class CaseFiles:
    """One training case: a file per modality (in input order) and its reference label map."""

    id: str
    images: dict[str, Path]
    label: Path


def find_cases(data: Mapping[str, Any], task: str, input_names: Sequence[str]) -> list[CaseFiles]:
    """Every case of ``data.root`` in its layout, sorted by id; an empty or broken layout is an error."""
    root = Path(data["root"])
    layout = data["layout"]
    if layout == "csv" and not root.is_file():
        raise InputError("CSV file not found (data.root)", root)
    if layout != "csv" and not root.is_dir():
        raise InputError("data folder not found (data.root)", root)
    readers: dict[str, Callable[[], list[CaseFiles]]] = {
        "wmh2017": lambda: read_wmh2017(root, input_names),
        "brats": lambda: read_brats(root, input_names),
        "csv": lambda: read_csv(root, input_names),
        "folder": lambda: read_folder(root, input_names, data["label_file"], data["image_files"] or {}),
    }
    cases = readers[layout]()
    if not cases:
        raise InputError(f"no cases found for layout {layout!r}", root)
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise InputError(f"two cases share the id {case.id!r}", root)
        seen.add(case.id)
    return sorted(cases, key=lambda case: case.id)


def read_wmh2017(root: Path, input_names: Sequence[str]) -> list[CaseFiles]:
    """``<site>/<id>/pre/FLAIR.nii.gz`` (+ ``pre/T1.nii.gz``) and ``<site>/<id>/wmh.nii.gz``.

    Any folder below ``root`` holding wmh.nii.gz is a case, so ``root`` may be one site or all of them.
    """
    unknown = [name for name in input_names if name not in WMH2017_FILES]
    if unknown:
        raise InputError(f"the wmh2017 layout has no {', '.join(unknown)} images (only FLAIR and T1)")
    cases = []
    for label in sorted(root.rglob(f"{WMH2017_LABEL}.nii*")):
        folder = label.parent
        images = {name: _image_file(folder / "pre", WMH2017_FILES[name], name) for name in input_names}
        case_id = "_".join(folder.relative_to(root).parts) or folder.name
        cases.append(CaseFiles(case_id, images, label))
    return cases


def read_brats(root: Path, input_names: Sequence[str]) -> list[CaseFiles]:
    """``<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz`` (2017-21), ``<case>-{t2f,t1n,t1c,t2w,seg}`` (2023).

    A folder holding any file named after itself with a BraTS suffix is a case (and must then be
    complete); other folders are searched below, so ``root`` may be a release with HGG/ and LGG/.
    """
    cases = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        folder = Path(directory)
        stems = {image_stem(f) for f in files} - {None}
        naming = next(
            (n for n in BRATS_NAMINGS if any(folder.name + suffix in stems for suffix in n.values())), None
        )
        if naming is None:
            continue
        subdirectories.clear()
        images = {name: _image_file(folder, folder.name + naming[name], name) for name in input_names}
        cases.append(
            CaseFiles(folder.name, images, _image_file(folder, folder.name + naming["label"], "label"))
        )
    return cases


def read_csv(path: Path, input_names: Sequence[str]) -> list[CaseFiles]:
    """One row a case: a column per modality, a ``label`` column, optionally ``id``.

    Relative paths are relative to the CSV's folder, so a CSV can travel with its data.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
    except UnicodeDecodeError:
        raise InputError("not a CSV text file (not UTF-8)", path) from None
    columns = set(reader.fieldnames or ())
    missing = [c for c in (*input_names, CSV_LABEL_COLUMN) if c not in columns]
    if missing:
        raise InputError(f"CSV lacks the column(s) {', '.join(missing)}", path)
    cases = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        empty = [c for c in (*input_names, CSV_LABEL_COLUMN) if not (row[c] or "").strip()]
        if empty:
            raise InputError(f"line {number}: empty {', '.join(empty)}", path)
        files = {name: _csv_path(path, row[name]) for name in input_names}
        label = _csv_path(path, row[CSV_LABEL_COLUMN])
        case_id = (row.get(CSV_ID_COLUMN) or "").strip() or f"row{number - 1:04d}"
        for name, file in [*files.items(), ("label", label)]:
            if not file.is_file():
                raise InputError(f"line {number}: {name} file not found", file)
        cases.append(CaseFiles(case_id, files, label))
    return cases


def read_folder(
    root: Path, input_names: Sequence[str], label_file: str, image_files: Mapping[str, str]
) -> list[CaseFiles]:
    """``<case>/flair.nii.gz`` + ``<case>/lesions.nii.gz`` (open_ms-like); every sub-folder is a case."""
    cases = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = {name: _image_file(folder, image_files.get(name, name), name) for name in input_names}
        cases.append(CaseFiles(folder.name, images, _image_file(folder, label_file, "label")))
    return cases


@dataclass(frozen=True)
class GridInfo:
    """A file's voxel grid, read from its header only."""

    shape_zyx: tuple[int, int, int]
    geometry: Geometry

    def describe(self) -> str:
        spacing = "x".join(f"{s:g}" for s in self.geometry.spacing)
        return f"{'x'.join(map(str, self.shape_zyx[::-1]))} voxels of {spacing} mm"


def read_grid(path: Path) -> GridInfo:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise InputError("not a readable image", path) from None
    size = reader.GetSize()
    if reader.GetDimension() == 4 and size[3] == 1:
        size = size[:3]
    if len(size) != 3 or reader.GetNumberOfComponents() != 1:
        raise InputError(f"expected a 3D scalar image, got size {size}", path)
    geometry = Geometry(reader.GetSpacing()[:3], reader.GetOrigin()[:3], _direction_3d(reader))
    return GridInfo(tuple(int(s) for s in size[::-1]), geometry)


def check_case_files(case: CaseFiles) -> None:
    """Every modality and the label on one grid; raises naming the first file that is not."""
    reference_name = next(iter(case.images))
    reference = read_grid(case.images[reference_name])
    for name, path in [*case.images.items(), ("label", case.label)]:
        grid = reference if path == case.images[reference_name] else read_grid(path)
        if grid.shape_zyx != reference.shape_zyx or not grid.geometry.matches(reference.geometry):
            raise InputError(
                f"case {case.id}: grid mismatch: {name} is {grid.describe()} at origin "
                f"{_rounded(grid.geometry.origin)}, {reference_name} is {reference.describe()} at origin "
                f"{_rounded(reference.geometry.origin)}",
                path,
            )


def checked_labels(labels: np.ndarray, task: str, source: Path) -> np.ndarray:
    """Label values the task allows, as uint8; BraTS 2023 files (ET = 3) become the 2018 convention (ET = 4).

    Training keeps one convention so the region targets (WT, TC, ET) are built one way.
    """
    labels = as_label_array(labels, source)
    if task == "wmh":
        require_wmh_labels(labels, source)
        return labels.astype(np.uint8)
    convention = detect_convention(labels, source) or BRATS2018  # refuses values that are not BraTS labels
    return convert_convention(labels, BRATS2018, convention).astype(np.uint8)


def _image_file(folder: Path, stem: str, what: str) -> Path:
    found = _find_image(folder, stem)
    if found is None:
        raise InputError(f"missing {what} image (expected {stem}.nii.gz)", folder)
    return found


def _find_image(folder: Path, stem: str) -> Path | None:
    return next((folder / (stem + e) for e in READABLE_EXTENSIONS if (folder / (stem + e)).is_file()), None)


def _csv_path(csv_file: Path, value: str) -> Path:
    path = Path(value.strip()).expanduser()
    return path if path.is_absolute() else (csv_file.parent / path)


def _direction_3d(reader: sitk.ImageFileReader) -> tuple[float, ...]:
    direction = reader.GetDirection()
    if len(direction) == 9:
        return tuple(direction)
    dimension = reader.GetDimension()
    return tuple(direction[row * dimension + column] for row in range(3) for column in range(3))


def _rounded(values) -> tuple[float, ...]:
    return tuple(round(float(v), 2) for v in values)
