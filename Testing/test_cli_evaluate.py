"""``wmhseg evaluate`` end to end through the real CLI entry point, on small files the tests write."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from WMHSegmenterLib.cli.evaluate import case_id
from WMHSegmenterLib.cli.main import main
from WMHSegmenterLib.engine.volume import Geometry, Volume, write_volume

SHAPE = (3, 6, 12)


def write(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_volume(Volume(array, Geometry.identity(spacing)), path)


def row(*xs: int, label: int = 1) -> np.ndarray:
    array = np.zeros(SHAPE, dtype=np.uint8)
    array[1, 2, list(xs)] = label
    return array


def wmhseg(*argv) -> int:
    return main(["evaluate", *map(str, argv)])


def pair(reference: Path, prediction: Path) -> tuple:
    return ("--reference", reference, "--prediction", prediction)


def folders(root: Path) -> tuple:
    return ("--reference-dir", root / "ref", "--prediction-dir", root / "pred")


def test_single_pair_prints_the_table_and_writes_json_and_csv(tmp_path, capsys):
    # reference x = 2..5, prediction x = 4..9: Dice 2*2 / (4 + 6) = 0.4, AVD |4 - 6| / 4 = 50 %
    reference = write(tmp_path / "case7_wmh.nii.gz", row(2, 3, 4, 5))
    prediction = write(tmp_path / "case7_pred.nii.gz", row(4, 5, 6, 7, 8, 9))
    json_path, csv_path = tmp_path / "out.json", tmp_path / "out.csv"
    code = wmhseg("--task", "wmh", *pair(reference, prediction), "--json", json_path, "--csv", csv_path)
    assert code == 0
    out = capsys.readouterr().out
    assert "case7" in out and "0.4000" in out and "50.00" in out and "mean ± sd" in out and "median" in out
    document = json.loads(json_path.read_text())
    assert set(document) >= {"cases", "mean", "median", "unmatched"}
    (case,) = document["cases"]
    assert case["case"] == "case7"
    assert list(case)[1:] == ["dice", "hd95", "avd", "lesion_recall", "lesion_precision", "lesion_f1"]
    assert case["dice"] == pytest.approx(0.4) and case["avd"] == pytest.approx(50.0)
    assert document["mean"]["dice"] == pytest.approx(0.4) and document["unmatched"] == []
    rows = list(csv.DictReader(csv_path.open()))
    assert rows[0]["case"] == "case7" and float(rows[0]["dice"]) == pytest.approx(0.4)


def test_folders_pair_by_case_id_list_unmatched_and_summarise_ignoring_nan(tmp_path, capsys):
    # case a: perfect (Dice 1, HD95 0); case b: empty prediction (Dice 0, HD95 NaN); c and d have no partner.
    # mean Dice (1 + 0)/2 = 0.5, sample sd sqrt(((1-0.5)^2 + (0-0.5)^2) / 1) = 0.7071, median 0.5;
    # HD95 summaries ignore b's NaN: mean = median = 0
    write(tmp_path / "ref" / "a_wmh.nii.gz", row(2, 3))
    write(tmp_path / "ref" / "b_wmh.nii.gz", row(5))
    write(tmp_path / "ref" / "c_wmh.nii.gz", row(5))
    write(tmp_path / "pred" / "a.nii.gz", row(2, 3))
    write(tmp_path / "pred" / "b_prediction.nii.gz", row())
    write(tmp_path / "pred" / "d.nii.gz", row(1))
    json_path = tmp_path / "out.json"
    code = wmhseg("--task", "wmh", *folders(tmp_path), "--json", json_path)
    assert code == 0
    document = json.loads(json_path.read_text())
    assert [case["case"] for case in document["cases"]] == ["a", "b"]
    assert document["cases"][1]["hd95"] is None  # NaN is written as null
    assert document["mean"]["dice"] == pytest.approx(0.5) and document["median"]["dice"] == pytest.approx(0.5)
    assert document["sd"]["dice"] == pytest.approx(math.sqrt(0.5))
    assert document["mean"]["hd95"] == 0.0 and document["median"]["hd95"] == 0.0
    assert [(item["case"], item["missing"]) for item in document["unmatched"]] == [
        ("c", "prediction"),
        ("d", "reference"),
    ]
    out = capsys.readouterr().out
    assert "0.5000 ± 0.7071" in out and "Unmatched cases (2)" in out and "c: no prediction" in out


def test_one_sub_folder_per_case_is_read(tmp_path, capsys):
    # references in case folders beside other images (WMH 2017 and BraTS layouts); predictions flat
    write(tmp_path / "ref" / "p1" / "wmh.nii.gz", row(2, 3))
    write(tmp_path / "ref" / "p1" / "flair.nii.gz", row(2, 3, 4, 5))
    write(tmp_path / "ref" / "Brats_X" / "Brats_X_seg.nii.gz", row(2))
    write(tmp_path / "ref" / "Brats_X" / "Brats_X_flair.nii.gz", row(2, 3))
    write(tmp_path / "pred" / "p1_seg.nii.gz", row(2, 3))
    write(tmp_path / "pred" / "Brats_X.nii.gz", row(2))
    json_path = tmp_path / "out.json"
    assert wmhseg("--task", "wmh", *folders(tmp_path), "--json", json_path) == 0
    cases = json.loads(json_path.read_text())["cases"]
    assert [(case["case"], case["dice"]) for case in cases] == [("Brats_X", 1.0), ("p1", 1.0)]


def test_brats_reference_2018_against_prediction_2023_with_lesionwise(tmp_path, capsys):
    # reference: NCR x2, ET(4) x3; prediction: the same in the 2023 convention (ET = 3): every region perfect
    reference = row(2)
    reference[1, 2, 3] = 4
    prediction = reference.copy()
    prediction[prediction == 4] = 3
    json_path = tmp_path / "out.json"
    files = pair(
        write(tmp_path / "Brats18_X_seg.nii.gz", reference), write(tmp_path / "pred.nii.gz", prediction)
    )
    code = wmhseg("--task", "brats", *files, "--lesionwise", "--json", json_path)
    assert code == 0
    (case,) = json.loads(json_path.read_text())["cases"]
    assert case["case"] == "Brats18_X"
    assert (case["wt_dice"], case["tc_dice"], case["et_dice"]) == (1.0, 1.0, 1.0)
    assert (case["wt_hd95"], case["et_volume_ref_ml"], case["et_volume_pred_ml"]) == (0.0, 0.001, 0.001)
    # lesions of 2 voxels are below the 50-voxel threshold: nothing scored -> Dice 1, HD95 0
    assert (case["wt_lesionwise_dice"], case["wt_lesionwise_hd95"]) == (1.0, 0.0)
    out = capsys.readouterr().out
    assert "WT Dice" in out and "lesion-wise" in out


def test_a_reader_that_leaves_early_ends_the_output_quietly(tmp_path):
    reference = write(tmp_path / "case7_wmh.nii.gz", row(2, 3, 4, 5))
    prediction = write(tmp_path / "case7_pred.nii.gz", row(4, 5))
    command = [sys.executable, "-m", "WMHSegmenterLib.cli.main", "evaluate", "--task", "wmh"]
    process = subprocess.Popen(
        [*command, *map(str, pair(reference, prediction))], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()  # as `| head -0` would, long before the table is printed
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert stderr == ""


def test_grid_mismatch_is_a_one_line_error_naming_the_prediction(tmp_path, capsys):
    reference = write(tmp_path / "r.nii.gz", row(2))
    prediction = write(tmp_path / "p.nii.gz", row(2), spacing=(1.0, 1.0, 3.0))
    assert wmhseg("--task", "wmh", *pair(reference, prediction)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"wmhseg: error: {prediction}: prediction does not lie on the reference grid")
    assert "\n" not in err


def test_a_folder_pair_off_the_grid_is_listed_and_the_other_cases_are_still_scored(tmp_path, capsys):
    write(tmp_path / "ref" / "a_wmh.nii.gz", row(2, 3))
    write(tmp_path / "ref" / "b_wmh.nii.gz", row(2, 3))
    write(tmp_path / "pred" / "a.nii.gz", row(2, 3), spacing=(1.0, 1.0, 3.0))
    write(tmp_path / "pred" / "b.nii.gz", row(2))
    json_path = tmp_path / "out.json"
    assert wmhseg("--task", "wmh", *folders(tmp_path), "--json", json_path) == 2
    captured = capsys.readouterr()
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("wmhseg: error: ")
    assert "a.nii.gz" in err_lines[0] and "does not lie on the reference grid" in err_lines[0]
    assert "Cases that could not be scored (1)" in captured.out
    document = json.loads(json_path.read_text())
    assert [case["case"] for case in document["cases"]] == ["b"]  # Dice 2*1 / (2 + 1)
    assert document["mean"]["dice"] == pytest.approx(2 / 3)
    assert [item["case"] for item in document["failed"]] == ["a"]


def test_folders_where_no_pair_can_be_scored_write_nothing(tmp_path, capsys):
    write(tmp_path / "ref" / "a_wmh.nii.gz", row(2, 3))
    write(tmp_path / "pred" / "a.nii.gz", row(2, 3), spacing=(1.0, 1.0, 3.0))
    json_path = tmp_path / "out.json"
    assert wmhseg("--task", "wmh", *folders(tmp_path), "--json", json_path) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 2 and "none of the 1 cases in common could be scored" in err_lines[1]
    assert not json_path.exists()


def test_existing_output_needs_overwrite(tmp_path, capsys):
    reference = write(tmp_path / "r.nii.gz", row(2))
    existing = tmp_path / "out.csv"
    existing.write_text("keep me")
    assert wmhseg("--task", "wmh", *pair(reference, reference), "--csv", existing) == 2
    assert "use --overwrite" in capsys.readouterr().err and existing.read_text() == "keep me"
    assert wmhseg("--task", "wmh", *pair(reference, reference), "--csv", existing, "--overwrite") == 0
    assert existing.read_text().startswith("case,dice,")


def test_an_output_whose_folder_is_a_file_is_refused_naming_that_file(tmp_path, capsys):
    reference = write(tmp_path / "r.nii.gz", row(2))
    blocked = tmp_path / "results"
    blocked.write_text("a file where the output folder should go")
    assert wmhseg("--task", "wmh", *pair(reference, reference), "--csv", blocked / "m.csv") == 2
    err = capsys.readouterr().err.strip()
    assert err == f"wmhseg: error: {blocked}: output folder is a file"
    assert blocked.read_text() == "a file where the output folder should go"


def test_a_table_written_over_a_label_map_is_refused_even_with_overwrite(tmp_path, capsys):
    reference = write(tmp_path / "r.nii.gz", row(2))
    label_map = reference.read_bytes()
    for option in ("--csv", "--json"):
        assert wmhseg("--task", "wmh", *pair(reference, reference), option, reference, "--overwrite") == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"wmhseg: error: {reference}: output must end in one of .") and "\n" not in err
    assert reference.read_bytes() == label_map


def test_folders_without_a_common_case_are_an_error(tmp_path, capsys):
    write(tmp_path / "ref" / "a.nii.gz", row(2))
    write(tmp_path / "pred" / "b.nii.gz", row(2))
    assert wmhseg("--task", "wmh", *folders(tmp_path)) == 2
    assert "no case ids in common" in capsys.readouterr().err


def test_lesions_table_marks_each_reference_lesion_found_or_missed_and_each_predicted_true_or_false(
    tmp_path, capsys
):
    reference, prediction = np.zeros((12, 12, 12), np.uint8), np.zeros((12, 12, 12), np.uint8)
    reference[1:4, 1:4, 1:4] = 1  # 27 voxels, found
    reference[8:10, 1:3, 1:3] = 1  # 8 voxels, missed
    reference[10, 10, 10] = 1  # 1 voxel, found
    reference[6, 6, 6] = 2  # other pathology: never a lesion, and a prediction there is zeroed
    prediction[2:6, 2:4, 2:4] = 1  # 16 voxels, meets the 27
    prediction[10:12, 10, 10] = 1  # 2 voxels, meets the single voxel
    prediction[1, 8:10, 8:10] = 1  # 4 voxels, false
    prediction[6, 6, 6] = 1
    table = tmp_path / "lesions.csv"
    paths = pair(write(tmp_path / "c_wmh.nii.gz", reference), write(tmp_path / "c_pred.nii.gz", prediction))
    assert wmhseg("--task", "wmh", *paths, "--lesions", table, "--json", tmp_path / "m.json") == 0
    rows = [
        (r["lesion"], int(r["number"]), int(r["voxels"]), r["overlaps"]) for r in csv.DictReader(table.open())
    ]
    assert rows == [
        ("reference", 1, 27, "True"),
        ("reference", 2, 8, "False"),
        ("reference", 3, 1, "True"),
        ("predicted", 1, 16, "True"),
        ("predicted", 2, 4, "False"),
        ("predicted", 3, 2, "True"),
    ]
    # the table counts what the metrics count: recall 2 of 3, precision 2 of 3
    (case,) = json.loads((tmp_path / "m.json").read_text())["cases"]
    assert case["lesion_recall"] == pytest.approx(2 / 3) and case["lesion_precision"] == pytest.approx(2 / 3)
    first = next(csv.DictReader(table.open()))
    assert (float(first["centre_r_mm"]), float(first["centre_a_mm"]), float(first["centre_s_mm"])) == (
        -2,
        -2,
        2,
    )

    assert wmhseg("--task", "brats", *paths, "--lesions", tmp_path / "b.csv") == 2
    assert "--lesions applies to --task wmh only" in capsys.readouterr().err
    assert wmhseg("--task", "wmh", *paths, "--lesions", tmp_path / "x.csv", "--csv", tmp_path / "x.csv") == 2
    assert "two outputs at one path" in capsys.readouterr().err


def test_inconsistent_options_are_errors(tmp_path, capsys):
    reference = write(tmp_path / "r.nii.gz", row(2))
    assert wmhseg("--task", "wmh", "--reference", reference) == 2
    assert "give --reference and --prediction" in capsys.readouterr().err
    assert wmhseg("--task", "wmh", *pair(reference, reference), "--lesionwise") == 2
    assert "--task brats only" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("Brats18_TCIA01_425_1_seg.nii.gz", "Brats18_TCIA01_425_1"),
        ("BraTS-GLI-00000-000-seg.nii.gz", "BraTS-GLI-00000-000"),
        ("p1_wmh_pred.nii", "p1"),
        ("subject_MASK.nrrd", "subject"),
        ("case3.mha", "case3"),
        ("patient26/lesions.nii.gz", "patient26"),
    ],
)
def test_case_id_strips_extensions_and_label_suffixes(path, expected):
    assert case_id(Path(path)) == expected
