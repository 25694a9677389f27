"""Ensembles: networks of one recipe shipped in one bundle, their probabilities averaged at inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_training_helpers import make_folder_dataset, tiny_config

from conftest import blob_volume, make_bundle
from wmhseg_training.cli import main as wmhseg_train
from WMHSegmenterLib.cli.main import main as wmhseg
from WMHSegmenterLib.engine.bundle import ModelBundle, save_bundle
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.predictor import Predictor
from WMHSegmenterLib.engine.unet import Ensemble

pytestmark = pytest.mark.usefixtures("one_thread")


def half_precision_copy(bundle: ModelBundle, folder) -> ModelBundle:
    """The bundle with its weights rounded to float16, as an ensemble stores each member's."""
    return save_bundle(bundle.load_network(), bundle.meta, folder, weights_dtype="float16")


def ensemble_of(members: list[ModelBundle], folder) -> ModelBundle:
    sigmoid = members[0].output_activation == "sigmoid"
    ensemble = Ensemble([member.load_network() for member in members], sigmoid)
    return save_bundle(ensemble, {**members[0].meta, "id": "ensemble"}, folder, weights_dtype="float16")


def inputs_for(bundle: ModelBundle) -> dict:
    return {name: blob_volume((12, 20, 18), seed=i) for i, name in enumerate(bundle.input_names)}


@pytest.mark.parametrize("task", ["wmh", "brats"])
def test_an_ensemble_predicts_the_average_of_its_members_probabilities(tmp_path, task):
    members = [
        half_precision_copy(make_bundle(tmp_path / f"m{seed}", task, seed=seed), tmp_path / f"h{seed}")
        for seed in (0, 1)
    ]
    ensemble = ensemble_of(members, tmp_path / "ensemble")
    assert ensemble.members == 2 and ensemble.meta["weights"]["dtype"] == "float16"
    inputs = inputs_for(ensemble)
    exact = {"device": "cpu", "mixed_precision": False}  # float32 on any CPU: the average to 2e-5
    each = [Predictor(m, **exact).predict(inputs).probabilities.array for m in members]
    together = Predictor(ensemble, **exact).predict(inputs)
    np.testing.assert_allclose(together.probabilities.array, (each[0] + each[1]) / 2, atol=2e-5)
    assert not np.allclose(each[0], each[1], atol=1e-3)  # the members disagree, so averaging shows


def test_float16_weights_take_half_the_space_and_load_as_float32(tmp_path):
    single = make_bundle(tmp_path / "single", "brats", features=(8, 16))
    half = half_precision_copy(single, tmp_path / "half")
    assert half.weights_path.stat().st_size < 0.55 * single.weights_path.stat().st_size
    loaded = half.load_network()
    original = single.load_network().state_dict()
    for name, tensor in loaded.state_dict().items():
        assert tensor.dtype == torch.float32
        torch.testing.assert_close(tensor, original[name], rtol=1e-3, atol=1e-6)


def test_a_tampered_ensemble_is_refused(tmp_path):
    members = [make_bundle(tmp_path / f"m{seed}", "wmh", seed=seed) for seed in (0, 1)]
    ensemble = ensemble_of(members, tmp_path / "ensemble")
    weights = bytearray(ensemble.weights_path.read_bytes())
    weights[-1] ^= 1
    ensemble.weights_path.write_bytes(bytes(weights))
    with pytest.raises(InputError, match="refusing tampered weights"):
        ensemble.load_network()


def test_activations_of_an_ensemble_are_its_first_members(tmp_path):
    members = [
        half_precision_copy(make_bundle(tmp_path / f"m{s}", "wmh", seed=s), tmp_path / f"h{s}")
        for s in (0, 1)
    ]
    ensemble = ensemble_of(members, tmp_path / "ensemble")
    inputs = inputs_for(ensemble)
    maps = []
    for bundle in (members[0], ensemble):
        predictor = Predictor(bundle, device="cpu")
        recorder = predictor.activation_recorder(["encoder.0", "decoder.0"])
        maps.append(predictor.predict(inputs, recorder=recorder).activations)
    for layer in ("encoder.0", "decoder.0"):
        np.testing.assert_allclose(maps[1][layer].features, maps[0][layer].features, atol=1e-5)


def train(config, run_dir, *extra: str) -> int:
    arguments = ["--config", str(config), "--run-dir", str(run_dir), "--device", "cpu", "--quiet"]
    return wmhseg_train([*arguments, *extra])


