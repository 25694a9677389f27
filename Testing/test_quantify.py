"""Label statistics: volumes and lesion counts per label, and per tumor region for BraTS."""

from __future__ import annotations

import numpy as np

from WMHSegmenterLib.engine.labels import BRATS2023
from WMHSegmenterLib.engine.quantify import (
    count_heading,
    islands,
    label_statistics,
    summary,
    task_regions,
    write_islands_csv,
)
from WMHSegmenterLib.engine.volume import Geometry, Volume

BRATS_NAMES = {1: "Necrotic core", 2: "Edema", 4: "Enhancing tumor"}


def two_tumors() -> Volume:
    """Two separate tumors on a 1 × 1 × 2 mm grid (2 mm³ a voxel), every count known by hand."""
    labels = np.zeros((20, 30, 30), dtype=np.uint8)
    labels[2:6, 2:10, 2:10] = 2  # first tumor: 256 edema voxels around...
    labels[3:5, 4:8, 4:8] = 1  # ... 32 necrotic core voxels
    labels[3:5, 4:6, 4:6] = 4  # ... of which 8 are enhancing
    labels[12:14, 20:25, 20:25] = 4  # second tumor: 50 enhancing voxels, nothing else
    return Volume(labels, Geometry.identity(spacing=(1.0, 1.0, 2.0)))


def test_brats_rows_give_each_label_then_whole_tumor_core_and_enhancing_volumes():
    rows = label_statistics(two_tumors(), BRATS_NAMES, task_regions("brats"))
    table = {row.name: (row.label, row.voxels, row.volume_ml, row.components) for row in rows}
    assert [row.name for row in rows] == [
        "Necrotic core",
        "Edema",
        "Enhancing tumor",
        "Whole tumor (WT)",
        "Tumor core (TC)",
        "Enhancing tumor (ET)",
    ]
    assert table["Necrotic core"] == ("1", 24, 0.048, 1)
    assert table["Edema"] == ("2", 224, 0.448, 1)
    assert table["Enhancing tumor"] == ("4", 58, 0.116, 2)
    assert table["Whole tumor (WT)"] == ("1+2+4", 306, 0.612, 2)
    assert table["Tumor core (TC)"] == ("1+4", 82, 0.164, 2)
    assert table["Enhancing tumor (ET)"] == ("4", 58, 0.116, 2)


def test_regions_follow_the_2023_convention_where_enhancing_tumor_is_3():
    volume = two_tumors()
    written = volume.with_array(np.where(volume.array == 4, 3, volume.array).astype(np.uint8))
    rows = label_statistics(
        written, {1: "Necrotic core", 2: "Edema", 3: "Enhancing tumor"}, task_regions("brats", BRATS2023)
    )
    assert [(row.label, row.voxels) for row in rows[3:]] == [("1+2+3", 306), ("1+3", 82), ("3", 58)]


def test_wmh_has_no_region_rows_and_absent_labels_read_zero():
    empty = Volume(np.zeros((4, 5, 6), dtype=np.uint8), Geometry.identity())
    rows = label_statistics(empty, {1: "Lesion"}, task_regions("wmh"))
    assert [(row.label, row.name, row.voxels, row.volume_ml, row.components) for row in rows] == [
        ("1", "Lesion", 0, 0.0, 0)
    ]


def test_summary_counts_a_tumor_in_foci_and_white_matter_hyperintensities_in_lesions():
    tumor = label_statistics(two_tumors(), BRATS_NAMES, task_regions("brats"))
    line = summary(tumor, "brats")
    assert "Necrotic core: 0.05 ml in 1 focus; " in line
    assert line.endswith("Enhancing tumor (ET): 0.12 ml in 2 foci")
    wmh = label_statistics(two_tumors(), {4: "White matter hyperintensity"}, task_regions("wmh"))
    assert summary(wmh, "wmh") == "White matter hyperintensity: 0.12 ml in 2 lesions"
    assert summary(wmh[:0], "wmh") == ""
    assert (count_heading("brats"), count_heading("wmh")) == ("Foci", "Lesions")


def test_islands_come_largest_first_with_volume_labels_and_centre_in_ras(tmp_path):
    array = np.zeros((20, 20, 20), np.uint8)
    array[2:4, 2:4, 2:4] = 1  # 8 voxels
    array[10:15, 6:9, 12:20] = 2  # 120 voxels, mean index (z, y, x) (12, 7, 15.5)
    array[12, 7, 12] = 4  # inside it: the same island
    geometry = Geometry((2.0, 1.0, 1.0), (10.0, 20.0, 30.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    first, second = islands(Volume(array, geometry))
    assert (first.voxels, first.labels, second.voxels, second.labels) == (120, (2, 4), 8, (1,))
    assert first.volume_ml == 120 * 2.0 / 1000
    # LPS (15.5 * 2 + 10, 7 + 20, 12 + 30) is RAS (-41, -27, 42)
    np.testing.assert_allclose(first.centre_ras_mm, (-41.0, -27.0, 42.0))
    assert islands(Volume(np.zeros_like(array), geometry)) == []

    table = write_islands_csv([first, second], {1: "Core", 2: "Edema", 4: "Enhancing"}, tmp_path / "l.csv")
    assert table.read_text().splitlines() == [
        "number,labels,voxels,volume_ml,centre_r_mm,centre_a_mm,centre_s_mm",
        "1,Edema+Enhancing,120,0.24,-41.0,-27.0,42.0",
        "2,Core,8,0.016,-15.0,-22.5,32.5",
    ]
