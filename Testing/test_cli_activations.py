"""`wmhseg activations` and `wmhseg segment --activations` as a user runs them."""

from __future__ import annotations

import pytest

from conftest import blob_volume, oblique_geometry
from WMHSegmenterLib.cli.main import main
from WMHSegmenterLib.engine.volume import read_volume, write_volume


@pytest.fixture
def flair(tmp_path):
    return write_volume(blob_volume(shape=(12, 40, 36), geometry=oblique_geometry()), tmp_path / "f.nii.gz")


def test_list_layers_prints_names_channels_and_stride(models_env, capsys):
    assert main(["activations", "--model", "test-wmh", "--list-layers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["encoder.0", "4", "(1,", "1,", "1)"]
    assert [line.split()[0] for line in lines[1:]] == ["encoder.0", "bottleneck", "decoder.0"]


def test_maps_and_montage_are_written_on_the_input_grid(models_env, flair, tmp_path, capsys):
    out = tmp_path / "maps"
    code = main(
        [
            "activations",
            "--model",
            "test-wmh",
            "--flair",
            str(flair),
            "--layers",
            "encoder.0,bottleneck,decoder.0",
            "--view",
            "channel:1,gradcam:WMH",
            "--out",
            str(out),
            "--montage",
            str(tmp_path / "m.png"),
            "--quiet",
        ]
    )
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        f"{layer}_{view}.nii.gz"
        for layer in ("encoder.0", "bottleneck", "decoder.0")
        for view in ("channel-1", "gradcam-WMH")
    )
    source = read_volume(flair)
    for path in out.iterdir():
        assert read_volume(path).geometry.matches(source.geometry, tolerance=1e-6)
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"


def test_segment_keeps_activations_alongside_the_mask(models_env, flair, tmp_path, capsys):
    code = main(
        [
            "segment",
            "--model",
            "test-wmh",
            "--flair",
            str(flair),
            "-o",
            str(tmp_path / "mask.nii.gz"),
            "--activations",
            str(tmp_path / "act"),
            "--layers",
            "bottleneck",
            "--grid",
            "layer",
            "--quiet",
        ]
    )
    assert code == 0
    layer_map = read_volume(tmp_path / "act" / "bottleneck_mean.nii.gz")
    assert layer_map.geometry.spacing == pytest.approx(
        tuple(2 * s for s in read_volume(flair).geometry.spacing)
    )


def test_unknown_layer_is_a_one_line_error_and_leaves_no_output_folder(models_env, flair, tmp_path, capsys):
    code = main(
        [
            "activations",
            "--model",
            "test-wmh",
            "--flair",
            str(flair),
            "--layers",
            "encoder.7",
            "--out",
            str(tmp_path / "maps"),
        ]
    )
    err = capsys.readouterr().err
    assert (
        code == 2
        and err.startswith("wmhseg: error: unknown layer(s) encoder.7")
        and len(err.splitlines()) == 1
    )
    assert not (tmp_path / "maps").exists()


def test_segment_with_an_unknown_layer_writes_neither_mask_nor_activation_folder(
    models_env, flair, tmp_path, capsys
):
    mask, folder = tmp_path / "mask.nii.gz", tmp_path / "act" / "case1"
    code = main(
        ["segment", "--model", "test-wmh", "--flair", str(flair), "-o", str(mask)]
        + ["--activations", str(folder), "--layers", "encoder.7", "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("wmhseg: error: unknown layer(s) encoder.7")
    assert not mask.exists() and not (tmp_path / "act").exists()


def test_an_activation_folder_below_a_file_is_refused_before_any_work(models_env, flair, tmp_path, capsys):
    code = main(
        ["activations", "--model", "test-wmh", "--flair", str(flair), "--layers", "encoder.0"]
        + ["--out", str(flair / "maps")]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1
    assert (
        err.strip() == f"wmhseg: error: {flair / 'maps'}: output folder cannot be created ({flair} is a file)"
    )


@pytest.mark.parametrize("height_mm", [-10_000.0, 10_000.0])
def test_a_montage_plane_outside_the_image_is_refused_before_the_prediction(
    models_env, flair, tmp_path, capsys, height_mm
):
    montage = tmp_path / "m.png"
    code = main(
        ["activations", "--model", "test-wmh", "--flair", str(flair), "--layers", "encoder.0"]
        + ["--montage", str(montage), "--plane-mm", str(height_mm)]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"wmhseg: error: {flair}: --plane-mm: the image's axial planes lie from ")
    assert err.strip().endswith(f"mm, not at {height_mm:g}")
    assert not montage.exists()


def test_montages_at_two_heights_show_two_planes(models_env, flair, tmp_path):
    pictures = []
    for height_mm in (20.0, 35.0):
        montage = tmp_path / f"m{height_mm:g}.png"
        arguments = ["activations", "--model", "test-wmh", "--flair", str(flair), "--layers", "encoder.0"]
        assert main(arguments + ["--montage", str(montage), "--plane-mm", str(height_mm), "--quiet"]) == 0
        pictures.append(montage.read_bytes())
    assert pictures[0] != pictures[1]
