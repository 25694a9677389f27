"""Volumes keep their geometry through every file format, and outputs are written atomically."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import blob_volume, oblique_geometry
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.volume import Volume, read_channels, read_image, read_volume, write_volume


@pytest.mark.parametrize("extension", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_oblique_anisotropic_geometry_round_trips_through_each_format(tmp_path, extension):
    volume = blob_volume(geometry=oblique_geometry())
    path = write_volume(volume, tmp_path / f"image{extension}")
    again = read_volume(path)
    assert again.geometry.matches(volume.geometry, tolerance=1e-5)
    np.testing.assert_array_equal(again.array, volume.array)


def test_channel_maps_read_back_channel_first_on_their_grid_and_a_4d_series_is_refused(tmp_path):
    scalar = blob_volume(geometry=oblique_geometry())
    channels = scalar.with_array(np.stack([scalar.array, 2 * scalar.array]))
    for volume in (scalar, channels):
        again = read_channels(write_volume(volume, tmp_path / f"map{volume.array.ndim}.nii.gz"))
        assert again.geometry.matches(volume.geometry, tolerance=1e-5)
        np.testing.assert_array_equal(again.array, volume.array.reshape(-1, *volume.shape))
    series = sitk.JoinSeries([scalar.to_sitk(), scalar.to_sitk()])  # 2 volumes in time
    sitk.WriteImage(series, str(tmp_path / "series.nii.gz"))
    with pytest.raises(InputError, match="series.nii.gz: image is 4D; expected 3D channels"):
        read_channels(tmp_path / "series.nii.gz")


def test_written_file_carries_the_geometry_it_was_read_with_to_float32_precision(tmp_path):
    # NIfTI stores its affine as float32: a re-written oblique header may differ in the last bit (~3e-8 mm)
    original = write_volume(blob_volume(geometry=oblique_geometry()), tmp_path / "in.nii.gz")
    volume = read_volume(original)
    copy = read_volume(write_volume(volume.with_array(volume.array > 100), tmp_path / "out.nii.gz"))
    assert copy.shape == volume.shape
    assert copy.geometry.matches(volume.geometry, tolerance=1e-6)


def write_dicom_series(volume: Volume, folder, left_out=()):
    """One file a slice, as a scanner exports an MR series; ``left_out`` slices are not written."""
    image = sitk.Cast(volume.to_sitk(), sitk.sitkInt16)
    folder.mkdir()
    direction = volume.geometry.direction
    for k in range(image.GetDepth()):
        if k in left_out:
            continue
        slice_image = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "MR",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": "1.2.826.0.1.3680043.2.1125.2",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(map(str, position)),
            "0020|0037": "\\".join(map(str, direction[0::3][:3] + direction[1::3][:3])),
            "0018|0050": str(volume.geometry.spacing[2]),
            "0028|0030": "\\".join(map(str, volume.geometry.spacing[:2])),
        }
        for tag, value in tags.items():
            slice_image.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(slice_image)
    return folder


def test_dicom_series_folder_is_read_with_its_geometry(tmp_path):
    volume = blob_volume(shape=(5, 16, 12), geometry=oblique_geometry(spacing=(0.8, 0.8, 2.5), degrees=0))
    read = read_volume(write_dicom_series(volume, tmp_path / "series"))
    assert read.shape == volume.shape
    assert read.geometry.matches(volume.geometry, tolerance=1e-3)


def test_a_dicom_series_missing_a_slice_is_refused_not_read_on_an_averaged_spacing(tmp_path):
    volume = blob_volume(shape=(6, 16, 12), geometry=oblique_geometry(spacing=(0.8, 0.8, 2.5), degrees=0))
    folder = write_dicom_series(volume, tmp_path / "series", left_out=(3,))
    with pytest.raises(InputError, match="unevenly spaced \\(2.50-5.00 mm apart\\)") as raised:
        read_volume(folder)
    assert raised.value.path == str(folder)


def test_few_non_finite_voxels_are_zeroed_with_a_warning(caplog):
    volume = blob_volume()
    volume.array[0, 0, :3] = [np.nan, np.inf, -np.inf]
    checked = read_image_from(volume, caplog)
    assert np.isfinite(checked.array).all()
    assert "3 NaN/infinite voxels set to 0" in caplog.text


def read_image_from(volume: Volume, caplog):
    from WMHSegmenterLib.engine.volume import check_image

    with caplog.at_level("WARNING", logger="wmhseg"):
        return check_image(volume, "scan.nii.gz")


def test_existing_output_is_kept_without_overwrite(tmp_path):
    target = tmp_path / "mask.nii.gz"
    target.write_bytes(b"user's earlier work")
    with pytest.raises(InputError, match="output exists"):
        write_volume(blob_volume(), target)
    assert target.read_bytes() == b"user's earlier work"
    write_volume(blob_volume(), target, overwrite=True)
    assert read_image(target).shape == blob_volume().shape


def test_failed_write_leaves_no_partial_file(tmp_path):
    with pytest.raises(InputError, match="output must end in"):
        write_volume(blob_volume(), tmp_path / "mask.png")
    assert list(tmp_path.iterdir()) == []
