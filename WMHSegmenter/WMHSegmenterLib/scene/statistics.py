"""A table node of label statistics: the numbers of the engine's quantify, shown inside Slicer.

The table is computed by the engine (not by Slicer's Segment Statistics) so the panel, the CLI's
CSV and the web app report identical volumes and lesion counts for the same label map.
"""

from __future__ import annotations

from collections.abc import Sequence

import slicer
import vtk

from ..engine.quantify import LabelStatistics, count_heading

#: (row attribute, column name, VTK array class, unit, description); the count's name is the task's
#: (:func:`count_heading`)
COLUMNS = (
    (
        "label",
        "Label",
        vtk.vtkStringArray,
        "",
        "label value in the label map (a region: the values it unites)",
    ),
    ("name", "Segment", vtk.vtkStringArray, "", "segment name"),
    ("voxels", "Voxels", vtk.vtkIntArray, "", "number of voxels"),
    ("volume_ml", "Volume", vtk.vtkDoubleArray, "ml", "volume in millilitres"),
    ("components", None, vtk.vtkIntArray, "", "separate connected components (26-neighbourhood)"),
)


def fill_statistics_table(
    table_node: slicer.vtkMRMLTableNode, rows: Sequence[LabelStatistics], task: str
) -> slicer.vtkMRMLTableNode:
    """Replace the table's contents with one row per label (and per tumor region)."""
    was_modifying = table_node.StartModify()
    table_node.RemoveAllColumns()
    for attribute, column, array_class, unit, description in COLUMNS:
        column = column or count_heading(task)
        array = array_class()
        array.SetName(column)
        for row in rows:
            array.InsertNextValue(getattr(row, attribute))
        table_node.AddColumn(array)
        table_node.SetColumnDescription(column, description)
        if unit:
            table_node.SetColumnUnitLabel(column, unit)
    table_node.EndModify(was_modifying)
    return table_node
