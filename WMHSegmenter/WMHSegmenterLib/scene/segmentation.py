"""Segmentation nodes from label maps and back: named, coloured, coded segments on the input's grid.

All segments of a prediction share one labelmap whose voxel values are the bundle's label values,
so a segmentation written here and read back (after any editing in the Segment Editor) gives the
same numbers the engine and the label files use. Each segment carries its label value as a tag,
which survives renaming and recolouring by the user.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from ..engine.bundle import LabelInfo
from ..engine.errors import InputError
from ..engine.labels import REGION_NAMES, region_masks
from .nodes import image_data

LABEL_TAG = "WMHSegmenter.LabelValue"
FINGERPRINT_ATTRIBUTE = "WMHSegmenter.LabelsSHA256"
BINARY_LABELMAP = "Binary labelmap"
#: The codes in task bundles are SNOMED CT concepts of the DICOM master list (CID 7150/7151).
TERMINOLOGY_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
TERMINOLOGY_PARTS = ("category", "type", "type_modifier", "region", "region_modifier")
#: BraTS evaluation regions shown as nested overlays: whole tumor, tumor core, enhancing tumor.
REGION_COLORS = {"wt": (0.25, 0.75, 0.35), "tc": (0.85, 0.25, 0.25), "et": (1.0, 0.9, 0.2)}


def terminology_entry(terminology: dict) -> str:
    """Slicer's serialized terminology entry for a bundle's {"category": [scheme, value, meaning], ...}."""
    unknown = set(terminology) - set(TERMINOLOGY_PARTS)
    if unknown:
        raise InputError(
            f"unknown terminology keys {sorted(unknown)} (known: {', '.join(TERMINOLOGY_PARTS)})"
        )
    if "category" not in terminology or "type" not in terminology:
        raise InputError("a terminology needs at least a category and a type")
    codes = {}
    for part in TERMINOLOGY_PARTS:
        code = terminology.get(part, ["", "", ""])
        if len(code) != 3:
            raise InputError(f"terminology {part} must be [scheme, value, meaning], got {code!r}")
        codes[part] = "^".join(code)
    anatomic_context = ANATOMIC_CONTEXT if "region" in terminology else ""
    return "~".join(
        (TERMINOLOGY_CONTEXT, codes["category"], codes["type"], codes["type_modifier"], anatomic_context)
        + (codes["region"], codes["region_modifier"])
    )


def segment_id(value: int) -> str:
    """Stable ids, so the Segment Editor keeps its selected segment across re-runs."""
    return f"label_{value}"


def oriented_image(array: np.ndarray, reference: slicer.vtkMRMLVolumeNode) -> slicer.vtkOrientedImageData:
    """An image on ``reference``'s own voxel grid (segmentations live in their node's local space)."""
    dimensions = reference.GetImageData().GetDimensions()
    if tuple(array.shape[::-1]) != tuple(dimensions):
        raise ValueError(f"array shape {array.shape} does not fit the grid of '{reference.GetName()}'")
    image = slicer.vtkOrientedImageData()
    image.ShallowCopy(image_data(array))
    ijk_to_ras = vtk.vtkMatrix4x4()
    reference.GetIJKToRASMatrix(ijk_to_ras)
    image.SetImageToWorldMatrix(ijk_to_ras)
    return image


def write_labels(
    segmentation_node: slicer.vtkMRMLSegmentationNode,
    labels: np.ndarray,
    reference: slicer.vtkMRMLVolumeNode,
    label_infos: Sequence[LabelInfo],
) -> None:
    """Replace every segment of ``segmentation_node`` with one segment per bundle label.

    Labels absent from the prediction still get an (empty) segment, so the user can paint them.
    """
    values = [info.value for info in label_infos]
    kept = np.where(np.isin(labels, values), labels, 0)
    shared = oriented_image(kept.astype(np.uint8 if max(values, default=0) < 256 else np.int16), reference)
    was_modifying = segmentation_node.StartModify()
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference)
    segmentation_node.SetAndObserveTransformNodeID(reference.GetTransformNodeID())
    segmentation = segmentation_node.GetSegmentation()
    segmentation.RemoveAllSegments()
    for info in label_infos:
        segment = slicer.vtkSegment()
        segment.SetName(info.name)
        segment.SetColor(*info.color)
        segment.SetLabelValue(info.value)
        segment.SetTag(LABEL_TAG, str(info.value))
        if info.terminology:
            segment.SetTerminology(terminology_entry(info.terminology))
        segment.AddRepresentation(BINARY_LABELMAP, shared)
        segmentation.AddSegment(segment, segment_id(info.value))
    segmentation_node.CreateDefaultDisplayNodes()
    segmentation_node.EndModify(was_modifying)
    segmentation_node.SetAttribute(
        FINGERPRINT_ATTRIBUTE, fingerprint(read_labels(segmentation_node, reference))
    )


def tagged_segments(segmentation_node: slicer.vtkMRMLSegmentationNode) -> dict[str, int]:
    """Segment id -> label value, for segments written by :func:`write_labels`."""
    segmentation = segmentation_node.GetSegmentation()
    tagged = {}
    for index in range(segmentation.GetNumberOfSegments()):
        identifier = segmentation.GetNthSegmentID(index)
        value = vtk.reference("")
        if segmentation.GetSegment(identifier).GetTag(LABEL_TAG, value):
            tagged[identifier] = int(str(value))
    return tagged


def add_to_segments(
    segmentation_node: slicer.vtkMRMLSegmentationNode, labels: np.ndarray, reference: slicer.vtkMRMLVolumeNode
) -> None:
    """Add each labelled voxel of ``labels`` to the tagged segment of its label, where the segmentation
    is empty, as the Segment Editor's paint adds (the node then counts as edited, so a re-run asks
    first); every other voxel stays as it is."""
    values = np.unique(labels[labels > 0]).tolist()
    segment_of = _segment_of_label(segmentation_node)
    missing = sorted(set(values) - set(segment_of))
    if missing:
        raise InputError(
            f"segmentation '{segmentation_node.GetName()}' has no segment for label(s) {missing}: "
            "it was changed since it was segmented"
        )
    current = read_labels(segmentation_node, reference)
    added = (labels > 0) & (current == 0)
    _replace_segments(segmentation_node, np.where(added, labels, current), values, reference)


def erase_from_segments(
    segmentation_node: slicer.vtkMRMLSegmentationNode, mask: np.ndarray, reference: slicer.vtkMRMLVolumeNode
) -> None:
    """Empty ``mask``'s voxels in every tagged segment; every other voxel stays as it is."""
    current = read_labels(segmentation_node, reference)
    values = np.unique(current[mask & (current > 0)]).tolist()
    _replace_segments(segmentation_node, np.where(mask, 0, current), values, reference)


