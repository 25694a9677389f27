"""`wmhseg-train cross-validate`: every fold trained once, every held-out case scored once, and a
stopped cross-validation continued by running the same command again."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from test_training_helpers import make_folder_dataset, tiny_config

from conftest import given_as
from wmhseg_training.checkpoints import load_checkpoint
from wmhseg_training.cli import main
from WMHSegmenterLib.engine.metrics import evaluate_wmh
from WMHSegmenterLib.engine.samples import sample_inputs, sample_reference
from WMHSegmenterLib.engine.volume import read_channels, read_volume

pytestmark = pytest.mark.usefixtures("one_thread")


def cross_validate(config: Path, out: Path, *extra: str) -> int:
    return main(
        ["cross-validate", "--config", str(config), "--out", str(out), "--device", "cpu", "--quiet", *extra]
    )


def table(out: Path) -> list[dict[str, str]]:
    with open(out / "cases.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def four_cases(tmp_path):
    data = make_folder_dataset(tmp_path / "data", cases=4)
    # validation.max_cases caps validation during training, never the cross-validation's scoring
    config = tiny_config(
        tmp_path / "tiny.yaml", data, tmp_path / "runs", data={"folds": 2}, validation={"max_cases": 1}
    )
    return data, config


def test_every_case_is_held_out_once_and_scored_on_its_written_prediction_and_probabilities(
    four_cases, tmp_path, capsys
):
    data, config = four_cases
    out = tmp_path / "cv"
    assert cross_validate(config, out) == 0
    rows = table(out)
    assert sorted(row["case"] for row in rows) == ["patient00", "patient01", "patient02", "patient03"]
    assert sorted(row["fold"] for row in rows) == ["0", "0", "1", "1"]
    for row in rows:
        reference = read_volume(data / row["case"] / "lesions.nii.gz")
        prediction = read_volume(out / "predictions" / f"{row['case']}.nii.gz")
        assert prediction.geometry.matches(reference.geometry, tolerance=1e-6)
        assert float(row["dice"]) == pytest.approx(evaluate_wmh(reference, prediction)["dice"], abs=1e-9)
        assert float(row["seconds"]) > 0
        lesion = read_channels(out / "probabilities" / f"{row['case']}.nii.gz")
        assert lesion.geometry.matches(reference.geometry, tolerance=1e-6) and lesion.array.shape[0] == 1
        # an untrained network's bfloat16 logits often tie: a tie may go either way within rounding
        decided = np.abs(lesion.array[0] - 0.5) > 1e-6
        np.testing.assert_array_equal(prediction.array[decided], lesion.array[0][decided] > 0.5)
    assert "mean of 4" in capsys.readouterr().out


def test_a_stopped_cross_validation_continues_where_it_stopped(four_cases, tmp_path, capsys):
    _, config = four_cases
    out = tmp_path / "cv"
    assert cross_validate(config, out, "--folds", "1") == 0
    first = load_checkpoint(out / "fold1" / "checkpoints" / "last.pt")["saved"]
    assert [row["fold"] for row in table(out)] == ["1", "1"]
    assert not (out / "fold0").exists()

    assert cross_validate(config, out, "--inference", "largest_component_only=true") == 0
    assert load_checkpoint(out / "fold1" / "checkpoints" / "last.pt")["saved"] == first  # not trained again
    assert sorted(row["fold"] for row in table(out)) == ["0", "0", "1", "1"]
    for row in table(out):
        prediction = read_volume(out / "predictions" / f"{row['case']}.nii.gz").array
        assert ndimage.label(prediction > 0, structure=[[[1] * 3] * 3] * 3)[1] <= 1

    assert cross_validate(config, out, "--folds", "0", "--set", "training.epochs=3") == 0
    assert load_checkpoint(out / "fold0" / "checkpoints" / "last.pt")["epoch"] == 3
    assert [row["fold"] for row in table(out)] == ["0", "0"]  # the table: this call's folds, scored one way
    assert "resuming" in capsys.readouterr().out


def test_a_finished_fold_of_another_recipe_or_length_is_refused_not_reused(four_cases, tmp_path, capsys):
    _, config = four_cases
    out = tmp_path / "cv"
    assert cross_validate(config, out, "--folds", "0") == 0
    assert cross_validate(config, out, "--folds", "0", "--set", "training.loss=ce") == 2
    err = capsys.readouterr().err.strip()
    assert "config differs from the run's (training.loss)" in err and "\n" not in err
    assert cross_validate(config, out, "--folds", "0", "--set", "training.epochs=1") == 2
    assert "has trained 2 epochs, more than the 1 asked" in capsys.readouterr().err


def test_unknown_folds_are_refused_before_any_training(four_cases, tmp_path, capsys):
    _, config = four_cases
    assert cross_validate(config, tmp_path / "cv", "--folds", "0,2") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("wmhseg-train: error: folds must be distinct, from 0 to 1") and "\n" not in err
    assert not (tmp_path / "cv").exists()


def test_torchrun_is_refused_as_each_rank_would_write_the_same_table(
    four_cases, tmp_path, capsys, monkeypatch
):
    _, config = four_cases
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cross_validate(config, tmp_path / "cv") == 2
    assert "not under torchrun" in capsys.readouterr().err
    assert not (tmp_path / "cv").exists()


def test_a_case_whose_scans_look_swapped_is_marked_in_the_table(tmp_path, capsys):
    """Two copies of the bundled BraTS sample, one with its FLAIR and T2 given in each other's place:
    that case's score measures the input, not the recipe, so the table says so."""
    _, paths = sample_inputs("brats")
    data = tmp_path / "data"
    for case, given in (("Sample_right", paths), ("Sample_swapped", given_as(paths, ("flair", "t2")))):
        (data / case).mkdir(parents=True)
        for name, path in given.items():
            shutil.copy(path, data / case / f"{case}_{name}.nii.gz")
        shutil.copy(sample_reference("brats"), data / case / f"{case}_seg.nii.gz")
    config = tiny_config(
        tmp_path / "tiny.yaml",
        data,
        tmp_path / "runs",
        task="brats",
        data={"layout": "brats", "folds": 2},
        preprocessing={"spacing_xyz_mm": [4.0, 4.0, 4.0]},
        training={"epochs": 1},
    )
    assert cross_validate(config, tmp_path / "cv") == 0
    warnings = {row["case"]: row["warnings"] for row in table(tmp_path / "cv")}
    assert warnings["Sample_right"] == "" and "look swapped" in warnings["Sample_swapped"]
    out = capsys.readouterr().out
    assert f"Sample_swapped: warning: {warnings['Sample_swapped']}" in out
    assert "Sample_right: warning" not in out
