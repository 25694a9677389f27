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


def test_unknown_layer_is_a_one_line_error(models_env, flair, tmp_path, capsys):
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


@pytest.mark.parametrize("index", [-1, 10_000])
def test_a_montage_slice_outside_the_image_is_refused_before_the_prediction(
    models_env, flair, tmp_path, capsys, index
):
    montage = tmp_path / "m.png"
    code = main(
        ["activations", "--model", "test-wmh", "--flair", str(flair), "--layers", "encoder.0"]
        + ["--montage", str(montage), "--slice", str(index)]
    )
    err = capsys.readouterr().err
    slices = read_volume(flair).shape[0]
    assert code == 2 and err.strip() == (
        f"wmhseg: error: {flair}: --slice must be 0..{slices - 1}, the image's slices, got {index}"
    )
    assert not montage.exists()
