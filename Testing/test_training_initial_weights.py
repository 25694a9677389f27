"""Fine-tuning: a run that starts from a bundle's checked weights instead of random ones."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml
from test_training_helpers import make_folder_dataset, tiny_config

from conftest import make_bundle
from wmhseg_training.checkpoints import load_checkpoint
from wmhseg_training.cli import main
from wmhseg_training.initial_weights import TRAINING_ONLY_PREFIX
from WMHSegmenterLib.engine.bundle import find_bundle

pytestmark = pytest.mark.usefixtures("one_thread")


def train(config, run_dir, *extra: str) -> int:
    return main(["--config", str(config), "--run-dir", str(run_dir), "--device", "cpu", "--quiet", *extra])


def export(run_dir, folder, model_id: str) -> int:
    return main(["export", str(run_dir), "--id", model_id, "--checkpoint", "last", "--out", str(folder)])


def test_a_run_from_a_bundle_starts_from_its_exact_model_and_records_it(tmp_path):
    data = make_folder_dataset(tmp_path / "data", cases=3)
    config = tiny_config(tmp_path / "tiny.yaml", data, tmp_path / "runs", training={"epochs": 1})
    assert train(config, tmp_path / "first") == 0
    first = tmp_path / "models" / "first"
    assert export(tmp_path / "first", first, "first") == 0

    # a learning rate of zero leaves the starting weights as they are, so they can be compared
    frozen = ["--set", f"training.initial_weights={first}", "--set", "training.optimizer.learning_rate=0"]
    assert train(config, tmp_path / "tuned", *frozen) == 0
    state = load_checkpoint(tmp_path / "tuned" / "checkpoints" / "last.pt")
    shipped = find_bundle(first).load_network().state_dict()
    for name, tensor in state["model"].items():
        if not name.startswith(TRAINING_ONLY_PREFIX):
            assert torch.equal(tensor, shipped[name]), name
    record = state["initial_weights"]
    assert record == {
        "id": "first",
        "version": "1.0.0",
        "sha256": find_bundle(first).meta["weights"]["sha256"],
    }
    # the same model scores the same on the same held-out case
    assert state["validation_metrics"]["dice"] == pytest.approx(
        find_bundle(first).meta["validation"]["metrics"]["dice"], abs=1e-9
    )

    # a resumed run keeps its record even when the starting bundle is gone
    shutil.rmtree(first)
    assert train(config, tmp_path / "tuned", *frozen, "--resume", "--set", "training.epochs=2") == 0
    assert load_checkpoint(tmp_path / "tuned" / "checkpoints" / "last.pt")["initial_weights"] == record

    assert export(tmp_path / "tuned", tmp_path / "models" / "tuned", "tuned") == 0
    meta = yaml.safe_load((tmp_path / "models" / "tuned" / "model.json").read_text())
    assert meta["training"]["initial_weights"] == record
    card = (tmp_path / "models" / "tuned" / "MODEL_CARD.md").read_text()
    assert f"Started from the weights of `first` 1.0.0 (sha256 {record['sha256'][:12]}" in card


def test_a_run_from_scratch_records_no_starting_model(tmp_path):
    data = make_folder_dataset(tmp_path / "data", cases=3)
    config = tiny_config(tmp_path / "tiny.yaml", data, tmp_path / "runs", training={"epochs": 1})
    assert train(config, tmp_path / "run") == 0
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["initial_weights"] is None
    assert export(tmp_path / "run", tmp_path / "bundle", "scratch") == 0
    assert "Started from the weights" not in (tmp_path / "bundle" / "MODEL_CARD.md").read_text()


def test_a_run_from_a_bundle_says_which_preprocessing_settings_it_changes(tmp_path, capsys):
    data = make_folder_dataset(tmp_path / "data", cases=3)
    config = tiny_config(tmp_path / "tiny.yaml", data, tmp_path / "runs", training={"epochs": 1})
    assert train(config, tmp_path / "first") == 0
    first = tmp_path / "models" / "first"
    assert export(tmp_path / "first", first, "first") == 0
    start = ["--set", f"training.initial_weights={first}"]

    capsys.readouterr()
    assert train(config, tmp_path / "same", *start) == 0
    assert "other preprocessing" not in capsys.readouterr().out

    assert train(config, tmp_path / "wider", *start, "--set", "preprocessing.crop_margin_mm=4") == 0
    out = capsys.readouterr().out
    assert "starting from first 1.0.0, trained with other preprocessing: crop_margin_mm: 2 -> 4" in out
    used = load_checkpoint(tmp_path / "wider" / "checkpoints" / "last.pt")["config"]["preprocessing"]
    assert used["crop_margin_mm"] == 4


@pytest.mark.parametrize(
    ("bundle_task", "features", "tamper", "message"),
    [
        ("brats", (4, 8, 16), False, "a brats model, the run is wmh"),
        ("wmh", (4, 8), False, "the model's network section differs from the run's"),
        ("wmh", (4, 8, 16), True, "refusing tampered weights"),
    ],
)
def test_a_starting_model_that_does_not_fit_is_refused_before_any_training(
    tmp_path, capsys, bundle_task, features, tamper, message
):
    bundle = make_bundle(tmp_path / "models" / "start", bundle_task, features=features)
    if tamper:
        weights = bytearray(bundle.weights_path.read_bytes())
        weights[-1] ^= 1
        bundle.weights_path.write_bytes(bytes(weights))
    data = make_folder_dataset(tmp_path / "data", cases=3)
    config = tiny_config(tmp_path / "tiny.yaml", data, tmp_path / "runs", training={"epochs": 1})
    run = tmp_path / "run"
    assert train(config, run, "--set", f"training.initial_weights={bundle.folder}") == 2
    error = capsys.readouterr().err
    assert message in error and str(bundle.folder) in error and "Traceback" not in error
    assert not (run / "checkpoints" / "last.pt").exists()


def test_an_unknown_starting_model_id_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WMHSEG_MODELS", str(tmp_path / "none"))
    data = make_folder_dataset(tmp_path / "data", cases=3)
    config = tiny_config(tmp_path / "tiny.yaml", data, tmp_path / "runs", training={"epochs": 1})
    assert train(config, tmp_path / "run", "--set", "training.initial_weights=no-such-model") == 2
    assert "unknown model" in capsys.readouterr().err
