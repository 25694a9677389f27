"""Choosing the bundle's small-component cleaning on held-out predictions (`wmhseg-train select-cleaning`)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from wmhseg_training.cleaning import CANDIDATES, Cleaning, best_cleaning, compare_cleaning, paired_cases
from wmhseg_training.cli import main
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.volume import Geometry, Volume, read_volume, write_volume

SHAPE = (12, 24, 24)
LARGEST = Cleaning(min_island_fraction=1.0)


def write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_volume(Volume(array.astype(np.uint8), Geometry.identity((1.0, 1.0, 1.0))), path)


def lesion_case(root: Path, case: str, speckles: bool, small_true_lesion: bool) -> None:
    """A 4x6x6 lesion found by the prediction, plus 2-voxel false islands and/or a 2-voxel true lesion."""
    reference = np.zeros(SHAPE, np.uint8)
    reference[2:6, 4:10, 4:10] = 1
    prediction = reference.copy()
    if small_true_lesion:
        reference[9, 20, 20:22] = 1
        prediction[9, 20, 20:22] = 1
    if speckles:
        prediction[9, 3, 18:20] = 1
        prediction[10, 16, 2:4] = 1
    write(root / "references" / case / "lesions.nii.gz", reference)
    write(root / "references" / case / "flair.nii.gz", np.ones(SHAPE))
    write(root / "predictions" / f"{case}.nii.gz", prediction)


def test_islands_that_are_false_positives_are_cleaned_away(tmp_path):
    for case in ("a", "b"):
        lesion_case(tmp_path, case, speckles=True, small_true_lesion=False)
    pairs = paired_cases(tmp_path / "references", tmp_path / "predictions")
    assert [case for case, _, _ in pairs] == ["a", "b"]
    scores = compare_cleaning("wmh", pairs, candidates=(Cleaning(0), Cleaning(3), Cleaning(100), LARGEST))
    by_cleaning = {str(s.cleaning): s.mean["dice"] for s in scores}
    assert by_cleaning["0"] == pytest.approx(2 * 144 / (144 + 148))
    assert by_cleaning["3"] == by_cleaning["100"] == by_cleaning["largest"] == pytest.approx(1.0)
    assert best_cleaning("wmh", scores).cleaning == Cleaning(3)  # the one removing least of the equal best


def test_no_cleaning_wins_where_small_islands_are_true_lesions(tmp_path):
    lesion_case(tmp_path, "a", speckles=False, small_true_lesion=True)
    pairs = paired_cases(tmp_path / "references", tmp_path / "predictions")
    scores = compare_cleaning("wmh", pairs, (Cleaning(0), Cleaning(3), LARGEST))
    assert best_cleaning("wmh", scores).cleaning == Cleaning(0)
    assert {str(s.cleaning): s.mean["dice"] for s in scores}["largest"] < 1.0


def test_largest_only_wins_where_the_other_islands_are_large_and_false(tmp_path):
    lesion_case(tmp_path, "a", speckles=False, small_true_lesion=False)
    prediction = np.zeros(SHAPE, np.uint8)
    prediction[2:6, 4:10, 4:10] = 1
    prediction[8:11, 14:20, 14:20] = 1  # a 108-voxel false island
    (tmp_path / "predictions" / "a.nii.gz").unlink()
    write(tmp_path / "predictions" / "a.nii.gz", prediction)
    pairs = paired_cases(tmp_path / "references", tmp_path / "predictions")
    scores = compare_cleaning("wmh", pairs, (Cleaning(0), Cleaning(100), LARGEST))
    assert best_cleaning("wmh", scores).cleaning == LARGEST


def test_a_fraction_of_the_largest_keeps_a_true_island_nearly_as_large_as_a_false_one(tmp_path):
    lesion_case(tmp_path, "a", speckles=False, small_true_lesion=False)  # the lesion: 144 voxels
    prediction = np.zeros(SHAPE, np.uint8)
    prediction[2:6, 4:10, 4:10] = 1
    prediction[7:11, 14:20, 14:20] = 1  # a 144-voxel false island, as large as the lesion
    prediction[11, 14:20, 14:16] = 1  # and 12 voxels more: the largest
    (tmp_path / "predictions" / "a.nii.gz").unlink()
    write(tmp_path / "predictions" / "a.nii.gz", prediction)
    pairs = paired_cases(tmp_path / "references", tmp_path / "predictions")
    scores = {str(s.cleaning): s.mean["dice"] for s in compare_cleaning("wmh", pairs, CANDIDATES)}
    assert scores["largest"] == 0.0
    assert scores["largest:0.8"] == pytest.approx(2 * 144 / (144 + 300))


def tumour_beside_a_larger_false_island(root: Path) -> list[str]:
    """A 144-voxel lesion the network is sure of (0.95) beside a 180-voxel false island (0.7): the
    select-cleaning folders, the probability map written as ``wmhseg segment --probabilities`` does."""
    lesion_case(root, "a", speckles=False, small_true_lesion=False)
    prediction = read_volume(root / "predictions" / "a.nii.gz").array
    prediction[7:12, 14:20, 14:20] = 1
    (root / "predictions" / "a.nii.gz").unlink()
    write(root / "predictions" / "a.nii.gz", prediction)
    probability = np.where(prediction > 0, 0.7, 0.05).astype(np.float32)
    probability[2:6, 4:10, 4:10] = 0.95
    (root / "probabilities").mkdir()
    write_volume(Volume(probability, Geometry.identity((1.0, 1.0, 1.0))), root / "probabilities" / "a.nii.gz")
    return ["--reference-dir", str(root / "references"), "--prediction-dir", str(root / "predictions")]


def test_measured_by_confidence_the_island_the_network_is_surer_of_wins_over_a_larger_one(tmp_path, capsys):
    folders = tumour_beside_a_larger_false_island(tmp_path)
    probabilities = ["--probability-dir", str(tmp_path / "probabilities")]
    assert main(["select-cleaning", "--task", "wmh", *folders, *probabilities]) == 0
    out = capsys.readouterr().out
    assert "best: largest@confidence " in out
    assert "--inference min_island_fraction=1 --inference island_measure=confidence" in out
    pairs = paired_cases(tmp_path / "references", tmp_path / "predictions")
    by_confidence = Cleaning.parse("largest@confidence")
    scores = compare_cleaning("wmh", pairs, (LARGEST, by_confidence), tmp_path / "probabilities")
    assert [s.mean["dice"] for s in scores] == [0.0, pytest.approx(1.0)]


def test_measuring_by_confidence_without_probability_maps_is_refused_in_one_line(tmp_path, capsys):
    folders = tumour_beside_a_larger_false_island(tmp_path)
    assert main(["select-cleaning", "--task", "wmh", *folders, "--candidates", "largest@confidence"]) == 2
    assert "candidates measured by confidence need the cases' probability maps" in capsys.readouterr().err
    (tmp_path / "probabilities" / "a.nii.gz").rename(tmp_path / "probabilities" / "b.nii.gz")
    probabilities = ["--probability-dir", str(tmp_path / "probabilities")]
    assert main(["select-cleaning", "--task", "wmh", *folders, *probabilities]) == 2
    assert f"{tmp_path / 'probabilities' / 'a.nii.gz'}: file not found" in capsys.readouterr().err


def test_cut_at_a_narrow_neck_a_false_region_joined_to_the_lesion_is_dropped(tmp_path, capsys):
    folders = tumour_beside_a_larger_false_island(tmp_path)
    prediction = read_volume(tmp_path / "predictions" / "a.nii.gz").array
    for step in range(6):  # a one-voxel bridge from the lesion's corner to the false island's
        prediction[6, 9 + step, 9 + step] = 1
    (tmp_path / "predictions" / "a.nii.gz").unlink()
    write(tmp_path / "predictions" / "a.nii.gz", prediction)
    pairs = paired_cases(tmp_path / "references", tmp_path / "predictions")
    whole, cut = Cleaning.parse("largest@confidence"), Cleaning.parse("largest@confidence+neck:1")
    scores = compare_cleaning("wmh", pairs, (whole, cut), tmp_path / "probabilities")
    assert scores[0].mean["dice"] == pytest.approx(2 * 144 / (144 + 144 + 180 + 6))
    assert scores[1].mean["dice"] > 0.98
    probabilities = ["--probability-dir", str(tmp_path / "probabilities")]
    candidates = ["--candidates", "largest@confidence,largest@confidence+neck:1"]
    assert main(["select-cleaning", "--task", "wmh", *folders, *probabilities, *candidates]) == 0
    out = capsys.readouterr().out
    assert "best: largest@confidence+neck:1 " in out
    assert "--inference island_measure=confidence --inference island_neck_mm=1" in out
    assert main(["select-cleaning", "--task", "wmh", *folders, *probabilities]) == 0
    assert "largest@confidence+neck:3 " in capsys.readouterr().out  # the shipped glioma cleaning is a default


def test_the_command_prints_every_candidate_and_the_choice(tmp_path, capsys):
    lesion_case(tmp_path, "a", speckles=True, small_true_lesion=False)
    folders = [
        "--reference-dir",
        str(tmp_path / "references"),
        "--prediction-dir",
        str(tmp_path / "predictions"),
    ]
    assert main(["select-cleaning", "--task", "wmh", *folders, "--candidates", "0,3"]) == 0
    out = capsys.readouterr().out
    assert "1 case(s)" in out and "best: 3 " in out
    assert "--inference min_component_voxels=3" in out
    assert main(["select-cleaning", "--task", "wmh", *folders, "--candidates", "0,largest"]) == 0
    assert "--inference min_island_fraction=1" in capsys.readouterr().out
    assert main(["select-cleaning", "--task", "wmh", *folders, "--candidates", "largest:0.8,largest"]) == 0
    assert "best: largest:0.8 " in capsys.readouterr().out


def test_the_csv_holds_every_case_under_every_candidate(tmp_path, capsys):
    lesion_case(tmp_path, "a", speckles=True, small_true_lesion=False)
    lesion_case(tmp_path, "b", speckles=False, small_true_lesion=False)
    table = tmp_path / "cleaning.csv"
    folders = [
        "--reference-dir",
        str(tmp_path / "references"),
        "--prediction-dir",
        str(tmp_path / "predictions"),
    ]
    command = ["select-cleaning", "--task", "wmh", *folders, "--candidates", "0,3", "--csv", str(table)]
    assert main(command) == 0
    assert f"wrote {table}" in capsys.readouterr().out
    with open(table, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["cleaning"], row["case"]) for row in rows] == [
        ("0", "a"),
        ("0", "b"),
        ("3", "a"),
        ("3", "b"),
    ]
    dice = [float(row["dice"]) for row in rows]
    assert dice == [pytest.approx(2 * 144 / (144 + 148)), 1.0, 1.0, 1.0]
    assert main(command) == 2
    assert "output exists (use --overwrite to replace it)" in capsys.readouterr().err
    assert main([*command, "--overwrite"]) == 0


def test_a_prediction_without_reference_is_an_error_naming_the_case(tmp_path):
    lesion_case(tmp_path, "a", speckles=False, small_true_lesion=False)
    write(tmp_path / "predictions" / "stranger.nii.gz", np.zeros(SHAPE))
    with pytest.raises(InputError, match="no reference for case\\(s\\) stranger"):
        paired_cases(tmp_path / "references", tmp_path / "predictions")


@pytest.mark.parametrize(
    ("candidates", "message"),
    [
        ("a", "expected comma-separated whole numbers, 'largest' or 'largest:F'"),
        ("largest:1.5", "fractions of the largest island must be in [0, 1]"),
        ("5@confidence", "'largest:F' (optionally with '@confidence')"),
        ("largest+neck:-1", "neck radii must be 0 mm or more"),
        ("largest@confidence+neck:wide", "each optionally with '+neck:R'"),
        ("0+neck:3", "'+neck:R' cuts islands for a candidate that removes some"),
    ],
)
def test_bad_candidates_are_a_usage_error(capsys, candidates, message):
    folders = ["--reference-dir", "r", "--prediction-dir", "p"]
    with pytest.raises(SystemExit) as exit_info:
        main(["select-cleaning", "--task", "wmh", *folders, "--candidates", candidates])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
