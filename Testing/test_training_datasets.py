"""Dataset readers on small layouts made here: what they find, and the one-line errors they stop on."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from test_training_helpers import (
    head_and_lesions,
    make_brats_dataset,
    make_folder_dataset,
    make_wmh2017_dataset,
    tiny_config,
    write_image,
)

from wmhseg_training.cache import load_or_build
from wmhseg_training.cli import main
from wmhseg_training.config import load_config
from wmhseg_training.datasets import check_case_files, find_cases
from wmhseg_training.splits import split_cases
from WMHSegmenterLib.engine.errors import InputError

BRATS_INPUTS = ["flair", "t1", "t1ce", "t2"]
PREPROCESSING = {"spacing_xyz_mm": [1.0, 1.0, 1.0], "crop_margin_mm": 2}


def data(root, layout, **extra):
    return {"root": str(root), "layout": layout, "label_file": "lesions", "image_files": None, **extra}


def test_wmh2017_layout_keeps_label_2_for_the_loss_to_ignore(tmp_path):
    root = make_wmh2017_dataset(tmp_path / "wmh")
    cases = find_cases(data(root, "wmh2017"), "wmh", ["flair", "t1"])
    assert [c.id for c in cases] == ["Singapore_50", "Utrecht_0"]
    assert cases[1].images["flair"] == root / "Utrecht" / "0" / "pre" / "FLAIR.nii.gz"
    assert cases[1].images["t1"].name == "T1.nii.gz" and cases[1].label.name == "wmh.nii.gz"
    for case in cases:
        check_case_files(case)
    cached = load_or_build(cases, tmp_path / "cache", "wmh", ["flair", "t1"], PREPROCESSING)
    assert cached[0].image.shape[0] == 2  # FLAIR and T1 channels
    assert set(np.unique(cached[1].labels).tolist()) == {0, 1, 2}
    assert cached[1].foreground_classes == (1,)  # label 2 is never a sampling target


def test_wmh2017_missing_t1_is_named(tmp_path):
    root = make_wmh2017_dataset(tmp_path / "wmh")
    (root / "Utrecht" / "0" / "pre" / "T1.nii.gz").unlink()
    with pytest.raises(InputError, match=r"Utrecht/0/pre: missing t1 image \(expected T1.nii.gz\)"):
        find_cases(data(root, "wmh2017"), "wmh", ["flair", "t1"])


def test_brats_reads_2018_and_2023_names_and_conventions(tmp_path):
    root = make_brats_dataset(tmp_path / "brats")
    cases = find_cases(data(root, "brats"), "brats", BRATS_INPUTS)
    assert [c.id for c in cases] == ["BraTS-GLI-00000-000", "Brats18_TCIA01_001_1"]
    new, old = cases
    assert [new.images[m].name.split("-")[-1] for m in BRATS_INPUTS] == [
        "t2f.nii.gz",
        "t1n.nii.gz",
        "t1c.nii.gz",
        "t2w.nii.gz",
    ]
    assert old.images["t1ce"].name == "Brats18_TCIA01_001_1_t1ce.nii.gz"
    cached = load_or_build(cases, tmp_path / "cache", "brats", BRATS_INPUTS, PREPROCESSING)
    # both conventions arrive as 2018 labels (ET = 4), so one set of region targets serves both
    for entry in cached:
        assert set(np.unique(entry.labels).tolist()) == {0, 1, 2, 4}
        assert entry.foreground_classes == (1, 2, 4)
        assert entry.image.shape[0] == 4


def test_brats_missing_modality_is_named(tmp_path):
    root = make_brats_dataset(tmp_path / "brats")
    (root / "BraTS-GLI-00000-000" / "BraTS-GLI-00000-000-t1c.nii.gz").unlink()
    with pytest.raises(InputError, match=r"missing t1ce image \(expected BraTS-GLI-00000-000-t1c.nii.gz\)"):
        find_cases(data(root, "brats"), "brats", BRATS_INPUTS)


@pytest.mark.parametrize(
    ("stray", "message"),
    [(5, r"not a BraTS label map: holds value\(s\) 5 "), (3, "both label 3 and label 4")],
)
def test_brats_unexpected_labels_stop_before_training(tmp_path, stray, message):
    root = make_brats_dataset(tmp_path / "brats")
    seg = root / "HGG" / "Brats18_TCIA01_001_1" / "Brats18_TCIA01_001_1_seg.nii.gz"
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(seg)))
    labels[0, 0, 0] = stray
    write_image(labels, seg)
    cases = find_cases(data(root, "brats"), "brats", BRATS_INPUTS)
    with pytest.raises(InputError, match=message):
        load_or_build(cases, tmp_path / "cache", "brats", BRATS_INPUTS, PREPROCESSING)


def test_wmh_label_outside_0_1_2_is_refused(tmp_path):
    root = make_folder_dataset(tmp_path / "ms", cases=1)
    image, labels = head_and_lesions(0)
    labels[labels == 1] = 3
    write_image(labels, root / "patient00" / "lesions.nii.gz")
    cases = find_cases(data(root, "folder"), "wmh", ["flair"])
    with pytest.raises(InputError, match=r"lesions.nii.gz: not a WMH reference: holds value\(s\) 3 "):
        load_or_build(cases, tmp_path / "cache", "wmh", ["flair"], PREPROCESSING)


def test_label_on_another_grid_is_a_grid_mismatch(tmp_path):
    root = make_folder_dataset(tmp_path / "ms", cases=1)
    _, labels = head_and_lesions(0)
    write_image(labels, root / "patient00" / "lesions.nii.gz", spacing=(1.0, 1.0, 3.0))
    (case,) = find_cases(data(root, "folder"), "wmh", ["flair"])
    with pytest.raises(
        InputError, match="case patient00: grid mismatch: label is 24x24x20 voxels of 1x1x3 mm"
    ):
        check_case_files(case)


def test_folder_layout_reads_open_ms_like_cases(tmp_path):
    root = make_folder_dataset(tmp_path / "ms", cases=2)
    cases = find_cases(data(root, "folder"), "wmh", ["flair"])
    assert [(c.id, c.images["flair"].name, c.label.name) for c in cases] == [
        ("patient00", "flair.nii.gz", "lesions.nii.gz"),
        ("patient01", "flair.nii.gz", "lesions.nii.gz"),
    ]
    (root / "patient01" / "lesions.nii.gz").unlink()
    with pytest.raises(InputError, match=r"patient01: missing label image \(expected lesions.nii.gz\)"):
        find_cases(data(root, "folder"), "wmh", ["flair"])


def test_a_config_or_case_table_that_is_not_text_is_a_one_line_error(tmp_path, capsys):
    gzipped = tmp_path / "config.yaml.gz"
    gzipped.write_bytes(b"\x1f\x8b\x08\x00binary")
    assert main(["--config", str(gzipped)]) == 2
    assert capsys.readouterr().err == f"wmhseg-train: error: {gzipped}: not a YAML text file (not UTF-8)\n"
    with pytest.raises(InputError, match="not a CSV text file"):
        find_cases(data(gzipped, "csv"), "wmh", ["flair"])


def test_csv_layout_resolves_paths_next_to_the_csv(tmp_path):
    make_folder_dataset(tmp_path / "ms", cases=2)
    table = tmp_path / "cases.csv"
    table.write_text(
        "id,flair,label\n"
        "first,ms/patient00/flair.nii.gz,ms/patient00/lesions.nii.gz\n"
        f",{tmp_path}/ms/patient01/flair.nii.gz,ms/patient01/lesions.nii.gz\n"
    )
    cases = find_cases(data(table, "csv"), "wmh", ["flair"])
    assert [c.id for c in cases] == ["first", "row0002"]
    assert cases[0].images["flair"] == tmp_path / "ms" / "patient00" / "flair.nii.gz"
    with pytest.raises(InputError, match="CSV lacks the column"):
        find_cases(data(table, "csv"), "brats", BRATS_INPUTS)
    table.write_text("flair,label\nms/patient00/flair.nii.gz,ms/nothing.nii.gz\n")
    with pytest.raises(InputError, match="line 2: label file not found"):
        find_cases(data(table, "csv"), "wmh", ["flair"])


def test_splits_are_disjoint_folds_covering_every_case():
    ids = [f"case{i}" for i in range(7)]
    validation = []
    for fold in range(3):
        training, held_out = split_cases(ids, 3, fold, seed=1)
        assert sorted(training + held_out) == ids and not set(training) & set(held_out)
        validation += held_out
    assert sorted(validation) == ids
    assert split_cases(ids, 3, "all", seed=1) == (ids, ids)


def test_config_typo_is_an_error_with_a_suggestion(tmp_path):
    config = tiny_config(tmp_path / "run.yaml", tmp_path, tmp_path, training={"epocs": 3})
    with pytest.raises(
        InputError, match=r"unknown config key training.epocs \(did you mean training.epochs\?\)"
    ):
        load_config(config)


def test_an_island_fraction_outside_zero_to_one_is_refused_before_training(tmp_path, capsys):
    config = tiny_config(tmp_path / "run.yaml", tmp_path, tmp_path, inference={"min_island_fraction": 2})
    assert main(["--config", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    assert "inference.min_island_fraction must be a number in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_an_unknown_island_measure_is_refused_before_training(tmp_path, capsys):
    config = tiny_config(tmp_path / "run.yaml", tmp_path, tmp_path, inference={"island_measure": "mean"})
    assert main(["--config", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    assert "inference.island_measure must be one of ('size', 'confidence')" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_negative_island_neck_is_refused_before_training(tmp_path, capsys):
    config = tiny_config(tmp_path / "run.yaml", tmp_path, tmp_path, inference={"island_neck_mm": -3})
    assert main(["--config", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    assert "inference.island_neck_mm must be a number >= 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_mirror_axes_outside_the_grid_are_refused_before_training(tmp_path, capsys):
    config = tiny_config(tmp_path / "run.yaml", tmp_path, tmp_path, inference={"mirror_axes": [0, 3]})
    assert main(["--config", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    assert "inference.mirror_axes must list one to three distinct axes" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_reports_bad_data_in_one_line_and_exits_2(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "ms", cases=3)
    (root / "patient02" / "flair.nii.gz").unlink()
    config = tiny_config(tmp_path / "run.yaml", root, tmp_path / "runs")
    assert main(["--config", str(config), "--device", "cpu", "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("wmhseg-train: error: ") and "patient02: missing flair image" in error
    assert len(error.splitlines()) == 1
    assert main(["--config", str(config), "--set", "training.patch_size_zyx=[15,16,16]"]) == 2
    assert "divisible by the network's total stride [4, 4, 4]" in capsys.readouterr().err
    assert (
        main(["--config", str(config), "--set", "augmentation={enabled: true, noise: {std: [-1, 0.1]}}"]) == 2
    )
    assert "augmentation section: If std is a sequence, the first value must be" in capsys.readouterr().err
