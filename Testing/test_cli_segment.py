"""`wmhseg segment` and `wmhseg models` as a user meets them: outputs, progress, and one-line errors."""

from __future__ import annotations

import csv
import gzip
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from conftest import blob_volume, oblique_geometry
from WMHSegmenterLib.cli.main import main
from WMHSegmenterLib.engine.volume import Geometry, Volume, read_volume, write_volume


@pytest.fixture
def flair(tmp_path):
    return write_volume(blob_volume(geometry=oblique_geometry()), tmp_path / "case1_flair.nii.gz")


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wmhseg: error: "), err
    for fragment in fragments:
        assert str(fragment) in lines[0]


def test_segment_writes_mask_probabilities_statistics_overlay_and_removed_regions_on_the_input_grid(
    models_env, flair, tmp_path, capsys
):
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, _ = run_cli(
        capsys,
        "segment",
        "--model",
        "test-wmh",
        "--flair",
        flair,
        "-o",
        out / "mask.nrrd",
        "--probabilities",
        out / "p.nii.gz",
        "--stats",
        out / "s.csv",
        "--overlay",
        out / "o.png",
        "--removed",
        out / "r.nii.gz",
    )
    assert code == 0, stdout
    mask, image = read_volume(out / "mask.nrrd"), read_volume(flair)
    assert mask.shape == image.shape and mask.geometry.matches(image.geometry, tolerance=1e-6)
    assert read_volume(out / "p.nii.gz").geometry.matches(image.geometry, tolerance=1e-6)
    removed = read_volume(out / "r.nii.gz")
    assert removed.geometry.matches(image.geometry, tolerance=1e-6) and not (removed.array & mask.array).any()
    assert (out / "s.csv").read_text().startswith("label,name,voxels,volume_ml,components")
    assert (out / "o.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == ["mask.nrrd", "o.png", "p.nii.gz", "r.nii.gz", "s.csv"]


def test_ras_nifti_written_by_another_tool_gets_a_mask_with_the_same_affine(models_env, tmp_path, capsys):
    nibabel = pytest.importorskip("nibabel")
    rotation = np.array(oblique_geometry().direction).reshape(3, 3) @ np.diag(
        [-1.0, 1.0, 1.0]
    )  # RAS, flipped x
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = rotation @ np.diag([0.9, 0.9, 4.0]), (90.0, -120.0, -60.0)
    data = blob_volume(shape=(12, 30, 40)).array.transpose(2, 1, 0)
    nibabel.save(nibabel.Nifti1Image(data, affine), tmp_path / "ras_flair.nii.gz")
    code, _, err = run_cli(
        capsys,
        "segment",
        "--model",
        "test-wmh",
        "--flair",
        tmp_path / "ras_flair.nii.gz",
        "-o",
        tmp_path / "mask.nii.gz",
    )
    assert code == 0, err
    source, mask = nibabel.load(tmp_path / "ras_flair.nii.gz"), nibabel.load(tmp_path / "mask.nii.gz")
    assert mask.shape == source.shape
    np.testing.assert_allclose(mask.affine, source.affine, atol=1e-5)


def test_brats_labels_and_their_statistics_can_be_written_in_the_2023_convention(
    models_env, tmp_path, capsys
):
    volume = blob_volume(shape=(16, 32, 32))
    paths = {m: write_volume(volume, tmp_path / f"c_{m}.nii.gz") for m in ("flair", "t1", "t1ce", "t2")}
    flags = [x for m, p in paths.items() for x in (f"--{m}", p)]
    code, _, err = run_cli(
        capsys,
        "segment",
        "--model",
        "test-brats",
        *flags,
        "-o",
        tmp_path / "seg.nii.gz",
        "--stats",
        tmp_path / "stats.csv",
        "--labels",
        "brats2023",
    )
    assert code == 0, err
    labels = read_volume(tmp_path / "seg.nii.gz").array
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    with open(tmp_path / "stats.csv") as handle:
        rows = {row["label"]: int(row["voxels"]) for row in csv.DictReader(handle)}
    assert rows == {
        "1": np.count_nonzero(labels == 1),
        "2": np.count_nonzero(labels == 2),
        "3": np.count_nonzero(labels == 3),
        "1+2+3": np.count_nonzero(labels),
        "1+3": np.count_nonzero(np.isin(labels, (1, 3))),
    }


def test_json_progress_is_one_json_object_per_line_and_monotonic(models_env, flair, tmp_path, capsys):
    code, stdout, _ = run_cli(
        capsys,
        "segment",
        "--model",
        "test-wmh",
        "--flair",
        flair,
        "-o",
        tmp_path / "m.nii.gz",
        "--json-progress",
    )
    assert code == 0
    events = [json.loads(line) for line in stdout.splitlines()]
    fractions = [e["fraction"] for e in events if e["event"] == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert events[-1] == {**events[-1], "event": "case", "status": "done"}


def test_models_json_lists_id_task_inputs_and_version(models_env, capsys):
    code, stdout, _ = run_cli(capsys, "models", "--json")
    listed = {m["id"]: m for m in json.loads(stdout)}
    assert code == 0
    assert listed["test-brats"]["inputs"] == ["flair", "t1", "t1ce", "t2"]
    assert listed["test-wmh"]["task"] == "wmh" and listed["test-wmh"]["version"] == "0.0.0"
    assert listed["test-wmh"]["trained"] is False


def test_models_and_demo_say_plainly_when_no_model_is_installed(tmp_path, monkeypatch, capsys):
    import WMHSegmenterLib.engine.bundle as bundle

    monkeypatch.setattr(bundle, "BUNDLED_MODELS", tmp_path / "empty")
    monkeypatch.delenv("WMHSEG_MODELS", raising=False)
    assert run_cli(capsys, "models")[1].startswith("No trained model is installed yet.")
    code, stdout, _ = run_cli(capsys, "demo", "--out", tmp_path / "demo")
    assert code == 0 and "No trained model is installed yet." in stdout
    assert not (tmp_path / "demo").exists()


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _two_d(path):
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((20, 20), np.float32)), str(path))
    return path


