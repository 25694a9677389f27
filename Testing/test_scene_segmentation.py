"""Segmentation nodes: written on the input grid with the bundle's segments, read back with edits."""
# ruff: noqa: F811  (the mrml_scene fixture is imported, then requested by name)

from __future__ import annotations

import numpy as np
import pytest
from slicer_scene import mrml_scene, slicer, vtk  # noqa: F401
from vtk.util import numpy_support

from conftest import blob_volume, oblique_geometry
from WMHSegmenterLib.engine.bundle import LabelInfo
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.labels import region_masks
from WMHSegmenterLib.engine.tasks import task_metadata
from WMHSegmenterLib.scene.nodes import add_volume_node, matrix_to_array
from WMHSegmenterLib.scene.segmentation import (
    add_to_segments,
    edited_fingerprint,
    fingerprint,
    is_edited,
    label_names,
    oriented_image,
    read_labels,
    segment_id,
    terminology_entry,
    write_labels,
    write_regions,
)

SHAPE = (6, 9, 8)
BRATS_LABELS = [
    LabelInfo(i["value"], i["name"], tuple(i["color"]), i["terminology"])
    for i in task_metadata("brats")["outputs"]["labels"]
]


def brats_labels() -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[1:5, 2:7, 2:6] = 2
    labels[2:4, 3:6, 3:5] = 1
    labels[3, 4, 3:5] = 4
    return labels


@pytest.fixture
def written(mrml_scene):
    reference = add_volume_node(mrml_scene.scene, blob_volume(SHAPE, oblique_geometry()), "case_flair")
    node = mrml_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "case segmentation")
    write_labels(node, brats_labels(), reference, BRATS_LABELS)
    return node, reference


def paint(node, reference, segment, mask: np.ndarray, mode="MODE_MERGE_MASK") -> None:
    """What a Segment Editor effect does: apply a binary modifier labelmap to one segment."""
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    logic.SetBinaryLabelmapToSegment(
        oriented_image(mask.astype(np.uint8), reference), node, segment, getattr(logic, mode)
    )


def test_segments_carry_the_bundles_names_colors_and_terminology(written, mrml_scene):
    node, _ = written
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == len(BRATS_LABELS)
    terminologies = mrml_scene.module_logics["Terminologies"]
    for info in BRATS_LABELS:
        segment = segmentation.GetSegment(segment_id(info.value))
        assert segment.GetName() == info.name
        np.testing.assert_allclose(segment.GetColor(), info.color)
        entry = slicer.vtkSlicerTerminologyEntry()
        assert terminologies.DeserializeTerminologyEntry(segment.GetTerminology(), entry)
        assert entry.GetCategoryObject().GetCodeValue() == info.terminology["category"][1]
        assert entry.GetTypeObject().GetCodeValue() == info.terminology["type"][1]
        assert entry.GetTypeObject().GetCodeMeaning() == info.terminology["type"][2]
    assert label_names(node) == {info.value: info.name for info in BRATS_LABELS}


def test_segmentation_lies_on_the_input_grid(written):
    node, reference = written
    geometry = vtk.vtkMatrix4x4()
    labelmap = node.GetSegmentation().GetSegment(segment_id(2)).GetRepresentation("Binary labelmap")
    labelmap.GetImageToWorldMatrix(geometry)
    ijk_to_ras = vtk.vtkMatrix4x4()
    reference.GetIJKToRASMatrix(ijk_to_ras)
    np.testing.assert_allclose(matrix_to_array(geometry), matrix_to_array(ijk_to_ras), rtol=0, atol=1e-12)
    assert node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole()) is reference


def test_reading_back_gives_the_written_labels(written):
    node, reference = written
    np.testing.assert_array_equal(read_labels(node, reference), brats_labels())
    assert not is_edited(node, reference)
    assert edited_fingerprint(node, reference) is None


