"""Cache, patch sampling, augmentation and losses: the pieces between a data set and a gradient."""

from __future__ import annotations

import os
import re
import shutil
import time

import numpy as np
import pytest
import torch
from test_training_helpers import head_and_lesions, make_folder_dataset, tiny_config, write_image

from wmhseg_training.augmentation import Augmentation, bias_field_on_raw_intensities
from wmhseg_training.cache import load_or_build
from wmhseg_training.config import DEFAULTS, check_config, load_config
from wmhseg_training.datasets import find_cases
from wmhseg_training.losses import (
    SegmentationLoss,
    blob_dice_loss,
    brats_region_targets,
    deep_supervision_weights,
    overlap_loss,
)
from wmhseg_training.sampling import PatchDataset, PatchSampler, crop
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.preprocessing import prepare_case
from WMHSegmenterLib.engine.volume import read_image, read_volume

PREPROCESSING = {"spacing_xyz_mm": [1.0, 1.0, 1.5], "crop_margin_mm": 2}


@pytest.fixture
def folder_cases(tmp_path):
    root = make_folder_dataset(tmp_path / "ms", cases=2)
    data = {"root": str(root), "layout": "folder", "label_file": "lesions", "image_files": None}
    return find_cases(data, "wmh", ["flair"])


def test_cache_holds_exactly_what_the_predictor_prepares_and_is_reused(tmp_path, folder_cases):
    built = []
    cached = load_or_build(
        folder_cases,
        tmp_path / "cache",
        "wmh",
        ["flair"],
        PREPROCESSING,
        on_case=lambda i, b: built.append(b),
    )
    case = folder_cases[0]
    expected = prepare_case(
        {"flair": read_image(case.images["flair"])},
        ["flair"],
        PREPROCESSING,
        labels=read_volume(case.label),
    )
    np.testing.assert_array_equal(cached[0].image, expected.image)
    np.testing.assert_array_equal(cached[0].labels, expected.labels)
    assert cached[0].spacing_xyz == (1.0, 1.0, 1.5)
    assert built == [True, True]

    load_or_build(
        folder_cases,
        tmp_path / "cache",
        "wmh",
        ["flair"],
        PREPROCESSING,
        on_case=lambda i, b: built.append(b),
    )
    assert built[2:] == [False, False]  # second epoch / second run: no NIfTI read

    brighter_flair(case.images["flair"])
    load_or_build(
        folder_cases,
        tmp_path / "cache",
        "wmh",
        ["flair"],
        PREPROCESSING,
        on_case=lambda i, b: built.append(b),
    )
    assert built[4:] == [True, False]  # a changed file is preprocessed again, its stale entry removed
    entries = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "cache").iterdir())
    assert entries == ["patient00", "patient01"]

    load_or_build(folder_cases, tmp_path / "cache", "wmh", ["flair"], {**PREPROCESSING, "crop_margin_mm": 4})
    assert len(list((tmp_path / "cache").iterdir())) == 4  # other settings: entries beside, for other runs


def brighter_flair(path):
    """Rewrites a case's FLAIR with other voxel values: the same file, changed content."""
    volume = read_volume(path)
    write_image(volume.array * 1.5, path, spacing=volume.geometry.spacing)


def test_a_data_set_copied_elsewhere_reuses_its_cache_entries(tmp_path, folder_cases):
    load_or_build(folder_cases, tmp_path / "cache", "wmh", ["flair"], PREPROCESSING)
    root = folder_cases[0].images["flair"].parent.parent
    copy = tmp_path / "copied"
    shutil.copytree(root, copy)  # new paths; copytree keeps modification times, so set new ones too
    later = time.time() + 3600
    for path in copy.rglob("*.nii.gz"):
        os.utime(path, (later, later))
    data = {"root": str(copy), "layout": "folder", "label_file": "lesions", "image_files": None}
    built = []
    load_or_build(
        find_cases(data, "wmh", ["flair"]),
        tmp_path / "cache",
        "wmh",
        ["flair"],
        PREPROCESSING,
        on_case=lambda i, b: built.append(b),
    )
    assert built == [False, False]


def test_a_build_in_progress_elsewhere_is_left_alone_and_a_killed_ones_leftover_removed(
    tmp_path, folder_cases
):
    cache = tmp_path / "cache"
    (entry,) = load_or_build(folder_cases[:1], cache, "wmh", ["flair"], PREPROCESSING)
    other_run, killed_run = (
        entry.folder.with_name(f".{entry.folder.name}.{n}.partial") for n in ("a1", "b2")
    )
    for folder in (other_run, killed_run):
        folder.mkdir()
        (folder / "image.npy").write_bytes(b"half written")
    two_hours_ago = time.time() - 7200
    os.utime(killed_run, (two_hours_ago, two_hours_ago))
    brighter_flair(folder_cases[0].images["flair"])
    load_or_build(folder_cases[:1], cache, "wmh", ["flair"], PREPROCESSING)
    assert (other_run / "image.npy").is_file()
    assert not killed_run.exists()


