"""Synthetic data in training: patches through the Training package's dataset, mixed with a real cached
case, the mix config, and the preview gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from wmhseg_training.cache import load_or_build
from wmhseg_training.config import DEFAULTS, check_config, load_config, merge
from wmhseg_training.datasets import find_cases
from wmhseg_training.sampling import PatchSampler
from wmhseg_training.synthetic import GeneratorSettings, SyntheticFlairGenerator, phantom_anatomy
from wmhseg_training.synthetic.dataset import (
    MixedPatchSampler,
    load_anatomies,
    mix_with_synthetic,
    synthetic_patch_dataset,
    synthetic_sampler,
)
from wmhseg_training.synthetic.lesions import LesionSettings
from wmhseg_training.synthetic.preview import main as preview_main
from wmhseg_training.synthetic.preview import write_gallery
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.volume import write_volume

MIX_CONFIG = Path(__file__).resolve().parents[1] / "Training" / "configs" / "wmh_synthetic_mix.yaml"
PATCH = (16, 16, 16)


@pytest.fixture(scope="module")
def generator():
    settings = GeneratorSettings(
        spacing_xyz_mm=(2.0, 2.0, 2.0),
        shape_zyx=(76, 92, 80),
        lesions=LesionSettings(fazekas_probabilities=(0.0, 1.0, 1.0, 1.0)),
    )
    return SyntheticFlairGenerator([phantom_anatomy(2.0)], settings)


def test_synthetic_patches_come_through_the_training_dataset(generator):
    dataset = synthetic_patch_dataset(generator, PATCH, samples_per_epoch=3, seed=0, foreground_fraction=1.0)
    image, labels = dataset[0]
    assert image.shape == (1, *PATCH) and str(image.dtype) == "torch.float32"
    assert labels.shape == PATCH and str(labels.dtype) == "torch.int64"
    assert set(labels.unique().tolist()) == {0, 1}  # centred on a lesion
    again, _ = dataset[0]
    assert bool((image == again).all())
    assert not bool((image == dataset[1][0]).all())


def _real_case_folder(generator, root: Path) -> Path:
    """An open_ms-like case folder holding a generated FLAIR and its lesions, as NIfTI files."""
    sample = generator.generate(np.random.default_rng(11), fazekas=2)
    case = root / "case01"
    case.mkdir(parents=True)
    write_volume(sample.image.with_array(sample.image.array + 4.0), case / "flair.nii.gz")
    write_volume(sample.labels, case / "lesions.nii.gz")
    return root


def test_synthetic_and_real_patches_mix(generator, tmp_path):
    root = _real_case_folder(generator, tmp_path / "data")
    data = {"root": root, "layout": "folder", "label_file": "lesions", "image_files": None}
    preprocessing = {"spacing_xyz_mm": [2.0, 2.0, 2.0], "crop_margin_mm": 4.0}
    cached = load_or_build(
        find_cases(data, "wmh", ["flair"]), tmp_path / "cache", "wmh", ["flair"], preprocessing
    )
    real = PatchSampler(cached, PATCH, foreground_fraction=0.5)
    section = {"anatomies": [{"kind": "phantom", "spacing_mm": 2.0}], "generator": {"skull_probability": 0.0}}
    synthetic = synthetic_sampler(section, PATCH, 0.5, preprocessing["spacing_xyz_mm"], base=tmp_path)
    mixed = mix_with_synthetic(real, synthetic, 0.5)
    assert isinstance(mixed, MixedPatchSampler)
    rng = np.random.default_rng(0)
    sources = set()
    for _ in range(8):
        image, labels, case = mixed.sample(rng)
        assert image.shape == (1, *PATCH) and labels.shape == PATCH
        assert tuple(case.spacing_xyz) == (2.0, 2.0, 2.0)
        sources.add(case.id.split(":")[0])
    assert sources == {"case01", "synthetic"}
    assert (
        mix_with_synthetic(real, synthetic, 0.0) is real
        and mix_with_synthetic(real, synthetic, 1.0) is synthetic
    )


def test_mix_config_is_valid_for_the_trainer_and_the_generator():
    config = yaml.safe_load(MIX_CONFIG.read_text())
    check_config(merge(DEFAULTS, config))
    section = config["synthetic"]
    assert set(section) == {"fraction", "foreground_fraction", "anatomies", "generator"}
    assert 0 < section["fraction"] < 1 and section["anatomies"][0]["kind"] == "mni152"
    settings = GeneratorSettings.from_mapping(section["generator"])
    assert settings.acquisition.thickness_mm == (2.0, 8.0)


def test_anatomy_entries_are_checked():
    with pytest.raises(InputError, match="kind"):
        load_anatomies([{"kind": "atlas", "path": "x"}], base=".")
    with pytest.raises(InputError, match="unknown key"):
        load_anatomies([{"kind": "mni152", "path": "x", "spacing_mm": 1}], base=".")
    with pytest.raises(InputError, match="white_matter"):
        load_anatomies([{"kind": "segmentation", "path": "x", "classes": {1: "wm"}}], base=".")


def test_gallery_shows_samples_and_a_real_case(generator, tmp_path):
    root = _real_case_folder(generator, tmp_path / "data")
    out = write_gallery(
        generator, tmp_path / "gallery.png", 2, seed=0, real=(root / "case01" / "flair.nii.gz", None)
    )
    picture = Image.open(out)
    assert picture.mode == "RGB" and picture.width >= 3 * 80 and out.stat().st_size < 500_000
    pixels = np.asarray(picture)
    assert np.any((pixels[..., 0] == 255) & (pixels[..., 1] == 40))  # lesion outlines are drawn


def test_preview_command_line(tmp_path, capsys):
    out = tmp_path / "phantom.png"
    code = preview_main(
        ["--phantom", "--spacing", "3", "--shape", "40", "48", "44", "--n", "1", "--out", str(out)]
    )
    assert code == 0 and out.is_file() and "wrote" in capsys.readouterr().out
    assert preview_main(["--anatomy", str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")]) == 2


def test_a_typo_in_the_generator_settings_stops_the_run_before_any_data_is_read():
    config = yaml.safe_load(MIX_CONFIG.read_text())
    config["synthetic"]["generator"]["contrast"]["flair_probabilty"] = 0.5
    with pytest.raises(InputError, match="flair_probabilty"):
        check_config(merge(DEFAULTS, config))


def test_training_with_synthetic_patches_runs_end_to_end(tmp_path, capsys):
    from test_training_helpers import make_folder_dataset, tiny_config

    from wmhseg_training.cli import main as train_main

    data = make_folder_dataset(tmp_path / "data", cases=3)
    config = tiny_config(
        tmp_path / "mix.yaml",
        data,
        tmp_path / "runs",
        synthetic={"fraction": 0.5, "anatomies": [{"kind": "phantom", "spacing_mm": 4.0}]},
    )
    assert train_main(["--config", str(config), "--run-dir", str(tmp_path / "run"), "--quiet"]) == 0
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["synthetic"]["fraction"] == 0.5


def test_a_set_inside_the_generator_settings_changes_that_key_and_keeps_the_others():
    config = load_config(MIX_CONFIG, ["synthetic.generator.contrast.lesion=[1.1, 2.0]"])
    generator = config["synthetic"]["generator"]
    written = yaml.safe_load(MIX_CONFIG.read_text())["synthetic"]["generator"]
    assert generator["contrast"]["lesion"] == [1.1, 2.0]
    assert {k: v for k, v in generator["contrast"].items() if k != "lesion"} == written["contrast"]
    assert {k: v for k, v in generator.items() if k != "contrast"} == {
        k: v for k, v in written.items() if k != "contrast"
    }