def _four_d(path):
    frame = sitk.GetImageFromArray(np.ones((8, 20, 20), np.float32))
    sitk.WriteImage(sitk.JoinSeries([frame] * 3), str(path))
    return path


def _vector(path):
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((8, 20, 20, 3), np.float32), isVector=True), str(path))
    return path


def _zeros(path):
    return write_volume(Volume(np.zeros((8, 20, 20), np.float32), Geometry.identity()), path)


def _mostly_nan(path):
    array = blob_volume().array
    array[:, :, :30] = np.nan
    return write_volume(Volume(array, Geometry.identity()), path)


def _zero_spacing(path):
    write_volume(blob_volume(), path.with_suffix(""))  # .nii, uncompressed, then patch pixdim[1]
    header = bytearray(path.with_suffix("").read_bytes())
    header[80:84] = struct.pack("<f", 0.0)
    path.write_bytes(gzip.compress(bytes(header)))
    return path


def _spacing_in_metres(path):
    """A 1 mm scan whose header says 0.001: its spacing read in other units."""
    return write_volume(Volume(blob_volume().array, Geometry.identity(spacing=(0.001,) * 3)), path)


def _field_of_view_of_a_house(path):
    """A scan whose header says 50 mm voxels: resampled to a model's grid it would not fit in memory."""
    return write_volume(Volume(blob_volume().array, Geometry.identity(spacing=(50.0,) * 3)), path)


def _not_an_image(path):
    path.write_text("this is not an image")
    return path