def test_crop_pads_outside_the_volume_with_zeros():
    array = np.arange(27, dtype=np.float32).reshape(3, 3, 3) + 1
    patch = crop(array, (-1, 1, 2), (3, 3, 3))
    assert patch.shape == (3, 3, 3)
    assert np.all(patch[0] == 0) and np.all(patch[:, 2:] == 0) and np.all(patch[:, :, 1:] == 0)
    np.testing.assert_array_equal(patch[1:, :2, 0], array[:2, 1:, 2])


def test_foreground_oversampling_centres_patches_on_lesions(tmp_path, folder_cases):
    cached = load_or_build(folder_cases, tmp_path / "cache", "wmh", ["flair"], PREPROCESSING)
    lesion_share = cached[0].labels.astype(bool).mean()
    for fraction, expect_all in ((1.0, True), (0.0, False)):
        dataset = PatchDataset(PatchSampler(cached, (8, 8, 8), fraction), (8, 8, 8), 64, seed=3)
        centres = [dataset[i][1][4, 4, 4].item() for i in range(64)]
        if expect_all:
            assert all(centres)
        else:
            assert np.mean(centres) < 0.5 and lesion_share < 0.1


def test_patches_depend_only_on_seed_rank_epoch_and_index(tmp_path, folder_cases):
    cached = load_or_build(folder_cases, tmp_path / "cache", "wmh", ["flair"], PREPROCESSING)
    sampler = PatchSampler(cached, (12, 12, 12), 0.33)
    augmentation = Augmentation(
        {**DEFAULTS["augmentation"], "elastic": {**DEFAULTS["augmentation"]["elastic"], "p": 1.0}}
    )
    first = PatchDataset(sampler, (8, 8, 8), 8, seed=5, augmentation=augmentation)
    again = PatchDataset(sampler, (8, 8, 8), 8, seed=5, augmentation=augmentation)
    torch.manual_seed(123)  # the caller's generator must neither matter nor be disturbed
    state = torch.get_rng_state()
    a = [first[i] for i in (3, 1)]
    assert torch.equal(torch.get_rng_state(), state)
    b = [again[i] for i in (3, 1)]
    for (image_a, labels_a), (image_b, labels_b) in zip(a, b):
        assert image_a.shape == (1, 8, 8, 8) and labels_a.dtype == torch.int64
        assert torch.equal(image_a, image_b) and torch.equal(labels_a, labels_b)
    assert not torch.equal(again[8 + 3][0], a[0][0])  # the same item of the next epoch
    other_rank = PatchDataset(sampler, (8, 8, 8), 8, seed=5, rank=1, augmentation=augmentation)
    assert not torch.equal(other_rank[3][0], a[0][0])


def test_every_augmentation_keeps_shapes_and_label_values():
    image, labels = head_and_lesions(0)
    labels[2:4, 10:12, 10:12] = 2
    image = (image - image.mean()) / image.std()
    settings = {**DEFAULTS["augmentation"]}
    for key, value in settings.items():
        if isinstance(value, dict) and "p" in value:
            settings[key] = {**value, "p": 1.0}
    torch.manual_seed(0)
    out_image, out_labels = Augmentation(settings)(image[None], labels, (1.0, 1.0, 2.0))
    assert out_image.shape == (1, *labels.shape) and out_image.dtype == np.float32
    assert out_labels.shape == labels.shape and set(np.unique(out_labels)) <= {0, 1, 2}
    assert np.isfinite(out_image).all() and not np.allclose(out_image, image)