def test_painting_and_erasing_are_read_back(written):
    node, reference = written
    expected = brats_labels()
    added = np.zeros(SHAPE, dtype=bool)
    added[0, 0:2, 0:3] = True
    paint(node, reference, segment_id(2), added)
    expected[added] = 2
    kept_core = expected == 1
    kept_core[2, 3:5, :] = False
    paint(node, reference, segment_id(1), kept_core, "MODE_REPLACE")
    expected[(expected == 1) & ~kept_core] = 0
    np.testing.assert_array_equal(read_labels(node, reference), expected)
    assert is_edited(node, reference)
    assert edited_fingerprint(node, reference) == fingerprint(expected)
    assert edited_fingerprint(node, reference) != fingerprint(brats_labels())


def test_a_segment_the_user_added_counts_as_an_edit(written):
    node, reference = written
    node.GetSegmentation().AddEmptySegment("mine", "Other lesion")
    assert is_edited(node, reference)


def test_added_labels_fill_only_empty_voxels_of_their_own_segments(written):
    node, reference = written
    added = np.zeros(SHAPE, dtype=np.uint8)
    added[0, :3, :3] = 2  # empty before: becomes edema
    added[0, 5:, 5:] = 4  # empty before: becomes enhancing
    added[2:4, 3:6, 3:5] = 2  # core already: stays core
    add_to_segments(node, added, reference)
    expected = brats_labels()
    expected[0, :3, :3], expected[0, 5:, 5:] = 2, 4
    np.testing.assert_array_equal(read_labels(node, reference), expected)
    assert is_edited(node, reference)
    node.GetSegmentation().RemoveSegment(segment_id(4))
    with pytest.raises(InputError, match=r"no segment for label\(s\) \[4\]"):
        add_to_segments(node, added, reference)


def test_unknown_label_values_are_not_kept(mrml_scene):
    reference = add_volume_node(mrml_scene.scene, blob_volume(SHAPE), "flair")
    node = mrml_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    labels = brats_labels()
    labels[0, 0, 0] = 7
    write_labels(node, labels, reference, BRATS_LABELS)
    labels[0, 0, 0] = 0
    np.testing.assert_array_equal(read_labels(node, reference), labels)


def test_wrong_shape_and_different_transforms_are_refused(written, mrml_scene):
    node, reference = written
    with pytest.raises(ValueError, match="does not fit"):
        write_labels(node, brats_labels()[:-1], reference, BRATS_LABELS)
    transform = mrml_scene.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(InputError, match="different transforms"):
        read_labels(node, reference)


def test_regions_are_nested_overlapping_segments(written, mrml_scene):
    _, reference = written
    regions = mrml_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "regions")
    write_regions(regions, brats_labels(), reference)
    expected = region_masks(brats_labels())
    for region in ("wt", "tc", "et"):
        merged = slicer.vtkOrientedImageData()
        assert regions.GetBinaryLabelmapRepresentation(region, merged)
        x, y, z = reference.GetImageData().GetDimensions()
        geometry = oriented_image(np.zeros((z, y, x), np.uint8), reference)
        resampled = slicer.vtkOrientedImageData()
        slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
            merged, geometry, resampled
        )
        mask = numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars()).reshape(z, y, x) > 0
        np.testing.assert_array_equal(mask, expected[region])


def test_terminology_entry_format_and_errors():
    lesion = {
        "category": ["SCT", "49755003", "Morphologically Altered Structure"],
        "type": ["SCT", "52988006", "Lesion"],
    }
    assert terminology_entry(lesion) == (
        "Segmentation category and type - DICOM master list~SCT^49755003^Morphologically Altered Structure"
        "~SCT^52988006^Lesion~^^~~^^~^^"
    )
    with pytest.raises(InputError, match="unknown terminology keys"):
        terminology_entry({**lesion, "colour": [1, 2, 3]})
    with pytest.raises(InputError, match="category and a type"):
        terminology_entry({"type": lesion["type"]})