@pytest.mark.parametrize(
    "make_input,problem",
    [
        (lambda p: p, "file not found"),
        (_not_an_image, "not a readable image"),
        (_truncated, "not a readable image"),
        (_two_d, "is 2D"),
        (_four_d, "4D with 3 volumes"),
        (_vector, "3 components per voxel"),
        (_zeros, "all zeros"),
        (_mostly_nan, "NaN or infinite"),
        (_zero_spacing, "spacing must be positive"),
        (_spacing_in_metres, "finer than any MRI's (0.05 mm): check the units"),
        (_field_of_view_of_a_house, "larger than a head's (at most 600 mm along an axis)"),
    ],
)
def test_bad_input_file_gets_one_line_naming_it_and_leaves_no_output(
    models_env, tmp_path, capsys, make_input, problem
):
    bad = tmp_path / "bad_flair.nii.gz"
    if make_input is _truncated:
        write_volume(blob_volume(shape=(30, 60, 60)), bad)
    bad = make_input(bad)
    code, _, err = run_cli(
        capsys, "segment", "--model", "test-wmh", "--flair", bad, "-o", tmp_path / "m.nii.gz"
    )
    assert_one_line_error(code, err, bad.name, problem)
    assert not (tmp_path / "m.nii.gz").exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_few_nan_voxels_are_zeroed_with_a_warning_and_segmented(models_env, tmp_path, capsys):
    array = blob_volume().array
    array[0, 0, :4] = np.nan
    flair = write_volume(Volume(array, Geometry.identity()), tmp_path / "f.nii.gz")
    code, _, err = run_cli(
        capsys, "segment", "--model", "test-wmh", "--flair", flair, "-o", tmp_path / "m.nii.gz"
    )
    assert code == 0 and "wmhseg: warning:" in err and "4 NaN/infinite voxels set to 0" in err


@pytest.mark.parametrize(
    "extra,problem",
    [
        (["--t1", "FLAIR"], "does not take --t1"),
        (["--device", "cuda"], "'cuda' was requested but is not available"),
        (["--tile-batch", "0"], "tile batch must be at least 1, got 0"),
        (["--overlap", "1"], "overlap must be in [0, 1), got 1.0"),
    ],
)
def test_wrong_modality_device_or_tiling_is_refused(models_env, flair, tmp_path, capsys, extra, problem):
    if "cuda" in extra:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    extra = [str(flair) if x == "FLAIR" else x for x in extra]
    code, _, err = run_cli(
        capsys, "segment", "--model", "test-wmh", "--flair", flair, *extra, "-o", tmp_path / "m.nii.gz"
    )
    assert_one_line_error(code, err, problem)
    assert not (tmp_path / "m.nii.gz").exists()


def test_missing_modality_for_the_model_is_named(models_env, flair, tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "segment", "--model", "test-brats", "--flair", flair, "-o", tmp_path / "m.nii.gz"
    )
    assert_one_line_error(code, err, "test-brats needs --t1, --t1ce, --t2")


def test_modalities_that_do_not_overlap_are_refused_by_name(models_env, tmp_path, capsys):
    near = blob_volume(shape=(16, 32, 32))
    far = Volume(near.array, Geometry.identity(origin=(0.0, 400.0, 0.0)))
    paths = {m: write_volume(near, tmp_path / f"c_{m}.nii.gz") for m in ("flair", "t1", "t1ce")}
    paths["t2"] = write_volume(far, tmp_path / "c_t2.nii.gz")
    flags = [x for m, p in paths.items() for x in (f"--{m}", p)]
    code, _, err = run_cli(capsys, "segment", "--model", "test-brats", *flags, "-o", tmp_path / "seg.nii.gz")
    assert_one_line_error(code, err, "c_t2.nii.gz", "does not overlap")
    assert not (tmp_path / "seg.nii.gz").exists()


def test_one_file_given_for_two_modalities_is_refused(models_env, tmp_path, capsys):
    volume = blob_volume(shape=(16, 32, 32))
    paths = {m: write_volume(volume, tmp_path / f"c_{m}.nii.gz") for m in ("flair", "t1", "t1ce")}
    paths["t2"] = tmp_path / "." / "c_flair.nii.gz"  # the FLAIR again, spelled differently
    flags = [x for m, p in paths.items() for x in (f"--{m}", p)]
    code, _, err = run_cli(capsys, "segment", "--model", "test-brats", *flags, "-o", tmp_path / "seg.nii.gz")
    assert_one_line_error(code, err, "c_flair.nii.gz", "given for both --flair and --t2")
    assert not (tmp_path / "seg.nii.gz").exists()