def zscored_two_channel_patch() -> torch.Tensor:
    """Two z-scored channels inside a cube, 0 (the blanked outside) around it."""
    patch = torch.zeros(2, 12, 12, 12)
    patch[:, 2:10, 2:10, 2:10] = torch.randn(2, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    return patch


def test_bias_field_acts_on_raw_intensities_and_leaves_the_outside_blank():
    patch = zscored_two_channel_patch()
    torch.manual_seed(3)
    shifted = bias_field_on_raw_intensities(patch, 0.05, (3.0, 3.0), per_channel=False)
    torch.manual_seed(3)
    scaled = bias_field_on_raw_intensities(patch, 0.05, (0.0, 0.0), per_channel=False)
    inside = patch[0] != 0
    field = scaled[0][inside] / patch[0][inside]  # with m = 0 the output is z times the field
    assert (field - 1).abs().max() > 0.01
    assert torch.allclose(shifted[0][inside], (patch[0][inside] + 3.0) * field - 3.0, atol=1e-5)
    assert torch.equal(shifted[:, ~inside], patch[:, ~inside])


def test_bias_field_per_channel_draws_a_field_for_each_sequence():
    patch = zscored_two_channel_patch()
    patch[1] = patch[0]
    inside = patch[0] != 0
    torch.manual_seed(4)
    shared = bias_field_on_raw_intensities(patch, 0.05, (0.0, 0.0), per_channel=False)
    torch.manual_seed(4)
    own = bias_field_on_raw_intensities(patch, 0.05, (0.0, 0.0), per_channel=True)
    assert torch.allclose(shared[0][inside], shared[1][inside])
    assert (own[0][inside] - own[1][inside]).abs().max() > 0.01


def test_bias_field_offsets_must_be_an_ordered_nonnegative_pair(tmp_path):
    bias = {"p": 0.3, "coefficients": 0.05, "per_channel": True, "mean_over_std": [5.0, 2.0]}
    config = tiny_config(
        tmp_path / "a.yaml", tmp_path, tmp_path, augmentation={"enabled": True, "bias_field": bias}
    )
    with pytest.raises(InputError, match=r"bias_field.mean_over_std must be \[low, high\]"):
        check_config(load_config(config))


def wmh_logits(labels: torch.Tensor, confidence: float = 8.0) -> torch.Tensor:
    """Logits that predict ``labels`` (0/1) confidently; the ignored label 2 is predicted as WMH."""
    foreground = (labels > 0).float()
    return torch.stack([(1 - foreground) * confidence, foreground * confidence], dim=1)


def test_label_2_is_ignored_not_background():
    labels = torch.zeros(1, 8, 8, 8, dtype=torch.long)
    labels[0, 2:4, 2:4, 2:4] = 1
    labels[0, 5:7, 5:7, 5:7] = 2
    loss = SegmentationLoss("wmh", ("dice", "ce"))
    logits = wmh_logits(labels)
    base = loss(logits, labels)
    changed = logits.clone()
    changed[:, :, 5:7, 5:7, 5:7] = torch.randn(1, 2, 2, 2, 2) * 10
    assert loss(changed, labels) == pytest.approx(base.item(), abs=1e-6)
    as_background = labels.clone()
    as_background[labels == 2] = 0
    assert loss(logits, as_background) > base + 0.1  # had 2 been background, predicting WMH there costs


def test_overlap_terms_by_hand():
    p = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])
    g = torch.tensor([[[1.0, 0.0, 1.0, 0.0]]])
    # intersection 1, |p| + |g| = 4: Dice 2/4, Jaccard 1/3
    assert overlap_loss(p, g, "dice").item() == pytest.approx(0.5, abs=1e-5)
    assert overlap_loss(p, g, "jaccard").item() == pytest.approx(2 / 3, abs=1e-5)


def test_blob_term_weighs_a_missed_small_lesion_like_a_missed_large_one():
    labels = torch.zeros(1, 12, 12, 12, dtype=torch.long)
    labels[0, 1:7, 1:7, 1:7] = 1  # 216 voxels
    labels[0, 9, 9, 9] = 1  # 1 voxel, far from it
    found_large = labels.clone().float()
    found_large[0, 9, 9, 9] = 0
    # the batch Dice hardly notices the missed voxel; lesion by lesion it is half the story
    assert overlap_loss(found_large[:, None], labels[:, None].float(), "dice").item() < 0.01
    assert blob_dice_loss(found_large, labels).item() == pytest.approx(0.5, abs=1e-4)
    found_small = (labels == 1).float()
    found_small[0, 1:7, 1:7, 1:7] = 0
    assert blob_dice_loss(found_small, labels).item() == pytest.approx(0.5, abs=1e-4)


