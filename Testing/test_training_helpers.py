"""Small synthetic data sets in the real layouts, and tiny run configs, for the training tests.

Volumes are a bright ellipsoid "head" with brighter lesion blobs; small enough that a U-Net with
(4, 8, 16) features trains a few steps and validates in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

SHAPE = (20, 24, 24)  # (z, y, x)
SPACING = (1.0, 1.0, 1.0)


def write_image(array: np.ndarray, path: Path, spacing=SPACING, origin=(0.0, 0.0, 0.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))
    return path


def head_and_lesions(seed: int, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """A float32 FLAIR-like image and its uint8 lesion mask (1), lesions where the image is bright."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    centre = np.array(shape) / 2
    head = ((z - centre[0]) / (shape[0] * 0.45)) ** 2 + ((y - centre[1]) / (shape[1] * 0.45)) ** 2
    head = head + ((x - centre[2]) / (shape[2] * 0.45)) ** 2 <= 1
    labels = np.zeros(shape, dtype=np.uint8)
    for _ in range(3):
        c = rng.integers([6, 7, 7], [shape[0] - 6, shape[1] - 7, shape[2] - 7])
        labels[c[0] - 1 : c[0] + 2, c[1] - 2 : c[1] + 2, c[2] - 2 : c[2] + 2] = 1
    image = np.where(head, 100.0, 0.0) + rng.normal(0, 5, shape) * head + 120.0 * labels
    return image.astype(np.float32), labels


def make_folder_dataset(root: Path, cases: int = 3) -> Path:
    """open_ms-like: <case>/flair.nii.gz and <case>/lesions.nii.gz."""
    for index in range(cases):
        image, labels = head_and_lesions(index)
        write_image(image, root / f"patient{index:02d}" / "flair.nii.gz")
        write_image(labels, root / f"patient{index:02d}" / "lesions.nii.gz")
    return root


def make_wmh2017_dataset(root: Path) -> Path:
    """<site>/<id>/pre/{FLAIR,T1}.nii.gz and <site>/<id>/wmh.nii.gz with label 2 ("other pathology")."""
    for site, case, seed in (("Utrecht", "0", 0), ("Singapore", "50", 1)):
        image, labels = head_and_lesions(seed)
        labels[2:4, 10:12, 10:12] = 2
        write_image(image, root / site / case / "pre" / "FLAIR.nii.gz")
        write_image(image * 0.5, root / site / case / "pre" / "T1.nii.gz")
        write_image(
            labels.astype(np.float32), root / site / case / "wmh.nii.gz"
        )  # the challenge's files are float
    return root


def brats_labels(seed: int, enhancing: int) -> tuple[np.ndarray, np.ndarray]:
    """An image and nested tumor labels: edema 2 around a core 1 around enhancing ``enhancing``."""
    image, lesions = head_and_lesions(seed)
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[6:14, 7:17, 7:17] = 2
    labels[8:12, 9:15, 9:15] = 1
    labels[9:11, 10:14, 10:14] = enhancing
    return image + 50.0 * (labels > 0), labels


def make_brats_dataset(root: Path) -> Path:
    """One case with 2018 names (ET = 4) under HGG/ as in that release, one with 2023 names (ET = 3)."""
    image, labels = brats_labels(0, enhancing=4)
    case = "Brats18_TCIA01_001_1"
    for suffix, scale in (("flair", 1.0), ("t1", 0.6), ("t1ce", 0.8), ("t2", 1.2)):
        write_image(image * scale, root / "HGG" / case / f"{case}_{suffix}.nii.gz")
    write_image(labels, root / "HGG" / case / f"{case}_seg.nii.gz")
    image, labels = brats_labels(1, enhancing=3)
    case = "BraTS-GLI-00000-000"
    for suffix, scale in (("t2f", 1.0), ("t1n", 0.6), ("t1c", 0.8), ("t2w", 1.2)):
        write_image(image * scale, root / case / f"{case}-{suffix}.nii.gz")
    write_image(labels, root / case / f"{case}-seg.nii.gz")
    return root


def tiny_config(path: Path, data_root: Path, runs_dir: Path, **sections) -> Path:
    """A run that takes seconds: (4, 8, 16) features, 16-voxel patches, 2 iterations an epoch."""
    config = {
        "task": "wmh",
        "data": {"layout": "folder", "root": str(data_root), "folds": 3, "fold": 0},
        "preprocessing": {"spacing_xyz_mm": [1.0, 1.0, 1.0], "crop_margin_mm": 2},
        "network": {"features": [4, 8, 16], "deep_supervision": True},
        "training": {
            "epochs": 2,
            "iterations_per_epoch": 2,
            "batch_size": 2,
            "patch_size_zyx": [16, 16, 16],
            "amp": False,
        },
        "augmentation": {"enabled": False},
        "validation": {"every_epochs": 1},
        "inference": {"overlap": 0.25},
        "output": {"runs_dir": str(runs_dir)},
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
    path.write_text(yaml.safe_dump(config))
    return path