def export(run_dir, folder, *members: str) -> int:
    arguments = ["export", str(run_dir), "--id", "pair", "--checkpoint", "last", "--out", str(folder)]
    return wmhseg_train([*arguments, *(part for m in members for part in ("--member", m))])


@pytest.fixture
def two_seeds(tmp_path):
    """Two finished tiny runs of one recipe, trained with training seeds 0 and 1."""
    data = make_folder_dataset(tmp_path / "data", cases=3)
    config = tiny_config(tmp_path / "tiny.yaml", data, tmp_path / "runs", training={"epochs": 1})
    for seed in (0, 1):
        assert train(config, tmp_path / f"seed{seed}", "--set", f"training.seed={seed}") == 0
    return config, tmp_path / "seed0", tmp_path / "seed1"


def test_export_ships_two_runs_as_one_ensemble_that_says_so(two_seeds, tmp_path, monkeypatch, capsys):
    _, first, second = two_seeds
    assert export(first, tmp_path / "models" / "pair", str(second)) == 0
    bundle = ModelBundle(tmp_path / "models" / "pair")
    assert bundle.members == 2 and bundle.meta["weights"]["dtype"] == "float16"
    [record] = bundle.meta["training"]["members"]
    assert (record["run"], record["seed"], record["checkpoint"]) == ("seed1", 1, "last.pt")
    card = (bundle.folder / "MODEL_CARD.md").read_text()
    assert "An ensemble of 2 networks" in card and "run `seed1` (1 epochs, seed 1" in card
    # the validation table is the ensemble's own score on the run's held-out case
    ensemble = Predictor(bundle, device="cpu").network
    assert isinstance(ensemble, Ensemble)
    monkeypatch.setenv("WMHSEG_MODELS", str(tmp_path / "models"))
    capsys.readouterr()
    assert wmhseg(["models"]) == 0
    assert "[ensemble of 2]" in capsys.readouterr().out
    assert wmhseg(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["networks"] == 2


def test_a_member_of_another_architecture_or_preprocessing_is_refused_in_one_line(
    two_seeds, tmp_path, capsys
):
    config, first, _ = two_seeds
    wider = tmp_path / "wider"
    assert train(config, wider, "--set", "network.features=[4,8,8]") == 0
    finer = tmp_path / "finer"
    assert train(config, finer, "--set", "preprocessing.spacing_xyz_mm=[2.0,2.0,2.0]") == 0
    capsys.readouterr()
    for member, problem in (
        (wider, "its network differs from the run's"),
        (finer, "preprocesses differently from the run (spacing_xyz_mm)"),
    ):
        assert export(first, tmp_path / "models" / "pair", str(member)) == 2
        error = capsys.readouterr().err
        assert len(error.splitlines()) == 1 and str(member) in error and problem in error, error
        assert not (tmp_path / "models" / "pair").exists()


def test_an_ensemble_is_neither_a_member_nor_a_starting_model(two_seeds, tmp_path, capsys):
    config, first, second = two_seeds
    pair = tmp_path / "models" / "pair"
    assert export(first, pair, str(second)) == 0
    capsys.readouterr()
    assert export(first, tmp_path / "models" / "triple", str(pair)) == 2
    assert "already an ensemble" in capsys.readouterr().err
    assert train(config, tmp_path / "tuned", "--set", f"training.initial_weights={pair}") == 2
    assert "an ensemble of 2 networks; start from a bundle of one network" in capsys.readouterr().err


def test_a_bundle_of_one_network_can_be_a_member_and_is_recorded_by_its_hash(two_seeds, tmp_path):
    _, first, second = two_seeds
    single = tmp_path / "models" / "single"
    assert (
        wmhseg_train(["export", str(second), "--id", "single", "--checkpoint", "last", "--out", str(single)])
        == 0
    )
    assert export(first, tmp_path / "models" / "pair", str(single)) == 0
    bundle = ModelBundle(tmp_path / "models" / "pair")
    sha256 = ModelBundle(single).meta["weights"]["sha256"]
    assert bundle.meta["training"]["members"] == [{"bundle": "single", "version": "1.0.0", "sha256": sha256}]
    assert f"`single` 1.0.0 (sha256 {sha256[:12]}" in (bundle.folder / "MODEL_CARD.md").read_text()