def _segment_of_label(segmentation_node: slicer.vtkMRMLSegmentationNode) -> dict[int, str]:
    """Label value -> segment id; where two segments carry a label, the first one."""
    tagged = reversed(tagged_segments(segmentation_node).items())
    return {value: identifier for identifier, value in tagged}


def _replace_segments(
    segmentation_node: slicer.vtkMRMLSegmentationNode,
    labels: np.ndarray,
    values: list[int],
    reference: slicer.vtkMRMLVolumeNode,
) -> None:
    """Make the segment of each of ``values`` exactly the voxels ``labels`` gives it. Each segment is
    replaced by itself: merging a mask into the segments' shared labelmap left voxels reading back
    with another segment's label."""
    segment_of = _segment_of_label(segmentation_node)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    for value in values:
        image = oriented_image((labels == value).astype(np.uint8), reference)
        logic.SetBinaryLabelmapToSegment(image, segmentation_node, segment_of[value], logic.MODE_REPLACE)


def label_names(segmentation_node: slicer.vtkMRMLSegmentationNode) -> dict[int, str]:
    """Label value -> the segment's current name (the user may have renamed it)."""
    segmentation = segmentation_node.GetSegmentation()
    return {
        value: segmentation.GetSegment(identifier).GetName()
        for identifier, value in tagged_segments(segmentation_node).items()
    }


