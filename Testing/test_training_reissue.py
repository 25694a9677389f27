"""`wmhseg-train reissue`: a shipped bundle's weights under a new version with a later inference setting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_training_helpers import make_folder_dataset, tiny_config

from conftest import make_bundle
from wmhseg_training.cli import main
from wmhseg_training.config import DEFAULTS
from WMHSegmenterLib.engine.bundle import ModelBundle, find_bundle, sha256_of
from WMHSegmenterLib.engine.device import precision_name
from WMHSegmenterLib.engine.metrics import evaluate_wmh
from WMHSegmenterLib.engine.predictor import Predictor
from WMHSegmenterLib.engine.tasks import task_metadata
from WMHSegmenterLib.engine.volume import read_image, read_volume


def copied_bundle(model_id: str, folder: Path, **inference) -> ModelBundle:
    """A shipped bundle copied with its training data out of reach (so its validation table stays as
    recorded whatever this machine holds), and ``inference`` settings written into it."""
    shutil.copytree(find_bundle(model_id).folder, folder)
    meta = json.loads((folder / "model.json").read_text())
    nowhere = str(folder / "training data not here")
    meta["training"]["data"]["root"] = meta["training"]["hyperparameters"]["data"]["root"] = nowhere
    meta["inference"].update(inference)
    (folder / "model.json").write_text(json.dumps(meta))
    return ModelBundle(folder)


def test_reissue_keeps_weights_and_training_record_and_changes_only_the_named_setting(tmp_path, capsys):
    source = copied_bundle("wmh-flair", tmp_path / "source")
    out = tmp_path / "wmh-flair"
    notes = tmp_path / "notes.md"
    notes.write_text("## Brain mask\nChosen on drawn-head composites.\n")
    code = main(
        ["reissue", str(source.folder), "--out", str(out), "--version", "9.9.9"]
        + ["--inference", "overlap=0.6", "--card-notes", str(notes)]
    )
    assert code == 0, capsys.readouterr().err
    reissued = ModelBundle(out)
    assert sha256_of(reissued.weights_path) == sha256_of(source.weights_path)
    assert reissued.meta["version"] == "9.9.9"
    assert reissued.inference == {**DEFAULTS["inference"], **source.inference, "overlap": 0.6}
    assert reissued.meta["training"] == source.meta["training"]
    assert reissued.meta["reissued_from"] == {"id": "wmh-flair", "version": source.meta["version"]}
    assert reissued.meta["validation"]["metrics"] == source.meta["validation"]["metrics"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "Chosen on drawn-head composites." in card
    assert "the bundle's differ: overlap 0.25 -> 0.6" in card  # not the settings its table was scored with
    reissued.load_network()  # sha256 checked


def test_a_reissued_bundle_finds_files_by_the_current_name_patterns(tmp_path, capsys):
    source = copied_bundle("brats-glioma", tmp_path / "source")
    meta = json.loads((source.folder / "model.json").read_text())
    for spec in meta["inputs"]:
        spec["patterns"] = [f"*_{spec['name']}"]  # as bundles made before the bare names were added
    (source.folder / "model.json").write_text(json.dumps(meta))
    out = tmp_path / "brats-glioma"
    assert main(["reissue", str(source.folder), "--out", str(out), "--version", "9.9.9"]) == 0
    current = {spec["name"]: spec["patterns"] for spec in task_metadata("brats")["inputs"]}
    assert {spec.name: list(spec.patterns) for spec in ModelBundle(out).inputs} == current
    assert "flair" in current["flair"] and "t1ce" in current["t1ce"]


def test_reissue_refuses_the_source_bundles_own_version_and_writes_nothing(tmp_path, capsys):
    source = copied_bundle("brats-glioma", tmp_path / "source")
    out = tmp_path / "brats-glioma"
    code = main(["reissue", str(source.folder), "--out", str(out), "--version", source.meta["version"]])
    assert code == 2
    error = capsys.readouterr().err
    assert f"is already version {source.meta['version']}" in error and str(source.folder) in error
    assert not out.exists()


def test_reissue_refuses_an_unknown_setting_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "bundle"
    code = main(
        ["reissue", str(find_bundle("wmh-flair").folder), "--out", str(out), "--version", "1.0.0"]
        + ["--inference", "brain_masc=true"]
    )
    assert code == 2
    assert "brain_masc" in capsys.readouterr().err
    assert not out.exists()


def test_reissue_does_not_replace_an_existing_bundle_unless_asked(tmp_path, capsys):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "model.json").write_text("{}")
    code = main(["reissue", str(find_bundle("wmh-flair").folder), "--out", str(out), "--version", "1.0.0"])
    assert code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "model.json").read_text() == "{}"


def test_overwrite_never_replaces_a_folder_that_is_not_a_bundle(tmp_path, capsys):
    run = tmp_path / "runs" / "fold0"  # --out given the run folder (or the runs folder) by mistake
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"two hours of training")
    for out in (run, run.parent):
        code = main(
            [
                "reissue",
                str(find_bundle("wmh-flair").folder),
                "--out",
                str(out),
                "--version",
                "1.0.0",
                "--overwrite",
            ]
        )
        error = capsys.readouterr().err
        assert code == 2 and len(error.splitlines()) == 1 and f"{out}: folder holds other files" in error
    assert (run / "checkpoints" / "last.pt").read_bytes() == b"two hours of training"


def test_reissue_turns_keeping_the_largest_island_into_a_fraction_the_user_can_change(tmp_path, capsys):
    # as bundles made before the fraction say it
    source = copied_bundle(
        "brats-glioma", tmp_path / "old", largest_component_only=True, min_island_fraction=0
    )
    out = tmp_path / "brats-glioma"
    code = main(
        ["reissue", str(source.folder), "--out", str(out), "--version", "9.9.9"]
        + ["--inference", "min_island_fraction=0.8"]
    )
    assert code == 0, capsys.readouterr().err
    inference = ModelBundle(out).inference
    assert (inference["min_island_fraction"], inference["largest_component_only"]) == (0.8, False)


def trained_bundle(folder: Path) -> tuple[Path, Path]:
    """A tiny run on three drawn cases, exported; its data stays in reach, so a reissue scores again."""
    data = make_folder_dataset(folder / "data", cases=3)
    config = tiny_config(folder / "tiny.yaml", data, folder / "runs")
    assert (
        main(["--config", str(config), "--run-dir", str(folder / "run"), "--device", "cpu", "--quiet"]) == 0
    )
    bundle = folder / "tiny"
    assert main(["export", str(folder / "run"), "--id", "tiny", "--out", str(bundle)]) == 0
    return data, bundle


def test_reissue_scores_the_validation_cases_again_with_the_new_settings_where_their_data_is(
    tmp_path, capsys
):
    data, bundle = trained_bundle(tmp_path)
    out = tmp_path / "tiny-reissued"
    code = main(
        ["reissue", str(bundle), "--out", str(out), "--version", "2.0.0", "--inference", "overlap=0.75"]
    )
    assert code == 0, capsys.readouterr().err
    reissued = ModelBundle(out)
    assert reissued.meta["validation"]["inference"]["overlap"] == 0.75
    (case,) = reissued.meta["training"]["data"]["validation_cases"]
    prediction = Predictor(reissued, device="cpu").predict(
        {"flair": read_image(data / case / "flair.nii.gz")}
    )
    dice = evaluate_wmh(read_volume(data / case / "lesions.nii.gz"), prediction.labels)["dice"]
    assert dice == pytest.approx(reissued.meta["validation"]["metrics"]["dice"])
    assert "Scored again with the bundle's inference settings" in (out / "MODEL_CARD.md").read_text()


def test_reissue_refuses_a_bundle_without_a_training_record(tmp_path, capsys):
    source = make_bundle(tmp_path / "untrained")
    code = main(["reissue", str(source.folder), "--out", str(tmp_path / "out"), "--version", "1.0.0"])
    assert code == 2
    assert (
        "untrained: not a bundle made by wmhseg-train export (no training record)" in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_a_bundle_recording_a_setting_this_version_no_longer_knows_is_reissued_with_its_table(
    tmp_path, capsys
):
    source = copied_bundle("wmh-flair", tmp_path / "source")
    meta = json.loads((source.folder / "model.json").read_text())
    meta["training"]["hyperparameters"]["training"]["retired_setting"] = 1
    (source.folder / "model.json").write_text(json.dumps(meta))
    out = tmp_path / "out"
    code = main(["reissue", str(source.folder), "--out", str(out), "--version", "9.9.9"])
    assert code == 0, capsys.readouterr().err
    assert ModelBundle(out).meta["validation"]["metrics"] == meta["validation"]["metrics"]
    # its table was scored before mixed precision became the default, and the card says so
    assert "precision" not in meta["validation"]
    assert "original grid, the network in float32." in (out / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_reissue_onto_a_file_is_refused_in_one_line_and_keeps_the_file(tmp_path, capsys, overwrite):
    out = tmp_path / "notes.txt"
    out.write_text("not a bundle")
    code = main(
        ["reissue", str(find_bundle("wmh-flair").folder), "--out", str(out), "--version", "1.0.0", *overwrite]
    )
    error = capsys.readouterr().err
    assert code == 2 and len(error.splitlines()) == 1 and str(out) in error
    assert out.read_text() == "not a bundle"


def test_reissue_sets_a_bias_correction_that_the_bundle_applies_and_its_validation_is_scored_with(
    tmp_path, capsys
):
    data, bundle = trained_bundle(tmp_path)
    out = tmp_path / "tiny-n4"
    code = main(
        ["reissue", str(bundle), "--out", str(out), "--version", "2.0.0"]
        + ["--preprocessing", "bias_correction=n4_trimmed"]
    )
    assert code == 0, capsys.readouterr().err
    reissued = ModelBundle(out)
    assert sha256_of(reissued.weights_path) == sha256_of(ModelBundle(bundle).weights_path)
    assert reissued.preprocessing["bias_correction"] == "n4_trimmed"
    assert reissued.meta["training"] == ModelBundle(bundle).meta["training"]  # trained without it
    assert reissued.meta["validation"]["preprocessing"]["bias_correction"] == "n4_trimmed"
    assert reissued.meta["validation"]["precision"] == precision_name("cpu")  # scored again here
    (case,) = reissued.meta["training"]["data"]["validation_cases"]
    flair = {"flair": read_image(data / case / "flair.nii.gz")}
    corrected, plain = (Predictor(b, device="cpu").predict(flair) for b in (reissued, ModelBundle(bundle)))
    assert not (corrected.probabilities.array == plain.probabilities.array).all()  # N4 is applied
    dice = evaluate_wmh(read_volume(data / case / "lesions.nii.gz"), corrected.labels)["dice"]
    assert dice == pytest.approx(reissued.meta["validation"]["metrics"]["dice"])
    card = (out / "MODEL_CARD.md").read_text()
    assert "divided by its N4 bias field (fitted without the brightest 15 %)" in card
    assert (
        "Preprocessing changed after training (bias_correction None -> n4_trimmed): the network never" in card
    )
    assert "the table is scored with the bundle's" in card


def test_a_bias_correction_reissued_without_the_validation_data_says_the_table_is_the_runs(tmp_path, capsys):
    source = copied_bundle("wmh-flair", tmp_path / "source")
    meta = json.loads((source.folder / "model.json").read_text())
    meta["preprocessing"]["bias_correction"] = None  # as the run exported it
    meta["validation"].pop("preprocessing", None)
    (source.folder / "model.json").write_text(json.dumps(meta))
    out = tmp_path / "out"
    code = main(
        [
            "reissue",
            str(source.folder),
            "--out",
            str(out),
            "--version",
            "9.9.9",
            "--preprocessing",
            "bias_correction=n4",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert ModelBundle(out).meta["validation"]["metrics"] == source.meta["validation"]["metrics"]
    assert (
        "(bias_correction None -> n4): the network never saw images prepared so; "
        "the table is scored with the run's." in (out / "MODEL_CARD.md").read_text()
    )


@pytest.mark.parametrize(
    "setting, message",
    [
        ("spacing_xyz_mm=[2, 2, 2]", "preprocessing.spacing_xyz_mm cannot change after training"),
        ("bias_correction=n5", "preprocessing.bias_correction must be one of"),
    ],
)
def test_reissue_refuses_a_preprocessing_the_weights_are_bound_to_or_do_not_know(
    setting, message, tmp_path, capsys
):
    source = copied_bundle("wmh-flair", tmp_path / "source")
    out = tmp_path / "out"
    code = main(
        ["reissue", str(source.folder), "--out", str(out), "--version", "9.9.9", "--preprocessing", setting]
    )
    error = capsys.readouterr().err
    assert code == 2 and len(error.splitlines()) == 1 and message in error
    assert not out.exists()
