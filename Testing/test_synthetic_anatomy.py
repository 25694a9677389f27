"""Anatomies for synthetic FLAIR: phantom, ventricles derived from CSF, MNI152 files, segmentations."""

from __future__ import annotations

import numpy as np
import pytest

from wmhseg_training.synthetic import Tissue, anatomy_from_segmentation, load_mni152, phantom_anatomy
from wmhseg_training.synthetic.anatomy import build_anatomy
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.volume import Volume, write_volume


@pytest.fixture(scope="module")
def phantom():
    return phantom_anatomy(2.0)


@pytest.fixture(scope="module")
def head_phantom():
    return phantom_anatomy(2.0, with_head=True)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def test_phantom_has_every_brain_tissue_and_axes(phantom, head_phantom):
    present = set(np.unique(phantom.labels).tolist())
    assert {
        Tissue.CSF,
        Tissue.GREY_MATTER,
        Tissue.WHITE_MATTER,
        Tissue.VENTRICLE,
        Tissue.DEEP_GREY_MATTER,
    } <= present
    assert not phantom.has_head
    assert phantom.superior_axis == 0 and phantom.anterior_axis == 1  # identity geometry: z is head-foot
    assert head_phantom.has_head


def test_ventricles_are_found_in_csf_but_not_in_the_csf_around_the_brain(phantom):
    truth = phantom.labels == Tissue.VENTRICLE
    unlabelled = phantom.labels.copy()
    unlabelled[truth] = Tissue.CSF
    derived = build_anatomy(unlabelled, phantom.geometry, "derived", ventricles_known=False)
    found = derived.labels == Tissue.VENTRICLE
    assert dice(found, truth) > 0.9
    assert not np.any(found & (phantom.labels == Tissue.CSF))  # the rim outside the brain stays CSF


def test_lattice_fields_measure_distances_in_mm(phantom):
    lattice = phantom.lattice
    inside = lattice.tissue == Tissue.VENTRICLE
    assert (
        lattice.ventricle_distance[inside].max()
        < 0
        < lattice.ventricle_distance[lattice.tissue == Tissue.CSF].min()
    )
    assert lattice.brain_distance[lattice.tissue == Tissue.WHITE_MATTER].max() == 0
    assert lattice.brain_distance.max() > 20  # the margin holds a simulated skull
    assert 0.99 <= lattice.white_fraction[lattice.tissue == Tissue.WHITE_MATTER].max() <= 1.0 + 1e-6


def _probability_maps(phantom):
    labels = phantom.labels
    grey = np.where(np.isin(labels, (Tissue.GREY_MATTER, Tissue.DEEP_GREY_MATTER)), 230, 0).astype(np.uint8)
    white = np.where(labels == Tissue.WHITE_MATTER, 240, 0).astype(np.uint8)
    return grey, white


def test_mni152_maps_give_tissue_ventricles_and_no_head_for_a_brain_template(tmp_path, phantom):
    grey, white = _probability_maps(phantom)
    t1_values = {Tissue.CSF: 40, Tissue.VENTRICLE: 40, Tissue.GREY_MATTER: 120, Tissue.DEEP_GREY_MATTER: 170}
    t1 = np.where(phantom.labels > 0, 200, 0).astype(np.uint8)  # white matter brightest, as on T1
    for tissue, value in t1_values.items():
        t1[phantom.labels == tissue] = value
    for name, array in (("t1", t1), ("gm", grey), ("wm", white)):  # nilearn's file names
        file = tmp_path / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
        write_volume(Volume(array, phantom.geometry), file)
    anatomy = load_mni152(tmp_path)
    assert not anatomy.has_head
    assert dice(anatomy.labels == Tissue.WHITE_MATTER, phantom.labels == Tissue.WHITE_MATTER) > 0.95
    assert dice(anatomy.labels == Tissue.VENTRICLE, phantom.labels == Tissue.VENTRICLE) > 0.8
    deep = Tissue.DEEP_GREY_MATTER
    assert dice(anatomy.labels == deep, phantom.labels == deep) > 0.8  # told from cortex by T1


def test_mni152_head_image_gives_skull_and_scalp(tmp_path, head_phantom):
    head = head_phantom
    grey, white = _probability_maps(head)
    t1 = np.select(
        [head.labels == Tissue.SCALP, head.labels == Tissue.SKULL, head.labels > 0], [200, 20, 100], 0
    ).astype(np.uint8)
    for name, array in (("t1", t1), ("gm", grey), ("wm", white)):
        write_volume(Volume(array, head.geometry), tmp_path / f"{name}.nii.gz")
    anatomy = load_mni152(tmp_path)
    assert anatomy.has_head
    assert dice(anatomy.labels == Tissue.SCALP, head.labels == Tissue.SCALP) > 0.8
    assert dice(anatomy.labels == Tissue.SKULL, head.labels == Tissue.SKULL) > 0.6


def test_missing_mni152_map_names_the_file(tmp_path):
    with pytest.raises(InputError, match="missing t1"):
        load_mni152(tmp_path)


def test_freesurfer_segmentation_maps_to_tissues(phantom):
    aseg_values = {
        Tissue.CSF: 24,
        Tissue.GREY_MATTER: 3,
        Tissue.WHITE_MATTER: 2,
        Tissue.VENTRICLE: 4,
        Tissue.DEEP_GREY_MATTER: 11,  # caudate
    }
    aseg = np.zeros(phantom.labels.shape, dtype=np.int16)
    for tissue, value in aseg_values.items():
        aseg[phantom.labels == tissue] = value
    aseg[(phantom.labels == Tissue.WHITE_MATTER) & (np.arange(aseg.shape[0])[:, None, None] % 9 == 0)] = 77
    anatomy = anatomy_from_segmentation(Volume(aseg, phantom.geometry), "freesurfer")
    assert np.array_equal(anatomy.labels, phantom.labels)  # 77 (WM hypointensities) is white matter


def test_segmentation_without_ventricles_or_white_matter_is_refused(phantom):
    only_csf = Volume(np.where(phantom.labels > 0, 1, 0).astype(np.uint8), phantom.geometry)
    with pytest.raises(InputError, match="ventricles"):
        anatomy_from_segmentation(only_csf, "three_class")
    with pytest.raises(InputError, match="preset"):
        anatomy_from_segmentation(only_csf, "aseg")
