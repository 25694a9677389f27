"""Volume nodes <-> engine volumes keep geometry exactly (oblique, anisotropic, under transforms)."""
# ruff: noqa: F811  (the mrml_scene fixture is imported, then requested by name)

from __future__ import annotations

import numpy as np
import pytest
from slicer_scene import mrml_scene, vtk  # noqa: F401

from conftest import blob_volume, oblique_geometry
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.volume import read_volume, write_volume
from WMHSegmenterLib.scene.nodes import (
    LPS_TO_RAS,
    add_volume_node,
    matrix_to_array,
    set_array_on_grid_of,
    volume_from_node,
)


def test_round_trip_keeps_voxels_and_geometry_exactly(mrml_scene):
    volume = blob_volume((5, 6, 7), oblique_geometry())
    node = add_volume_node(mrml_scene.scene, volume, "flair")
    back = volume_from_node(node)
    assert back.geometry == volume.geometry
    assert back.array.dtype == volume.array.dtype
    np.testing.assert_array_equal(back.array, volume.array)


def test_node_places_voxels_where_the_engine_does(mrml_scene):
    geometry = oblique_geometry()
    node = add_volume_node(mrml_scene.scene, blob_volume((5, 6, 7), geometry), "flair")
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    indices_zyx = np.array([[0, 0, 0], [4, 5, 6], [2, 1, 3]])
    homogeneous = np.c_[indices_zyx[:, ::-1], np.ones(3)]
    ras = (matrix_to_array(ijk_to_ras) @ homogeneous.T).T[:, :3]
    np.testing.assert_allclose(ras, geometry.index_to_world(indices_zyx) @ LPS_TO_RAS, atol=1e-9)


def test_slicer_reading_a_file_agrees_with_the_engine_reading_it(mrml_scene, tmp_path):
    path = write_volume(blob_volume((5, 6, 7), oblique_geometry()), tmp_path / "case_flair.nii.gz")
    node = mrml_scene.module_logics["Volumes"].AddArchetypeVolume(str(path), "case_flair")
    from_slicer, from_engine = volume_from_node(node), read_volume(path)
    assert from_slicer.geometry.matches(from_engine.geometry, tolerance=1e-6)
    np.testing.assert_array_equal(from_slicer.array, from_engine.array)


def test_linear_parent_transform_is_applied(mrml_scene):
    volume = blob_volume((4, 5, 6), oblique_geometry())
    node = add_volume_node(mrml_scene.scene, volume, "t1")
    transform = mrml_scene.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    rotation = vtk.vtkTransform()
    rotation.RotateWXYZ(30, 0.2, 0.5, 1.0)
    rotation.Translate(10, -4, 2)
    transform.SetMatrixTransformToParent(rotation.GetMatrix())
    node.SetAndObserveTransformNodeID(transform.GetID())
    moved = volume_from_node(node)
    indices_zyx = np.array([[0, 0, 0], [3, 4, 5], [1, 2, 3]])
    expected_ras = [
        rotation.TransformPoint(*(point @ LPS_TO_RAS))
        for point in volume.geometry.index_to_world(indices_zyx)
    ]
    np.testing.assert_allclose(
        moved.geometry.index_to_world(indices_zyx) @ LPS_TO_RAS, expected_ras, atol=1e-9
    )
    np.testing.assert_array_equal(moved.array, volume.array)


def test_non_linear_transform_is_refused(mrml_scene):
    node = add_volume_node(mrml_scene.scene, blob_volume((4, 5, 6)), "flair")
    warp = vtk.vtkThinPlateSplineTransform()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for point, shift in (((0, 0, 0), 0), ((10, 0, 0), 1), ((0, 10, 0), 0), ((0, 0, 10), 2)):
        source.InsertNextPoint(point)
        target.InsertNextPoint(point[0] + shift, point[1], point[2])
    warp.SetSourceLandmarks(source)
    warp.SetTargetLandmarks(target)
    transform = mrml_scene.scene.AddNewNodeByClass("vtkMRMLTransformNode")
    transform.SetAndObserveTransformToParent(warp)
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(InputError, match="non-linear"):
        volume_from_node(node)


def test_output_array_takes_the_reference_grid_and_refuses_another_shape(mrml_scene):
    reference = add_volume_node(mrml_scene.scene, blob_volume((4, 5, 6), oblique_geometry()), "flair")
    output = mrml_scene.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "probability")
    probabilities = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)
    set_array_on_grid_of(output, probabilities, reference)
    assert volume_from_node(output).geometry == volume_from_node(reference).geometry
    with pytest.raises(ValueError, match="does not fit"):
        set_array_on_grid_of(output, probabilities[:3], reference)
