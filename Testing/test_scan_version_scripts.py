"""The scripts that make versions of real scans to score the models on (thick slices, other protocols,
drawn heads) keep `wmhseg`'s rules: an existing output or a bad input is refused in one line before
anything is written, and outputs of different cases never share a name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def write_case(folder: Path, extra_mask_columns: int = 0, other_pathology: bool = False) -> Path:
    """A 1 mm brain-like scan with one lesion, in the open_ms layout (a folder per case); its mask
    wider than the scan by ``extra_mask_columns``; with ``other_pathology``, a second bright blob of
    the same size marked 2, as the WMH challenge marks other pathology."""
    folder.mkdir(parents=True)
    z, y, x = np.meshgrid(*(np.arange(n) for n in (20, 24, 28)), indexing="ij")
    brain = ((z - 10) / 9) ** 2 + ((y - 12) / 11) ** 2 + ((x - 14) / 13) ** 2 <= 1
    lesion = ((z - 10) / 3) ** 2 + ((y - 8) / 3) ** 2 + ((x - 16) / 3) ** 2 <= 1
    other = other_pathology & (((z - 10) / 3) ** 2 + ((y - 16) / 3) ** 2 + ((x - 10) / 3) ** 2 <= 1)
    flair = np.where(lesion | other, 180.0, np.where(brain, 100.0, 0.0)).astype(np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(flair), str(folder / "flair.nii.gz"))
    labels = np.where(other, 2, lesion).astype(np.uint8)
    mask = np.pad(labels, ((0, 0), (0, 0), (0, extra_mask_columns)))
    sitk.WriteImage(sitk.GetImageFromArray(mask), str(folder / "lesions.nii.gz"))
    return folder


def arguments(script: str, case: Path, out: Path) -> list[str]:
    if script == "skull_composite.py":
        return [str(out), str(case), "--draws", "1"]
    return [str(case / "flair.nii.gz"), str(case / "lesions.nii.gz"), str(out)]


def run(script: str, case: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPTS / script), *arguments(script, case, out), *extra]
    return subprocess.run(command, capture_output=True, text=True)


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


SCRIPT_NAMES = ["thick_slices.py", "acquisition_variants.py", "skull_composite.py"]


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_a_second_run_is_refused_in_one_line_and_the_first_outputs_stay_until_overwrite_is_asked(
    script, tmp_path
):
    case, out = write_case(tmp_path / "patient01"), tmp_path / "out"
    assert run(script, case, out).returncode == 0
    first = contents(out)
    assert first and all(name.startswith("patient01_") for name in first)

    again = run(script, case, out)
    assert again.returncode == 2, again.stderr
    assert again.stderr.count("\n") == 1 and "output exists" in again.stderr
    assert contents(out) == first

    overwritten = run(script, case, out, "--overwrite")
    assert overwritten.returncode == 0, overwritten.stderr
    assert sorted(contents(out)) == sorted(first)


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_one_existing_output_stops_the_script_before_any_other_is_written(script, tmp_path):
    case = write_case(tmp_path / "patient01")
    assert run(script, case, tmp_path / "first").returncode == 0
    last = tmp_path / "out" / sorted(contents(tmp_path / "first"))[-1]
    last.parent.mkdir()
    last.write_bytes(b"an earlier result")

    result = run(script, case, tmp_path / "out")
    assert result.returncode == 2 and str(last) in result.stderr
    assert contents(tmp_path / "out") == {last.name: b"an earlier result"}


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_a_mask_off_the_scans_grid_is_named_in_one_line_and_nothing_is_written(script, tmp_path):
    case = write_case(tmp_path / "patient01", extra_mask_columns=2)
    result = run(script, case, tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert str(case / "lesions.nii.gz") in result.stderr and "grid" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_other_pathology_stays_label_2_in_every_version_and_never_becomes_lesion(script, tmp_path):
    case = write_case(tmp_path / "patient01", other_pathology=True)
    result = run(script, case, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    masks = sorted(path for path in (tmp_path / "out").iterdir() if not path.name.endswith("_flair.nii.gz"))
    assert masks
    blob_ml = (
        np.count_nonzero(sitk.GetArrayFromImage(sitk.ReadImage(str(case / "lesions.nii.gz"))) == 2) / 1000
    )
    for path in masks:
        mask = sitk.ReadImage(str(path))
        voxel_ml = np.prod(mask.GetSpacing()) / 1000
        labels = sitk.GetArrayFromImage(mask)
        for label in (1, 2):
            volume_ml = np.count_nonzero(labels == label) * voxel_ml
            assert 0.5 * blob_ml <= volume_ml <= 1.5 * blob_ml, (path.name, label, volume_ml, blob_ml)


@pytest.mark.parametrize("script", SCRIPT_NAMES)
def test_a_mask_that_is_not_a_wmh_label_map_is_named_in_one_line_and_nothing_is_written(script, tmp_path):
    case = write_case(tmp_path / "patient01")
    mask = sitk.ReadImage(str(case / "lesions.nii.gz"))
    sitk.WriteImage(mask * 255, str(case / "lesions.nii.gz"))
    result = run(script, case, tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert str(case / "lesions.nii.gz") in result.stderr and "not a WMH reference" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", ["thick_slices.py", "acquisition_variants.py"])
def test_cases_whose_files_are_named_by_modality_alone_get_their_folders_names(script, tmp_path):
    out = tmp_path / "out"
    for name in ("patient07", "patient26"):
        result = run(script, write_case(tmp_path / name), out)
        assert result.returncode == 0, result.stderr
    names = list(contents(out))
    assert {name.split("_")[0] for name in names} == {"patient07", "patient26"}
    assert sum(name.startswith("patient07_") for name in names) == len(names) // 2