def test_blob_term_counts_false_positives_near_each_lesion_only():
    labels = torch.zeros(2, 8, 8, 8, dtype=torch.long)
    labels[0, 1:3, 1:3, 1:3] = 1
    labels[0, 5:7, 5:7, 5:7] = 1
    labels[1, 5:7, 5:7, 5:7] = 2
    perfect = (labels == 1).float()
    assert blob_dice_loss(perfect, labels).item() == pytest.approx(0.0, abs=1e-6)
    lesion_in_ignored = perfect.clone()
    lesion_in_ignored[1][labels[1] == 2] = 1.0
    assert blob_dice_loss(lesion_in_ignored, labels).item() == pytest.approx(0.0, abs=1e-6)
    beside_second = perfect.clone()
    beside_second[0, 4, 4, 4] = 1.0  # 1.7 voxels from the second lesion, 3.5 from the first
    assert blob_dice_loss(beside_second, labels).item() == pytest.approx((1 - 16 / 17) / 2, abs=1e-5)
    far_from_both = perfect.clone()
    far_from_both[0, 7, 0, 0] = 1.0  # 5.2 voxels from the nearest: the patch's own terms see it
    far_from_both[1, 0, 7, 7] = 1.0  # another sample's background
    assert blob_dice_loss(far_from_both, labels).item() == pytest.approx(0.0, abs=1e-6)


def test_blob_term_is_zero_without_lesions_and_trains_the_missed_lesion():
    labels = torch.zeros(1, 6, 6, 6, dtype=torch.long)
    assert blob_dice_loss(torch.rand(1, 6, 6, 6), labels).item() == 0.0
    labels[0, 1, 1, 1] = 1
    labels[0, 4:6, 4:6, 4:6] = 1
    logits = wmh_logits(labels).requires_grad_()
    with torch.no_grad():
        logits[0, :, 1, 1, 1] = torch.tensor([8.0, -8.0])  # the small lesion missed
    SegmentationLoss("wmh", ("dice", "ce", "blob"))(logits, labels).backward()
    assert logits.grad[0, 1, 1, 1, 1] < 0  # raising the lesion logit there lowers the loss


def test_blob_term_is_refused_for_glioma_regions(tmp_path):
    config = tiny_config(
        tmp_path / "c.yaml", tmp_path, tmp_path, task="brats", training={"loss": "dice+blob"}
    )
    with pytest.raises(InputError, match="the 'blob' term .* is for task wmh only"):
        check_config(load_config(config))


@pytest.mark.parametrize(
    "optimizer,problem",
    [
        ({"learning_rate": -1}, "learning_rate must be a number >= 0, got -1"),
        ({"learning_rate": "fast"}, "learning_rate must be a number >= 0, got 'fast'"),
        ({"weight_decay": -0.1}, "weight_decay must be a number >= 0, got -0.1"),
        ({"name": "sgd", "momentum": -0.9}, "momentum must be a number >= 0, got -0.9"),
    ],
)
def test_an_optimizer_setting_torch_would_reject_is_refused_before_any_work(tmp_path, optimizer, problem):
    config = tiny_config(tmp_path / "c.yaml", tmp_path, tmp_path)
    loaded = load_config(config)
    loaded["training"]["optimizer"].update(optimizer)
    with pytest.raises(InputError, match=rf"^training\.optimizer\.{re.escape(problem)}$"):
        check_config(loaded)


def test_brats_regions_are_nested_sigmoid_targets_and_loss_prefers_truth():
    labels = torch.tensor([0, 1, 2, 4]).reshape(1, 1, 1, 4)
    targets = brats_region_targets(labels)
    # channels: whole tumor {1,2,4}, tumor core {1,4}, enhancing {4}
    assert targets[0, :, 0, 0].tolist() == [[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]]
    loss = SegmentationLoss("brats", ("dice", "ce"))
    right = (targets * 2 - 1) * 8
    assert loss(right, labels) < 0.01 < loss(-right, labels)


def test_deep_supervision_weights_and_scales():
    assert deep_supervision_weights(3) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    labels = torch.zeros(2, 8, 8, 8, dtype=torch.long)
    labels[:, :4] = 1
    loss = SegmentationLoss("wmh", ("dice", "ce"))
    outputs = [wmh_logits(labels), wmh_logits(labels[:, ::2, ::2, ::2]), torch.zeros(2, 2, 2, 2, 2)]
    expected = sum(
        w * loss(o, labels if i == 0 else labels[:, :: 2**i, :: 2**i, :: 2**i])
        for i, (w, o) in enumerate(zip(deep_supervision_weights(3), outputs))
    )
    assert loss(outputs, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss(outputs, labels) > loss(outputs[:2], labels)  # the coarse, uninformed head adds loss


def test_cached_arrays_are_memory_maps_reopened_by_workers(tmp_path, folder_cases):
    (entry,) = load_or_build(folder_cases[:1], tmp_path / "cache", "wmh", ["flair"], PREPROCESSING)
    assert isinstance(entry.image, np.memmap)
    assert entry.__getstate__()["_arrays"] == {}