def read_labels(
    segmentation_node: slicer.vtkMRMLSegmentationNode, reference: slicer.vtkMRMLVolumeNode
) -> np.ndarray:
    """The tagged segments as one (z, y, x) label map on ``reference``'s grid, edits included.

    Where the user let segments overlap, the later segment (higher label value) wins.
    """
    if segmentation_node.GetTransformNodeID() != reference.GetTransformNodeID():
        raise InputError(
            f"segmentation '{segmentation_node.GetName()}' and volume '{reference.GetName()}' are under "
            "different transforms: put them under the same one"
        )
    x, y, z = reference.GetImageData().GetDimensions()
    tagged = tagged_segments(segmentation_node)
    if not tagged:
        return np.zeros((z, y, x), dtype=np.int16)
    identifiers, values = vtk.vtkStringArray(), vtk.vtkIntArray()
    for identifier, value in tagged.items():
        identifiers.InsertNextValue(identifier)
        values.InsertNextValue(value)
    merged = slicer.vtkOrientedImageData()
    geometry = oriented_image(np.zeros((z, y, x), dtype=np.uint8), reference)
    extent_mode = slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
    if not segmentation_node.GenerateMergedLabelmapForAllSegments(
        merged, extent_mode, geometry, identifiers, values
    ):
        raise InputError(f"could not read segmentation '{segmentation_node.GetName()}' as a label map")
    if tuple(merged.GetExtent()) != (0, x - 1, 0, y - 1, 0, z - 1):
        raise InputError(
            f"segmentation '{segmentation_node.GetName()}' does not cover '{reference.GetName()}'"
        )
    return numpy_support.vtk_to_numpy(merged.GetPointData().GetScalars()).reshape(z, y, x).copy()


def fingerprint(labels: np.ndarray) -> str:
    digest = hashlib.sha256(str(labels.shape).encode())
    digest.update(np.ascontiguousarray(labels, dtype=np.int16).tobytes())
    return digest.hexdigest()


def is_edited(segmentation_node: slicer.vtkMRMLSegmentationNode, reference: slicer.vtkMRMLVolumeNode) -> bool:
    """True when overwriting the node would lose work: edited labels or segments we did not write."""
    return edited_fingerprint(segmentation_node, reference) is not None


def edited_fingerprint(
    segmentation_node: slicer.vtkMRMLSegmentationNode, reference: slicer.vtkMRMLVolumeNode
) -> str | None:
    """The fingerprint of the node's labels now, if it is edited (see :func:`is_edited`), else None.

    Handed on, it spares a caller that tracks saved versions reading the labels a second time.
    """
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetNumberOfSegments() == 0:
        return None
    current = fingerprint(read_labels(segmentation_node, reference))
    foreign = len(tagged_segments(segmentation_node)) != segmentation.GetNumberOfSegments()
    return current if foreign or segmentation_node.GetAttribute(FINGERPRINT_ATTRIBUTE) != current else None


def write_regions(
    segmentation_node: slicer.vtkMRMLSegmentationNode, labels: np.ndarray, reference: slicer.vtkMRMLVolumeNode
) -> None:
    """WT, TC and ET as overlapping segments (each in its own layer), drawn nested WT < TC < ET."""
    masks = region_masks(labels)
    was_modifying = segmentation_node.StartModify()
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference)
    segmentation_node.SetAndObserveTransformNodeID(reference.GetTransformNodeID())
    segmentation = segmentation_node.GetSegmentation()
    segmentation.RemoveAllSegments()
    for region, color in REGION_COLORS.items():
        segment = slicer.vtkSegment()
        segment.SetName(REGION_NAMES[region])
        segment.SetColor(*color)
        segment.AddRepresentation(BINARY_LABELMAP, oriented_image(masks[region].astype(np.uint8), reference))
        segmentation.AddSegment(segment, region)
    segmentation_node.CreateDefaultDisplayNodes()
    segmentation_node.EndModify(was_modifying)