def test_unknown_model_is_refused(models_env, flair, tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "segment", "--model", "nope", "--flair", flair, "-o", tmp_path / "m.nii.gz"
    )
    assert_one_line_error(code, err, "nope: unknown model", "test-wmh")


def test_tampered_weights_are_refused(models_env, flair, tmp_path, capsys):
    weights = models_env / "test-wmh" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    code, _, err = run_cli(
        capsys, "segment", "--model", "test-wmh", "--flair", flair, "-o", tmp_path / "m.nii.gz"
    )
    assert_one_line_error(code, err, "weights.safetensors", "does not match model.json")
    assert not (tmp_path / "m.nii.gz").exists()


def test_existing_output_is_not_overwritten_without_overwrite(models_env, flair, tmp_path, capsys):
    target = tmp_path / "m.nii.gz"
    target.write_bytes(b"a radiologist's corrected mask")
    code, _, err = run_cli(capsys, "segment", "--model", "test-wmh", "--flair", flair, "-o", target)
    assert_one_line_error(code, err, "m.nii.gz", "output exists")
    assert target.read_bytes() == b"a radiologist's corrected mask"
    code, _, _ = run_cli(
        capsys, "segment", "--model", "test-wmh", "--flair", flair, "-o", target, "--overwrite"
    )
    assert code == 0 and read_volume(target).shape == read_volume(flair).shape


def test_a_folder_without_dicom_is_one_line_on_the_terminal_itk_included(models_env, tmp_path, capfd):
    empty = tmp_path / "series"
    empty.mkdir()
    code = main(["segment", "--model", "test-wmh", "--flair", str(empty), "-o", str(tmp_path / "m.nii.gz")])
    assert_one_line_error(code, capfd.readouterr().err, empty, "folder holds no DICOM series")


@pytest.mark.parametrize("spelling", ["same path", "another spelling", "symbolic link"])
def test_an_output_naming_the_input_scan_is_refused_even_with_overwrite(
    models_env, flair, tmp_path, capsys, spelling
):
    scan = flair.read_bytes()
    target = flair
    if spelling == "another spelling":
        (tmp_path / "sub").mkdir()
        target = tmp_path / "sub" / ".." / flair.name
    if spelling == "symbolic link":
        target = tmp_path / "link.nii.gz"
        target.symlink_to(flair)
    code, _, err = run_cli(
        capsys, "segment", "--model", "test-wmh", "--flair", flair, "-o", target, "--overwrite"
    )
    assert_one_line_error(code, err, target, "output is the flair input")
    assert flair.read_bytes() == scan


def test_one_path_given_for_two_outputs_is_refused_before_work(models_env, flair, tmp_path, capsys):
    target = tmp_path / "m.nii.gz"
    code, _, err = run_cli(
        capsys, "segment", "--model", "test-wmh", "--flair", flair, "-o", target, "--probabilities", target
    )
    assert_one_line_error(code, err, target, "given as two outputs")
    assert not target.exists()


@pytest.mark.parametrize(
    "folder,problem", [("/proc/1", "not writable"), ("missing-folder", "does not exist")]
)
def test_output_folder_that_cannot_be_written_is_refused_before_work(
    models_env, flair, tmp_path, capsys, folder, problem
):
    target = (
        tmp_path / folder if not folder.startswith("/") else __import__("pathlib").Path(folder)
    ) / "m.nii.gz"
    code, _, err = run_cli(capsys, "segment", "--model", "test-wmh", "--flair", flair, "-o", target)
    assert_one_line_error(code, err, problem)


@pytest.mark.parametrize(
    "command",
    [
        ["demo", "--out", "{folder}"],
        ["segment", "--model", "test-wmh", "--input-dir", "{cases}", "--output-dir", "{folder}"],
        [
            "segment",
            "--model",
            "test-wmh",
            "--flair",
            "{flair}",
            "-o",
            "{cases}/m.nii.gz",
            "--activations",
            "{folder}",
            "--layers",
            "encoder.0",
        ],
        [
            "activations",
            "--model",
            "test-wmh",
            "--flair",
            "{flair}",
            "--layers",
            "encoder.0",
            "--out",
            "{folder}",
        ],
    ],
    ids=["demo", "batch", "segment-activations", "activations"],
)
def test_an_output_folder_blocked_by_a_file_is_refused_in_one_line_before_work(
    models_env, flair, tmp_path, capsys, command
):
    blocked = tmp_path / "results"
    blocked.write_text("a file where the output folder should go")
    values = {"folder": blocked, "cases": flair.parent, "flair": flair}
    code, _, err = run_cli(capsys, *(part.format(**values) for part in command))
    assert_one_line_error(code, err, blocked, "output folder is a file")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([blocked.name, flair.name])


