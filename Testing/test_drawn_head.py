"""Drawn heads around real skull-stripped FLAIRs: the brain and its labels stay put, a head appears."""

from __future__ import annotations

import numpy as np
import pytest
from test_training_helpers import head_and_lesions, make_folder_dataset, tiny_config

from conftest import oblique_geometry
from wmhseg_training.cache import load_or_build
from wmhseg_training.config import check_config, load_config
from wmhseg_training.datasets import find_cases
from wmhseg_training.synthetic.head import FlairHeadIntensities, draw_head_around_brain
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.preprocessing import head_mask
from WMHSegmenterLib.engine.volume import Volume

FIXED = FlairHeadIntensities(
    csf_rim=(0.3, 0.3), skull=(0.05, 0.05), marrow_probability=0.0, scalp=(1.5, 1.5), noise=(0.0, 0.0)
)
PREPROCESSING = {"spacing_xyz_mm": [1.0, 1.0, 1.5], "crop_margin_mm": 2}


def world_points(labels: Volume) -> np.ndarray:
    return labels.geometry.index_to_world(np.argwhere(labels.array > 0))


def test_a_drawn_head_surrounds_the_brain_without_moving_it_or_its_lesions():
    array, lesions = head_and_lesions(0)
    geometry = oblique_geometry(spacing=(1.0, 1.0, 1.5))
    image, labels = Volume(array, geometry), Volume(lesions, geometry)
    drawn, drawn_labels = draw_head_around_brain(image, labels, np.random.default_rng(0), intensities=FIXED)

    assert drawn.geometry.spacing == geometry.spacing and drawn.geometry.direction == geometry.direction
    np.testing.assert_allclose(world_points(drawn_labels), world_points(labels), atol=1e-6)
    offset = tuple((d - s) // 2 for d, s in zip(drawn.shape, image.shape))
    inner = drawn.array[tuple(slice(o, o + s) for o, s in zip(offset, image.shape))]
    np.testing.assert_array_equal(inner[array > 0], array[array > 0])

    median = float(np.median(array[array > 0]))
    outside = np.ones(drawn.shape, dtype=bool)
    outside[tuple(slice(o, o + s) for o, s in zip(offset, image.shape))] = array <= 0
    assert np.percentile(drawn.array[outside & (drawn.array > 0)], 99) > 1.2 * median  # bright scalp fat
    assert drawn.array[0, 0, 0] == 0.0  # air stays air
    assert head_mask(drawn.array).sum() > 1.5 * head_mask(inner).sum()  # the head is part of the scan


def test_a_head_is_not_drawn_around_an_image_that_already_has_one():
    array, lesions = head_and_lesions(0)
    with_skull = Volume(array + 10.0, oblique_geometry())
    with pytest.raises(InputError, match="only be drawn around a skull-stripped image"):
        draw_head_around_brain(with_skull, Volume(lesions, with_skull.geometry), np.random.default_rng(0))


def test_drawn_head_variants_are_cached_beside_the_scan_the_same_on_every_build(tmp_path):
    root = make_folder_dataset(tmp_path / "ms", cases=1)
    cases = find_cases(
        {"root": str(root), "layout": "folder", "label_file": "lesions", "image_files": None},
        "wmh",
        ["flair"],
    )
    built = []

    def build(cache: str) -> list:
        def report(case_id: str, was_built: bool) -> None:
            built.append((case_id, was_built))

        return load_or_build(
            cases, tmp_path / cache, "wmh", ["flair"], PREPROCESSING, on_case=report, head_draws=2
        )

    cached = build("a")
    assert built == [("patient00", True), ("patient00+head0", True), ("patient00+head1", True)]
    scan, first, second = cached
    assert [c.head_draw for c in cached] == [None, 0, 1] and {c.id for c in cached} == {"patient00"}
    assert all(np.greater(v.shape_zyx, scan.shape_zyx).all() for v in (first, second))
    assert first.image.shape != second.image.shape or not np.array_equal(first.image, second.image)
    assert first.labels.sum() == pytest.approx(scan.labels.sum(), rel=0.2)

    build("a")
    assert [b for _, b in built[3:6]] == [False, False, False]
    np.testing.assert_array_equal(build("b")[2].image, second.image)


def test_drawn_heads_are_refused_for_glioma_and_for_probabilities_outside_0_1(tmp_path):
    head = {"enabled": True, "drawn_head": {"p": 1.5, "draws": 2}}
    config = tiny_config(tmp_path / "a.yaml", tmp_path, tmp_path, augmentation=head)
    with pytest.raises(InputError, match=r"augmentation.drawn_head.p must be a number in \[0, 1\]"):
        check_config(load_config(config))
    head["drawn_head"]["p"] = 0.5
    config = tiny_config(tmp_path / "b.yaml", tmp_path, tmp_path, task="brats", augmentation=head)
    with pytest.raises(
        InputError, match="drawn_head draws a head around a skull-stripped FLAIR: only for task wmh"
    ):
        check_config(load_config(config))
