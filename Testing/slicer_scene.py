"""A real MRML scene without Qt (PyPI slicer-core), set up as Slicer's application would set it up.

Desktop Slicer registers its module logics when it starts; without slicer.app the scene logic's
tests register the ones it relies on by hand: Colors, Volumes, Segmentations, Terminologies and
Subject hierarchy. Import the ``mrml_scene`` fixture from here in test files; importing this module
skips those tests where slicer-core is not installed (``pip install -e .[slicer]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs slicer-core (pip install -e .[slicer])")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the 'slicer' package found is not slicer-core", allow_module_level=True)

import vtk  # noqa: E402  (slicer-core brings VTK)


@dataclass
class SlicerScene:
    scene: slicer.vtkMRMLScene
    application_logic: slicer.vtkSlicerApplicationLogic
    module_logics: dict


def make_scene() -> SlicerScene:
    """A scene with the module logics a Qt-free application needs (as trame-slicer sets them up)."""
    scene = slicer.vtkMRMLScene()
    application = slicer.vtkSlicerApplicationLogic()
    application.SetMRMLScene(scene)
    colors = application.GetColorLogic()
    colors.SetMRMLScene(scene)
    colors.AddDefaultColorNodes()
    application.SetModuleLogic("Colors", colors)
    logics = {
        "Volumes": slicer.vtkSlicerVolumesLogic(),
        "Segmentations": slicer.vtkSlicerSegmentationsModuleLogic(),
        "Terminologies": slicer.vtkSlicerTerminologiesModuleLogic(),
        "SubjectHierarchy": slicer.vtkSlicerSubjectHierarchyModuleLogic(),
    }
    for name, logic in logics.items():
        logic.SetMRMLApplicationLogic(application)
        # slicer-core ships no terminology dictionaries; loading the defaults only logs that they are absent
        quiet = name == "Terminologies"
        if quiet:
            vtk.vtkObject.GlobalWarningDisplayOff()
        try:
            logic.SetMRMLScene(scene)
        finally:
            if quiet:
                vtk.vtkObject.GlobalWarningDisplayOn()
        application.SetModuleLogic(name, logic)
    return SlicerScene(scene, application, {"Colors": colors, **logics})


@pytest.fixture
def mrml_scene() -> SlicerScene:
    loaded = make_scene()
    yield loaded
    loaded.scene.Clear(True)


def add_slice_views(scene: slicer.vtkMRMLScene) -> None:
    """Red, yellow and green slice views, as Slicer's layout adds them (the logic moves them)."""
    for name, orientation in (("Red", "Axial"), ("Yellow", "Sagittal"), ("Green", "Coronal")):
        view = scene.AddNewNodeByClass("vtkMRMLSliceNode", name)
        view.SetLayoutName(name)
        view.SetOrientation(orientation)


def distances_to_slices(scene: slicer.vtkMRMLScene, point_ras: np.ndarray) -> list[float]:
    """How far (mm) ``point_ras`` lies from each slice view's plane."""
    collection = scene.GetNodesByClass("vtkMRMLSliceNode")
    distances = []
    for index in range(collection.GetNumberOfItems()):
        plane = collection.GetItemAsObject(index).GetSliceToRAS()
        normal, origin = (np.array([plane.GetElement(row, column) for row in range(3)]) for column in (2, 3))
        distances.append(abs(np.dot(normal, point_ras - origin)) / np.linalg.norm(normal))
    return distances