def test_batch_segments_every_case_keeps_going_past_a_bad_one_and_exits_2(models_env, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    for case in ("a", "b"):
        (data / case).mkdir(parents=True)
        write_volume(blob_volume(seed=ord(case)), data / case / f"{case}_flair.nii.gz")
    (data / "c").mkdir()
    (data / "c" / "c_flair.nii.gz").write_text("broken")
    code, stdout, _ = run_cli(
        capsys, "segment", "--model", "test-wmh", "--input-dir", data, "--output-dir", out
    )
    assert code == 2
    assert sorted(p.name for p in out.iterdir()) == ["a_seg.nii.gz", "b_seg.nii.gz"]
    assert "2 segmented, 1 failed" in stdout and "not a readable image" in stdout


def test_a_batch_that_finds_no_case_leaves_no_output_folder(models_env, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out" / "run1"
    data.mkdir()
    (data / "notes.txt").write_text("no scans here")
    code, _, err = run_cli(capsys, "segment", "--model", "test-wmh", "--input-dir", data, "--output-dir", out)
    assert code == 2 and "no cases found" in err
    assert not (tmp_path / "out").exists()


def test_a_quiet_batch_still_names_each_failed_case_in_one_line(models_env, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    (data / "a").mkdir(parents=True)
    write_volume(blob_volume(seed=1), data / "a" / "a_flair.nii.gz")
    (data / "c").mkdir()
    (data / "c" / "c_flair.nii.gz").write_text("broken")
    code, stdout, err = run_cli(
        capsys, "segment", "--model", "test-wmh", "--input-dir", data, "--output-dir", out, "--quiet"
    )
    assert code == 2 and stdout == ""
    assert err.splitlines() == [
        f"wmhseg: error: {data / 'c' / 'c_flair.nii.gz'}: not a readable image (corrupt or truncated file)"
    ]
    assert sorted(p.name for p in out.iterdir()) == ["a_seg.nii.gz"]


def test_a_broken_bundle_among_the_models_is_named_in_a_warning_and_hides_no_other(
    models_env, flair, tmp_path, capsys
):
    (models_env / "half-copied").mkdir()
    (models_env / "half-copied" / "model.json").write_text("{not json")
    code, stdout, err = run_cli(capsys, "models")
    assert code == 0 and "test-wmh" in stdout and "test-brats" in stdout
    assert err.splitlines() == [
        f"wmhseg: warning: skipped a model bundle: {models_env / 'half-copied' / 'model.json'}: "
        "not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
    ]
    code, _, err = run_cli(
        capsys, "segment", "--model", "test-wmh", "--flair", flair, "-o", tmp_path / "seg.nii.gz"
    )
    assert code == 0 and (tmp_path / "seg.nii.gz").is_file()
    assert "skipped a model bundle" in err


def test_batch_statistics_and_lesions_are_one_table_each_of_every_segmented_case(
    models_env, tmp_path, capsys
):
    data, out = tmp_path / "data", tmp_path / "out"
    for case in ("a", "b", "c"):
        (data / case).mkdir(parents=True)
        for modality in ("flair", "t1", "t1ce", "t2"):
            volume = blob_volume(shape=(16, 32, 32), seed=ord(case))
            write_volume(volume, data / case / f"{case}_{modality}.nii.gz")
    (data / "c" / "c_t2.nii.gz").write_text("broken")
    command = ["segment", "--model", "test-brats", "--input-dir", data, "--output-dir", out]
    tables = ["--stats", tmp_path / "volumes.csv", "--lesions", tmp_path / "lesions.csv"]
    code, stdout, _ = run_cli(capsys, *command, *tables, "--labels", "brats2023")
    assert code == 2 and "2 segmented, 1 failed" in stdout and "lesions of the 2 segmented" in stdout
    with open(tmp_path / "volumes.csv") as handle:
        rows = list(csv.DictReader(handle))
    with open(tmp_path / "lesions.csv") as handle:
        lesions = list(csv.DictReader(handle))
    assert [row["case"] for row in rows] == ["a"] * 6 + ["b"] * 6
    for case in ("a", "b"):
        labels = read_volume(out / f"{case}_seg.nii.gz").array
        voxels = {row["name"]: int(row["voxels"]) for row in rows if row["case"] == case}
        assert voxels["Enhancing tumor"] == np.count_nonzero(labels == 3)
        assert voxels["Whole tumor (WT)"] == np.count_nonzero(labels)
        listed = [row for row in lesions if row["case"] == case]
        count = ndimage.label(labels > 0, structure=np.ones((3, 3, 3)))[1]
        assert len(listed) == count >= 1 and [int(row["number"]) for row in listed] == list(
            range(1, count + 1)
        )
        assert sum(int(row["voxels"]) for row in listed) == np.count_nonzero(labels)


def test_batch_refuses_options_that_name_one_cases_file(models_env, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_volume(blob_volume(), data / "a_flair.nii.gz")
    batch = ["segment", "--model", "test-wmh", "--input-dir", data, "--output-dir", tmp_path / "out"]
    for option in (
        ["--probabilities", tmp_path / "p.nii.gz"],
        ["--removed", tmp_path / "r.nii.gz"],
        ["--flair", data / "a_flair.nii.gz"],
    ):
        code, _, err = run_cli(capsys, *batch, *option)
        assert_one_line_error(code, err, f"{option[0]} is for one case")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_batch_under_torchrun_takes_only_this_ranks_share(models_env, tmp_path, capsys, monkeypatch):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    for case in ("a", "b", "c"):
        write_volume(blob_volume(seed=ord(case)), data / f"{case}_flair.nii.gz")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, stdout, _ = run_cli(
        capsys,
        "segment",
        "--model",
        "test-wmh",
        "--input-dir",
        data,
        "--output-dir",
        out,
        "--stats",
        tmp_path / "s.csv",
    )
    assert code == 0
    assert [p.name for p in out.iterdir()] == ["b_seg.nii.gz"]
    assert "(rank 1 of 2)" in stdout
    assert not (tmp_path / "s.csv").exists()  # each process writes its own share's table
    assert {line.split(",")[0] for line in (tmp_path / "s.rank1-of-2.csv").read_text().splitlines()} == {
        "case",
        "b",
    }


def test_batch_finds_brats_cases_by_their_file_name_patterns(models_env, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    volume = blob_volume(shape=(16, 32, 32))
    for case, names in {
        "Brats18_X_1": ("Brats18_X_1_flair", "Brats18_X_1_t1", "Brats18_X_1_t1ce", "Brats18_X_1_t2"),
        "BraTS-GLI-00001-000": tuple(f"BraTS-GLI-00001-000-{name}" for name in ("t2f", "t1n", "t1c", "t2w")),
        "patient3": ("FLAIR", "T1", "T1CE", "T2"),  # a folder per case, files named by modality only
    }.items():
        (data / case).mkdir(parents=True)
        for name in names:
            write_volume(volume, data / case / f"{name}.nii.gz")
    code, stdout, _ = run_cli(
        capsys, "segment", "--model", "test-brats", "--input-dir", data, "--output-dir", out
    )
    assert code == 0, stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "BraTS-GLI-00001-000_seg.nii.gz",
        "Brats18_X_1_seg.nii.gz",
        "patient3_seg.nii.gz",
    ]


def test_command_line_prints_no_traceback_for_bad_input(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "WMHSegmenterLib.cli.main",
            "segment",
            "--model",
            "missing-model",
            "--flair",
            str(tmp_path / "none.nii.gz"),
            "-o",
            str(tmp_path / "m.nii.gz"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "WMHSEG_MODELS": str(tmp_path)},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "Traceback" not in result.stderr
