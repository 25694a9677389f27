"""Volume nodes <-> engine volumes with exact geometry.

MRML keeps a voxel grid as an IJK-to-RAS matrix; the engine (like ITK and every file format it
reads) keeps spacing, origin and a direction matrix in LPS. RAS and LPS differ by the sign of the
first two world axes, so converting is a sign flip and loses nothing: a prediction made on the
engine side lands on exactly the voxels of the node it came from.
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from ..engine.errors import InputError
from ..engine.volume import LPS_TO_RAS, Geometry, Volume


def matrix_to_array(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(row, column) for column in range(4)] for row in range(4)])


def array_to_matrix(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            matrix.SetElement(row, column, float(array[row, column]))
    return matrix


def local_geometry(node: slicer.vtkMRMLVolumeNode) -> Geometry:
    """The node's own voxel grid (ignoring any parent transform) in the engine's LPS convention."""
    directions = vtk.vtkMatrix4x4()
    node.GetIJKToRASDirectionMatrix(directions)
    direction_lps = LPS_TO_RAS @ matrix_to_array(directions)[:3, :3]
    origin_lps = LPS_TO_RAS @ np.asarray(node.GetOrigin(), dtype=float)
    return Geometry(
        tuple(float(s) for s in node.GetSpacing()),
        tuple(origin_lps.tolist()),
        tuple(direction_lps.ravel().tolist()),
    )


def world_geometry(node: slicer.vtkMRMLVolumeNode) -> Geometry:
    """Where the node's voxels lie in the world, with a linear parent transform applied.

    Modalities registered by a transform in Slicer must meet the network already aligned; a
    non-linear transform cannot be expressed as a grid and has to be hardened first.
    """
    transform = node.GetParentTransformNode()
    if transform is None:
        return local_geometry(node)
    if not transform.IsTransformToWorldLinear():
        raise InputError(f"volume '{node.GetName()}' is under a non-linear transform: harden it first")
    to_world = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToWorld(to_world)
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    matrix = matrix_to_array(to_world) @ matrix_to_array(ijk_to_ras)
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    direction_lps = LPS_TO_RAS @ (matrix[:3, :3] / spacing)
    origin_lps = LPS_TO_RAS @ matrix[:3, 3]
    return Geometry(
        tuple(spacing.tolist()), tuple(origin_lps.tolist()), tuple(direction_lps.ravel().tolist())
    )


def array_from_node(node: slicer.vtkMRMLVolumeNode) -> np.ndarray:
    """A copy of the node's voxels as (z, y, x): VTK stores x fastest, exactly like ITK."""
    image = node.GetImageData()
    if image is None or image.GetPointData().GetScalars() is None:
        raise InputError(f"volume '{node.GetName()}' holds no image data")
    scalars = image.GetPointData().GetScalars()
    if scalars.GetNumberOfComponents() != 1:
        raise InputError(f"volume '{node.GetName()}' is not a scalar volume")
    x, y, z = image.GetDimensions()
    return numpy_support.vtk_to_numpy(scalars).reshape(z, y, x).copy()


def volume_from_node(node: slicer.vtkMRMLVolumeNode) -> Volume:
    """The node's voxels and their world geometry, ready for the engine."""
    return Volume(array_from_node(node), world_geometry(node))


def image_data(array: np.ndarray) -> vtk.vtkImageData:
    """A vtkImageData holding a copy of a (z, y, x) array."""
    if array.ndim != 3:
        raise ValueError(f"expected a (z, y, x) array, got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    image = vtk.vtkImageData()
    image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    image.GetPointData().SetScalars(
        numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True)
    )
    return image


def set_node_geometry(node: slicer.vtkMRMLVolumeNode, geometry: Geometry) -> None:
    direction_ras = LPS_TO_RAS @ geometry.direction_matrix
    directions = np.eye(4)
    directions[:3, :3] = direction_ras
    node.SetIJKToRASDirectionMatrix(array_to_matrix(directions))
    node.SetSpacing(*geometry.spacing)
    node.SetOrigin(*(LPS_TO_RAS @ np.asarray(geometry.origin, dtype=float)).tolist())


def set_volume(node: slicer.vtkMRMLVolumeNode, volume: Volume) -> slicer.vtkMRMLVolumeNode:
    """Put an engine volume into a node: its voxels, and its geometry as the node's own grid."""
    set_node_geometry(node, volume.geometry)
    node.SetAndObserveImageData(image_data(volume.array))
    return node


def add_volume_node(
    scene: slicer.vtkMRMLScene, volume: Volume, name: str, class_name: str = "vtkMRMLScalarVolumeNode"
) -> slicer.vtkMRMLVolumeNode:
    node = scene.AddNewNodeByClass(class_name, name)
    set_volume(node, volume)
    node.CreateDefaultDisplayNodes()
    return node


def set_array_on_grid_of(
    node: slicer.vtkMRMLVolumeNode, array: np.ndarray, reference: slicer.vtkMRMLVolumeNode
) -> slicer.vtkMRMLVolumeNode:
    """Fill ``node`` with an array lying voxel for voxel on ``reference``'s grid (a probability map).

    The node takes the reference's own grid and parent transform, so it moves with it when the
    user transforms the input.
    """
    if tuple(reference.GetImageData().GetDimensions()) != tuple(array.shape[::-1]):
        raise ValueError(f"array shape {array.shape} does not fit the grid of '{reference.GetName()}'")
    directions = vtk.vtkMatrix4x4()
    reference.GetIJKToRASDirectionMatrix(directions)
    node.SetIJKToRASDirectionMatrix(directions)
    node.SetSpacing(reference.GetSpacing())
    node.SetOrigin(reference.GetOrigin())
    node.SetAndObserveImageData(image_data(array))
    node.SetAndObserveTransformNodeID(reference.GetTransformNodeID())
    return node
