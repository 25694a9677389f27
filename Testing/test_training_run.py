"""Whole runs: train -> validate -> export -> `wmhseg segment`; kill and resume; two torchrun ranks."""

from __future__ import annotations

import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import yaml
from test_training_helpers import make_folder_dataset, tiny_config

from wmhseg_training.checkpoints import load_checkpoint, save_checkpoint
from wmhseg_training.cli import main
from wmhseg_training.metadata import network_config
from WMHSegmenterLib.engine.bundle import ModelBundle, find_bundle, sha256_of
from WMHSegmenterLib.engine.device import precision_name
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.metrics import evaluate_wmh
from WMHSegmenterLib.engine.predictor import Predictor
from WMHSegmenterLib.engine.unet import UNet3D
from WMHSegmenterLib.engine.volume import read_image, read_volume

WMHSEG = Path(sys.executable).with_name("wmhseg")
#: Columns that measure time, which no two runs share.
TIMING_COLUMNS = {"train_seconds", "seconds_per_iteration", "validation_seconds", "epoch_seconds"}

pytestmark = pytest.mark.usefixtures("one_thread")


def train_cli(config: Path, run_dir: Path, *extra: str) -> int:
    return main(["--config", str(config), "--run-dir", str(run_dir), "--device", "cpu", "--quiet", *extra])


def without_timings(history):
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in history]


