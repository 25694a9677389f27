"""`scripts/robustness_set.py`: the card's 14 versions of each case, paired by name, made once and whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from WMHSegmenterLib.cli.main import main

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "robustness_set.py"
VERSIONS = (
    "plain",
    "thick3_axial",
    "thick5",
    "thick5_coronal",
    "thick5_sagittal",
    "clinical_05x05x4",
    "oblique20",
    "gamma0.6",
    "gamma1.6",
    "bias",
    "noise5pct",
    "skull0",
    "skull1",
    "skull1_thick5",
)


def write_case(folder: Path, lesion_centre_zyx: tuple[int, int, int]) -> Path:
    """A 1 mm skull-stripped brain-like scan (white matter 100, one lesion 180) in the open_ms layout."""
    folder.mkdir(parents=True)
    z, y, x = np.meshgrid(*(np.arange(n) for n in (30, 40, 44)), indexing="ij")
    brain = ((z - 15) / 13) ** 2 + ((y - 20) / 17) ** 2 + ((x - 22) / 19) ** 2 <= 1
    cz, cy, cx = lesion_centre_zyx
    lesion = ((z - cz) / 4) ** 2 + ((y - cy) / 5) ** 2 + ((x - cx) / 4) ** 2 <= 1
    flair = sitk.GetImageFromArray(np.where(lesion, 180.0, np.where(brain, 100.0, 0.0)).astype(np.float32))
    mask = sitk.GetImageFromArray(lesion.astype(np.uint8))
    for image in (flair, mask):
        image.SetOrigin((-22.0, 15.0, 3.0))
    sitk.WriteImage(flair, str(folder / "flair.nii.gz"))
    sitk.WriteImage(mask, str(folder / "lesions.nii.gz"))
    return folder


def run_script(*arguments) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, arguments)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("robustness")
    return [write_case(root / "caseA", (18, 12, 26)), write_case(root / "caseB", (10, 26, 16))]


@pytest.fixture(scope="module")
def made(cases, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("set")
    result = run_script(out, *cases)
    assert result.returncode == 0, result.stderr
    return out


def test_every_version_of_every_case_is_written_with_its_reference_on_its_grid(made):
    for case in ("caseA", "caseB"):
        for version in VERSIONS:
            image = sitk.ReadImage(str(made / "images" / f"{case}_{version}_flair.nii.gz"))
            reference = sitk.ReadImage(str(made / "references" / f"{case}_{version}_lesions.nii.gz"))
            assert image.GetSize() == reference.GetSize()
            assert np.allclose(image.GetOrigin(), reference.GetOrigin())
            assert np.allclose(image.GetDirection(), reference.GetDirection())
            assert set(np.unique(sitk.GetArrayFromImage(reference))) == {0, 1}
    assert len(list((made / "images").iterdir())) == len(list((made / "references").iterdir())) == 28


def test_wmhseg_evaluate_pairs_every_reference_with_the_version_of_the_same_name(made, tmp_path):
    # The references scored against themselves: each pairs with exactly one file of its own name.
    scores = tmp_path / "scores.csv"
    folder = str(made / "references")
    arguments = ["--reference-dir", folder, "--prediction-dir", folder, "--csv", str(scores)]
    assert main(["evaluate", "--task", "wmh", *arguments]) == 0
    rows = scores.read_text().splitlines()[1:]
    assert sorted(row.split(",")[0] for row in rows) == sorted(
        f"{c}_{v}" for c in ("caseA", "caseB") for v in VERSIONS
    )
    assert all(float(row.split(",")[1]) == 1.0 for row in rows)


def test_the_same_seed_writes_the_same_heads_and_noise_and_another_seed_does_not(made, cases, tmp_path):
    assert run_script(tmp_path / "again", *cases).returncode == 0
    assert run_script(tmp_path / "other", *cases, "--seed", 7).returncode == 0

    def array(out: Path, version: str) -> np.ndarray:
        return sitk.GetArrayFromImage(sitk.ReadImage(str(out / "images" / f"caseB_{version}_flair.nii.gz")))

    for version in ("skull1", "noise5pct"):
        assert np.array_equal(array(made, version), array(tmp_path / "again", version))
        assert not np.array_equal(array(made, version), array(tmp_path / "other", version))


def test_an_existing_set_is_refused_in_one_line_and_left_as_it_was(made, cases):
    before = {path: path.stat().st_mtime_ns for path in (made / "images").iterdir()}
    result = run_script(made, *cases)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "output exists" in result.stderr
    assert {path: path.stat().st_mtime_ns for path in (made / "images").iterdir()} == before


def test_a_case_without_a_lesion_mask_is_named_and_nothing_is_written(cases, tmp_path):
    broken = tmp_path / "caseC"
    broken.mkdir()
    (broken / "flair.nii.gz").write_bytes((cases[0] / "flair.nii.gz").read_bytes())
    result = run_script(tmp_path / "out", cases[0], broken)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(broken / "lesions.nii.gz") in result.stderr
    assert not (tmp_path / "out").exists()


def test_one_existing_output_stops_the_set_before_any_version_is_written(cases, tmp_path):
    last = tmp_path / "references" / "caseB_skull1_thick5_lesions.nii.gz"
    last.parent.mkdir()
    last.write_bytes(b"an earlier result")
    result = run_script(tmp_path, *cases)
    assert result.returncode == 2 and str(last) in result.stderr
    assert last.read_bytes() == b"an earlier result"
    assert not any((tmp_path / "images").iterdir())