def test_tiny_run_trains_validates_exports_and_segments(tmp_path, monkeypatch, capsys):
    data = make_folder_dataset(tmp_path / "data", cases=3)
    config = tiny_config(
        tmp_path / "tiny.yaml",
        data,
        tmp_path / "runs",
        augmentation={"enabled": True, "drawn_head": {"p": 0.5, "draws": 1}},
        training={"workers": 1},
    )
    run = tmp_path / "run"
    assert train_cli(config, run) == 0
    assert "epoch 2/2" in capsys.readouterr().out

    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,learning_rate") and "val_dice" in rows[0] and len(rows) == 3
    assert (run / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert yaml.safe_load((run / "config.yaml").read_text())["training"]["patch_size_zyx"] == [16, 16, 16]
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["epoch"] == 2 and len(last["history"]) == 2 and "optimizer" in last

    bundle_dir = tmp_path / "models" / "tiny-wmh"
    notes = tmp_path / "notes.md"
    export_with_notes = [
        "export",
        str(run),
        "--id",
        "tiny-wmh",
        "--out",
        str(bundle_dir),
        "--card-notes",
        str(notes),
    ]
    assert main(export_with_notes) == 2
    assert "model card notes not found" in capsys.readouterr().err and not bundle_dir.exists()
    notes.write_text("## Failure modes seen\n\nMisses lesions under 3 voxels.\n")
    assert main(export_with_notes) == 0
    meta = yaml.safe_load((bundle_dir / "model.json").read_text())
    assert meta["training"]["trained"] is True and meta["training"]["hyperparameters"]["network"][
        "features"
    ] == [4, 8, 16]
    assert meta["weights"]["sha256"] == sha256_of(bundle_dir / "weights.safetensors")
    assert meta["network"]["deep_supervision"] is False and meta["inference"]["patch_size_zyx"] == [
        16,
        16,
        16,
    ]
    assert {"code_version", "date", "hardware", "seconds", "data", "epochs"} <= set(meta["training"])
    card = (bundle_dir / "MODEL_CARD.md").read_text()
    assert "## Limitations" in card and card.rstrip().endswith("Misses lesions under 3 voxels.")
    assert meta["validation"]["precision"] == precision_name("cpu")  # bfloat16 where the CPU has it
    assert f"original grid, the network in {precision_name('cpu')}." in card
    assert meta["training"]["checkpoint"] == "best.pt" and "so the table is optimistic" in card
    assert "the bundle's differ" not in card
    monkeypatch.setenv("WMHSEG_MODELS", str(bundle_dir.parent))
    assert find_bundle("tiny-wmh").trained

    tuned = tmp_path / "models" / "tiny-wmh-tuned"
    export = ["export", str(run), "--id", "tiny-wmh-tuned", "--out", str(tuned)]
    assert main([*export, "--inference", "overlap=0.3", "--inference", "patch_size_zyx=[16,16,32]"]) == 0
    tuned_meta = yaml.safe_load((tuned / "model.json").read_text())
    assert tuned_meta["inference"]["overlap"] == 0.3 and tuned_meta["inference"]["patch_size_zyx"] == [
        16,
        16,
        32,
    ]
    assert tuned_meta["training"]["hyperparameters"]["inference"]["overlap"] == meta["inference"]["overlap"]
    assert "Scored again with the bundle's inference settings" in (tuned / "MODEL_CARD.md").read_text()
    assert main([*export, "--overwrite", "--inference", "overlapp=0.3"]) == 2
    assert main([*export, "--overwrite", "--inference", "patch_size_zyx=[16,16,30]"]) == 2
    assert "unknown config key inference.overlapp" in capsys.readouterr().err

    (validation_case,) = meta["training"]["data"]["validation_cases"]
    flair, labels = data / validation_case / "flair.nii.gz", data / validation_case / "lesions.nii.gz"
    output = tmp_path / "segmented.nii.gz"
    done = subprocess.run(
        [
            str(WMHSEG),
            "segment",
            "--model",
            str(bundle_dir),
            "--flair",
            str(flair),
            "-o",
            str(output),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    segmented, reference = sitk.ReadImage(str(output)), sitk.ReadImage(str(flair))
    assert segmented.GetSize() == reference.GetSize() and segmented.GetOrigin() == reference.GetOrigin()
    # the score training reported is the score the shipped product gets on that case
    dice = evaluate_wmh(read_volume(labels), read_volume(output))["dice"]
    assert dice == pytest.approx(meta["validation"]["metrics"]["dice"], abs=1e-9)
    # settings chosen at export are the ones its table was scored with
    tuned_prediction = Predictor(ModelBundle(tuned), device="cpu").predict({"flair": read_image(flair)})
    tuned_dice = evaluate_wmh(read_volume(labels), tuned_prediction.labels)["dice"]
    assert tuned_dice != dice and tuned_dice == pytest.approx(tuned_meta["validation"]["metrics"]["dice"])
    # without the validation data at hand the run's table stays, and the card says so
    (data / validation_case).rename(tmp_path / "elsewhere")
    assert main([*export, "--overwrite", "--inference", "overlap=0.3"]) == 0
    kept = yaml.safe_load((tuned / "model.json").read_text())["validation"]
    assert kept["metrics"] == meta["validation"]["metrics"] and kept["inference"]["overlap"] == 0.25
    assert "the bundle's differ: overlap 0.25 -> 0.3" in (tuned / "MODEL_CARD.md").read_text()
    (tmp_path / "elsewhere").rename(data / validation_case)

    assert train_cli(config, run) == 2
    assert "already holds a checkpoint: continue it with --resume" in capsys.readouterr().err
    assert train_cli(config, run, "--resume", "--set", "training.loss=jaccard") == 2
    assert "config differs from the run's (training.loss)" in capsys.readouterr().err


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path):
    data = make_folder_dataset(tmp_path / "data", cases=3)
    config = tiny_config(
        tmp_path / "tiny.yaml",
        data,
        tmp_path / "runs",
        augmentation={"enabled": True},
        training={"epochs": 8, "iterations_per_epoch": 3},
        validation={"every_epochs": 3},
    )
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert train_cli(config, straight) == 0

    command = [
        sys.executable,
        "-m",
        "wmhseg_training",
        "--config",
        str(config),
        "--run-dir",
        str(interrupted),
    ]
    process = subprocess.Popen([*command, "--device", "cpu", "--quiet"], stdout=subprocess.DEVNULL)
    checkpoint = interrupted / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    saved = load_checkpoint(checkpoint)  # whatever the moment of the kill, the file loads
    assert 1 <= saved["epoch"] < 8, "the run finished before it could be killed"

    assert train_cli(config, interrupted, "--resume") == 0
    assert not list(checkpoint.parent.glob(".*.partial"))  # a write the kill interrupted is cleared away
    resumed, uninterrupted = (load_checkpoint(r / "checkpoints" / "last.pt") for r in (interrupted, straight))
    assert resumed["epoch"] == uninterrupted["epoch"] == 8
    for name, tensor in uninterrupted["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    for index, buffers in uninterrupted["optimizer"]["state"].items():
        assert torch.equal(
            resumed["optimizer"]["state"][index]["momentum_buffer"], buffers["momentum_buffer"]
        )
    assert resumed["scheduler"] == uninterrupted["scheduler"]
    assert without_timings(resumed["history"]) == without_timings(uninterrupted["history"])
    assert (interrupted / "metrics.csv").read_text().count("\n") == 9  # header + 8 epochs, none twice


def test_a_finished_run_extended_with_more_epochs_continues_on_the_stretched_schedule(tmp_path, capsys):
    data = make_folder_dataset(tmp_path / "data", cases=3)
    config = tiny_config(tmp_path / "tiny.yaml", data, tmp_path / "runs", training={"epochs": 2})
    run = tmp_path / "run"
    assert train_cli(config, run) == 0
    finished = load_checkpoint(run / "checkpoints" / "last.pt")
    assert finished["history"][-1]["learning_rate"] == 0.0  # poly schedule: zero at the end

    assert train_cli(config, run, "--resume") == 2
    assert "has finished its 2 epochs; to extend it, resume with more" in capsys.readouterr().err
    assert train_cli(config, run, "--resume", "--set", "training.epochs=4") == 0

    extended = load_checkpoint(run / "checkpoints" / "last.pt")
    assert [row["epoch"] for row in extended["history"]] == [1, 2, 3, 4]
    assert without_timings(extended["history"][:2]) == without_timings(finished["history"])
    base_rate = extended["config"]["training"]["optimizer"]["learning_rate"]
    stretched = base_rate * (1 - 6 / 8) ** 0.9  # after 3 of 4 epochs of 2 iterations
    assert extended["history"][2]["learning_rate"] == pytest.approx(stretched)
    changed = [
        name for name, tensor in finished["model"].items() if not torch.equal(extended["model"][name], tensor)
    ]
    assert changed, "the extra epochs did not train"
    assert [session["first_epoch"] for session in extended["sessions"]] == [1, 3]

    assert (
        main(["export", str(run), "--id", "tiny", "--checkpoint", "last", "--out", str(tmp_path / "b")]) == 0
    )
    card = (tmp_path / "b" / "MODEL_CARD.md").read_text()
    assert "  - epochs 1-2: code " in card and "  - epochs 3-4: code " in card
    assert "optimistic" not in card


def test_a_run_older_than_a_config_key_resumes_as_if_it_had_the_default(tmp_path):
    data = make_folder_dataset(tmp_path / "data", cases=3)
    config = tiny_config(tmp_path / "tiny.yaml", data, tmp_path / "runs", training={"epochs": 1})
    run = tmp_path / "run"
    assert train_cli(config, run) == 0
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    del state["config"]["inference"]["largest_component_only"]  # as written before the key existed
    save_checkpoint(state, run / "checkpoints" / "last.pt")
    assert train_cli(config, run, "--resume", "--set", "training.epochs=2") == 0
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 2


def test_amp_on_the_cpu_trains_in_bfloat16_where_the_processor_has_it(tmp_path):
    data = make_folder_dataset(tmp_path / "data", cases=3)
    config = tiny_config(tmp_path / "tiny.yaml", data, tmp_path / "runs", training={"amp": True})
    assert train_cli(config, tmp_path / "run") == 0
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert saved["hardware"]["precision"] == ("bfloat16 autocast" if native else "float32")
    assert all(math.isfinite(row["train_loss"]) for row in saved["history"])
    assert all(
        tensor.dtype == torch.float32 for tensor in saved["model"].values() if tensor.is_floating_point()
    )


RANK_SCRIPT = """
import os, sys, torch
from wmhseg_training.config import load_config, resolve_paths
from wmhseg_training.loop import train
result = train(resolve_paths(load_config(sys.argv[1])), sys.argv[2], device="cpu", show_progress=False)
torch.save(result.network.state_dict(), os.path.join(sys.argv[3], "rank%s.pt" % os.environ["RANK"]))
"""


def test_two_torchrun_processes_hold_identical_parameters_after_a_step(tmp_path):
    data = make_folder_dataset(tmp_path / "data", cases=3)
    config_path = tiny_config(
        tmp_path / "tiny.yaml", data, tmp_path / "runs", training={"epochs": 1, "iterations_per_epoch": 1}
    )
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    run = tmp_path / "run"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run(
        [*launch, str(script), str(config_path), str(run), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    checkpoint = load_checkpoint(run / "checkpoints" / "last.pt")
    assert checkpoint["hardware"]["processes"] == 2 and "val_dice" in checkpoint["history"][0]
    config = checkpoint["config"]
    torch.manual_seed(config["training"]["seed"])
    initial = UNet3D(network_config(config)).state_dict()
    for name, tensor in rank0.items():
        assert torch.equal(tensor, rank1[name]), name
        assert torch.equal(tensor, checkpoint["model"][name]), name
    assert any(not torch.equal(rank0[n], initial[n]) for n in initial)  # a step was taken


@pytest.mark.parametrize("blocked", ["run folder", "cache folder"])
def test_a_file_where_a_run_writes_its_folder_is_refused_in_one_line(tmp_path, capsys, blocked):
    data = make_folder_dataset(tmp_path / "data")
    in_the_way = tmp_path / "in the way"
    in_the_way.write_text("a user's file")
    run_dir = in_the_way if blocked == "run folder" else tmp_path / "run"
    cache = {"output": {"runs_dir": str(tmp_path / "runs"), "cache_dir": str(in_the_way)}}
    config = tiny_config(
        tmp_path / "c.yaml", data, tmp_path / "runs", **(cache if blocked == "cache folder" else {})
    )
    assert train_cli(config, run_dir) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and str(in_the_way) in error and "is a file" in error
    assert in_the_way.read_text() == "a user's file"


def test_checkpoints_refuse_pickled_objects(tmp_path):
    malicious = tmp_path / "last.pt"

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    malicious.write_bytes(pickle.dumps({"format": 1, "model": Payload()}, protocol=2))
    with pytest.raises(InputError, match="not a readable checkpoint"):
        load_checkpoint(malicious)
    assert not (tmp_path / "pwned").exists()
    torch.save(
        {"format": 1, "model": {"w": torch.zeros(2)}, "epoch": 3, "history": [{"loss": np.nan}]}, malicious
    )
    assert load_checkpoint(malicious)["epoch"] == 3


@pytest.mark.parametrize(
    ("validation", "mirror_axes", "expected_overlap", "expected_mirror_axes"),
    [
        ({}, [0, 1, 2], 0.5, (0, 1, 2)),
        ({}, [2], 0.5, (2,)),
        ({"overlap": 0.25, "mirror": False}, [2], 0.25, ()),
    ],
)
def test_validation_predicts_with_the_bundles_inference_settings_unless_told_otherwise(
    tmp_path, validation, mirror_axes, expected_overlap, expected_mirror_axes
):
    from wmhseg_training.config import load_config
    from wmhseg_training.validation import validation_predictor

    path = tiny_config(
        tmp_path / "run.yaml",
        tmp_path / "data",
        tmp_path / "runs",
        validation={"every_epochs": 1, **validation},
        inference={"overlap": 0.5, "mirror": True, "mirror_axes": mirror_axes},
    )
    config = load_config(path)
    network = UNet3D(network_config(config))
    predictor = validation_predictor(network, config, torch.device("cpu"), tmp_path)
    assert predictor.overlap == expected_overlap
    assert predictor.mirror_axes == expected_mirror_axes


def test_model_json_records_data_beside_the_repository_relative_to_it():
    from wmhseg_training.config import REPOSITORY_ROOT
    from wmhseg_training.export import recorded_path

    beside = REPOSITORY_ROOT.parent / "shared" / "data" / "open_ms"
    assert recorded_path(str(beside)) == str(Path("..") / "shared" / "data" / "open_ms")
    assert recorded_path(str(REPOSITORY_ROOT / "data")) == "data"
    assert recorded_path("brats-glioma") == "brats-glioma"  # a bundle id is not a path
    if REPOSITORY_ROOT.parent != Path(REPOSITORY_ROOT.anchor):
        elsewhere = Path(REPOSITORY_ROOT.anchor) / "elsewhere-than-the-workspace" / "data"
        assert recorded_path(str(elsewhere)) == str(elsewhere)


def test_a_run_keeping_the_largest_island_by_its_older_name_exports_without_scoring_again(tmp_path):
    data = make_folder_dataset(tmp_path / "data", cases=3)
    config = tiny_config(
        tmp_path / "tiny.yaml", data, tmp_path / "runs", inference={"largest_component_only": True}
    )
    assert train_cli(config, tmp_path / "run") == 0
    bundle = tmp_path / "bundle"
    assert main(["export", str(tmp_path / "run"), "--id", "tiny", "--out", str(bundle)]) == 0
    meta = yaml.safe_load((bundle / "model.json").read_text())
    assert meta["inference"]["min_island_fraction"] == 1.0
    assert meta["validation"]["inference"] == meta["inference"]  # the run scored what the bundle does
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "Scored again" not in card and "the bundle's differ" not in card
