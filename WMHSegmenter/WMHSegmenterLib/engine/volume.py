"""Volumes with their geometry: reading, checking and atomic writing.

Arrays are in SimpleITK's index order (z, y, x); spacing and origin are (x, y, z) in mm and the
direction is a row-major 3x3 matrix in LPS world coordinates, exactly as ITK and Slicer's RAS->LPS
conversion expect. Keeping one convention everywhere is what keeps outputs on the input's grid.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import struct
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError

log = logging.getLogger("wmhseg")

WRITABLE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha")
READABLE_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
#: Non-finite voxels up to this fraction are zeroed with a warning; more means a broken file.
MAX_NONFINITE_FRACTION = 0.01
GRID_TOLERANCE = 1e-4
#: No head scan is wider than this along an axis (a head-and-neck field of view is about 300 mm): a
#: larger one means a header in other units, and resampling it to a model's grid would exhaust memory.
MAX_FIELD_OF_VIEW_MM = 600.0
#: No MRI voxel is finer than this (clinical scans 0.2-8 mm): a finer spacing means a header in other units.
MIN_SPACING_MM = 0.05
#: Slice gaps of a DICOM series may differ by this fraction of the typical gap (rounding in headers).
DICOM_GAP_TOLERANCE = 0.01
#: Multiplying by this turns LPS coordinates into RAS (as Slicer and NIfTI viewers show them) and back.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Geometry:
    """Where a voxel grid lies in the world: spacing and origin (x, y, z) in mm, direction row-major LPS."""

    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def identity(cls, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> Geometry:
        return cls(tuple(map(float, spacing)), tuple(map(float, origin)), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    def index_to_world(self, indices_zyx: np.ndarray) -> np.ndarray:
        """Voxel indices (N, 3) in (z, y, x) order to LPS world points (N, 3) in mm."""
        ijk = np.asarray(indices_zyx, dtype=float)[:, ::-1]
        return ijk * np.asarray(self.spacing) @ self.direction_matrix.T + np.asarray(self.origin)

    def matches(self, other: Geometry, tolerance: float = GRID_TOLERANCE) -> bool:
        return all(
            np.allclose(a, b, atol=tolerance)
            for a, b in (
                (self.spacing, other.spacing),
                (self.origin, other.origin),
                (self.direction, other.direction),
            )
        )


@dataclass
class Volume:
    """A 3D array (z, y, x), or several channels of one (c, z, y, x), with the geometry that places it."""

    array: np.ndarray
    geometry: Geometry

    @property
    def shape(self) -> tuple[int, int, int]:
        """The grid's shape (z, y, x), whatever the number of channels."""
        return tuple(self.array.shape[-3:])

    def to_sitk(self) -> sitk.Image:
        array = self.array.astype(np.uint8) if self.array.dtype == bool else self.array
        if array.ndim == 4:
            image = sitk.GetImageFromArray(np.moveaxis(array, 0, -1), isVector=True)
        else:
            image = sitk.GetImageFromArray(array)
        image.SetSpacing(self.geometry.spacing)
        image.SetOrigin(self.geometry.origin)
        image.SetDirection(self.geometry.direction)
        return image

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> Volume:
        geometry = Geometry(image.GetSpacing(), image.GetOrigin(), image.GetDirection())
        return cls(sitk.GetArrayFromImage(image), geometry)

    def with_array(self, array: np.ndarray) -> Volume:
        """The same grid holding other values (a mask, a probability map)."""
        if tuple(array.shape[-3:]) != self.shape:
            raise ValueError(f"array shape {array.shape} does not fit grid {self.shape}")
        return Volume(array, self.geometry)


def read_volume(path: str | Path) -> Volume:
    """Read a 3D scalar volume from NIfTI, NRRD, MetaImage or a DICOM series folder."""
    path = Path(path)
    image, nonfinite = _read_image_file(path)
    volume = Volume.from_sitk(_as_3d_scalar(image, path))
    _report_nonfinite(nonfinite, volume.array.size, path)  # ITK has already zeroed them in NIfTI files
    return volume


def read_channels(path: str | Path) -> Volume:
    """Read a map of one or more channels (c, z, y, x), as ``wmhseg segment --probabilities`` writes it."""
    path = Path(path)
    image, nonfinite = _read_image_file(path)
    if image.GetDimension() != 3:
        raise InputError(f"image is {image.GetDimension()}D; expected 3D channels", path)
    volume = Volume.from_sitk(image)
    array = volume.array[np.newaxis] if volume.array.ndim == 3 else np.moveaxis(volume.array, -1, 0)
    _report_nonfinite(nonfinite, array.size, path)
    return Volume(array, volume.geometry)


def _read_image_file(path: Path) -> tuple[sitk.Image, int]:
    """The image at ``path`` (a file or DICOM series folder) and its count of non-finite NIfTI voxels."""
    if not path.exists():
        raise InputError("file not found", path)
    if not os.access(path, os.R_OK):
        raise InputError("file is not readable (permission denied)", path)
    nifti = path.name.lower().endswith((".nii", ".nii.gz"))
    nonfinite = _scan_nifti(path) if nifti else 0
    try:
        image = _read_dicom_series(path) if path.is_dir() else sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise InputError(f"not a readable image ({_first_line(error)})", path) from None
    return image, nonfinite


def read_image(path: str | Path) -> Volume:
    """Read an MRI volume as float32 and check it can be segmented (see :func:`check_image`)."""
    volume = read_volume(path)
    return check_image(Volume(volume.array.astype(np.float32, copy=False), volume.geometry), path)


def check_image(volume: Volume, source: str | Path) -> Volume:
    """Refuse images no network should see; zero a few non-finite voxels with a warning."""
    spacing = np.asarray(volume.geometry.spacing)
    if volume.array.ndim != 3:
        raise InputError(f"expected a 3D volume, got {volume.array.ndim} dimensions", source)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(f"voxel spacing must be positive, got {tuple(spacing.tolist())}", source)
    if np.any(spacing < MIN_SPACING_MM):
        raise InputError(
            f"voxel spacing {_millimetres(spacing)} mm is finer than any MRI's ({MIN_SPACING_MM:g} mm): "
            "check the units of the header's spacing",
            source,
        )
    field_of_view = spacing * np.asarray(volume.array.shape[::-1])
    if np.any(field_of_view > MAX_FIELD_OF_VIEW_MM):
        raise InputError(
            f"field of view {_millimetres(field_of_view)} mm is larger than a head's (at most "
            f"{MAX_FIELD_OF_VIEW_MM:g} mm along an axis): check the header's voxel spacing, "
            f"{_millimetres(spacing)} mm",
            source,
        )
    finite = np.isfinite(volume.array)
    nonfinite = volume.array.size - int(np.count_nonzero(finite))
    if nonfinite:
        _report_nonfinite(nonfinite, volume.array.size, source)
        volume = volume.with_array(np.where(finite, volume.array, 0).astype(np.float32))
    if not np.any(volume.array):
        raise InputError("image is all zeros", source)
    return volume


def _millimetres(values: np.ndarray) -> str:
    return " x ".join(f"{value:g}" for value in values)


def write_volume(volume: Volume, path: str | Path, overwrite: bool = False) -> Path:
    """Write atomically: a temporary file beside the target, then a rename, so no half-written output."""
    path = Path(path)
    check_output_path(path, overwrite)
    temporary = path.with_name(f".{uuid.uuid4().hex[:8]}.partial-{path.name}")
    try:
        sitk.WriteImage(volume.to_sitk(), str(temporary), useCompression=True)
        _publish(temporary, path, overwrite)
    except RuntimeError as error:
        raise InputError(f"cannot write ({_first_line(error)})", path) from None
    finally:
        temporary.unlink(missing_ok=True)
    return path


def publish_file(write, path: str | Path, overwrite: bool = False) -> Path:
    """Atomically create ``path`` with ``write(temporary_path)``: for PNG, CSV and JSON outputs."""
    path = Path(path)
    check_output_path(path, overwrite, extensions=None)
    temporary = path.with_name(f".{uuid.uuid4().hex[:8]}.partial-{path.name}")
    try:
        write(temporary)
        _publish(temporary, path, overwrite)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def check_output_path(
    path: str | Path, overwrite: bool, extensions: tuple[str, ...] | None = WRITABLE_EXTENSIONS
) -> None:
    """Fail before any work is done if an output could not be written."""
    path = Path(path)
    if extensions is not None and not path.name.lower().endswith(extensions):
        raise InputError(f"output must end in one of {', '.join(extensions)}", path)
    if path.exists() and not overwrite:
        raise InputError("output exists (use --overwrite to replace it)", path)
    folder = path.parent if str(path.parent) else Path(".")
    if folder.exists() and not folder.is_dir():
        raise InputError("output folder is a file", folder)
    if not folder.is_dir():
        raise InputError("output folder does not exist", folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError("output folder is not writable", folder)


def same_file(first: str | Path, second: str | Path) -> bool:
    """Whether two paths name one file, through links and relative spellings alike."""
    first, second = Path(first), Path(second)
    if first.exists() and second.exists():
        return os.path.samefile(first, second)
    return first.resolve() == second.resolve()


def check_output_folder(path: str | Path) -> None:
    """Fail before any work is done if :func:`make_output_folder` could not make ``path`` a writable
    folder; nothing is created, so a command refused later (a wrong layer name) leaves no empty folder."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InputError("output folder is a file", folder)
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"output folder cannot be created ({existing} is a file)", folder)
    if not os.access(existing, os.W_OK | os.X_OK):
        problem = "is not writable" if existing == folder else "cannot be created (permission denied)"
        raise InputError(f"output folder {problem}", folder)


def make_output_folder(path: str | Path) -> Path:
    """The folder outputs go to, created with its parents, or refused in one line (a file in the way,
    no permission) before any work is done."""
    check_output_folder(path)
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # the checks above can be overtaken (a disk full, a folder removed meanwhile)
        raise InputError(f"output folder cannot be created ({error.strerror})", folder) from None
    return folder


def _publish(temporary: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)  # fails if the target appeared meanwhile: never clobbers
    except FileExistsError:
        raise InputError("output exists (use --overwrite to replace it)", path) from None


def _scan_nifti(path: Path) -> int:
    """Check what ITK lets pass silently, and count non-finite voxels, which ITK silently zeroes.

    ITK substitutes 1 mm for zero or negative voxel sizes and reads zeros past the end of a
    truncated file: both would give a plausible-looking, wrong result. Returns the number of
    NaN/infinite voxels so the caller can apply the same policy as for other formats.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            header = handle.read(348)
            order = next(
                (o for o in "<>" if len(header) == 348 and struct.unpack(o + "i", header[:4])[0] == 348), None
            )
            if order is None:
                raise InputError("not a readable image (not a NIfTI-1 header)", path)
            dims = struct.unpack(order + "8h", header[40:56])
            datatype, bits_per_voxel = struct.unpack(order + "2h", header[70:74])
            pixdim = struct.unpack(order + "8f", header[76:108])
            handle.read(max(int(struct.unpack(order + "f", header[108:112])[0]) - 348, 0))
            voxels = int(np.prod([max(d, 1) for d in dims[1 : dims[0] + 1]]))
            dtype = {16: np.dtype(order + "f4"), 64: np.dtype(order + "f8")}.get(datatype)
            data_bytes, nonfinite = 0, 0
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                data_bytes += len(chunk)
                if dtype is not None:
                    usable = len(chunk) - len(chunk) % dtype.itemsize
                    nonfinite += int(np.count_nonzero(~np.isfinite(np.frombuffer(chunk[:usable], dtype))))
    except (OSError, EOFError, zlib.error):
        raise InputError("not a readable image (corrupt or truncated file)", path) from None
    if data_bytes < voxels * bits_per_voxel // 8:
        raise InputError("not a readable image (file is truncated)", path)
    spatial = [pixdim[i] for i in range(1, min(dims[0], 3) + 1)]
    if any(not np.isfinite(v) or v <= 0 for v in spatial):
        raise InputError(f"voxel spacing must be positive, got {tuple(round(v, 4) for v in spatial)}", path)
    return nonfinite


def _report_nonfinite(count: int, total: int, source: str | Path) -> None:
    if count / total > MAX_NONFINITE_FRACTION:
        raise InputError(f"{count / total:.0%} of voxels are NaN or infinite", source)
    if count:
        log.warning("%s: %d NaN/infinite voxels set to 0", source, count)


def _read_dicom_series(folder: Path) -> sitk.Image:
    """One series, its slices evenly spaced: ITK reads a series with a missing slice on an averaged
    spacing (only a console warning), which would put every later slice, and the mask, out of place."""
    reader = sitk.ImageSeriesReader()
    with _itk_warnings_hidden():  # ITK's own lines for what the errors below say once
        series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise InputError("folder holds no DICOM series", folder)
    if len(series) > 1:
        raise InputError(f"folder holds {len(series)} DICOM series; give a folder with one", folder)
    files = reader.GetGDCMSeriesFileNames(str(folder), series[0])
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()  # each slice's header, from the same single read
    with _itk_warnings_hidden():
        image = reader.Execute()
    gaps = _slice_gaps_mm([_slice_position(reader, index) for index in range(len(files))])
    if gaps.size and (gaps.max() - gaps.min()) > max(DICOM_GAP_TOLERANCE * float(np.median(gaps)), 0.01):
        raise InputError(
            f"DICOM slices are unevenly spaced ({gaps.min():.2f}-{gaps.max():.2f} mm apart): missing "
            "or repeated slices; export the complete series",
            folder,
        )
    return image


def _slice_position(reader: sitk.ImageSeriesReader, index: int) -> tuple[np.ndarray, np.ndarray] | None:
    """A slice's position and normal from its header, or None where it has none (a multi-frame file)."""
    try:
        position = np.array([float(v) for v in reader.GetMetaData(index, "0020|0032").split("\\")])
        orientation = np.array([float(v) for v in reader.GetMetaData(index, "0020|0037").split("\\")])
    except (RuntimeError, ValueError):  # tag absent or not numbers: ITK's own reading decides
        return None
    if position.shape != (3,) or orientation.shape != (6,):
        return None
    return position, np.cross(orientation[:3], orientation[3:])


def _slice_gaps_mm(positions: list) -> np.ndarray:
    """Distances between neighbouring slices along the normal, in the reader's order; empty when
    fewer than three slices have a position (nothing to compare)."""
    if len(positions) < 3 or any(position is None for position in positions):
        return np.empty(0)
    normal = positions[0][1]
    along = np.array([float(position @ normal) for position, _ in positions])
    return np.abs(np.diff(along))


@contextlib.contextmanager
def _itk_warnings_hidden():
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _as_3d_scalar(image: sitk.Image, path: Path) -> sitk.Image:
    components = image.GetNumberOfComponentsPerPixel()
    if components > 1:
        raise InputError(f"image has {components} components per voxel; expected a scalar volume", path)
    size = image.GetSize()
    if image.GetDimension() == 4:
        if size[3] != 1:
            raise InputError(f"image is 4D with {size[3]} volumes; expected one 3D volume", path)
        image = image[:, :, :, 0]
        size = image.GetSize()
    if image.GetDimension() != 3 or min(size) < 2:
        raise InputError(f"image is 2D (size {'x'.join(map(str, size))}); expected a 3D volume", path)
    return image


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = next((line for line in lines if "ERROR" not in line and "Exception" not in line), "")
    return (detail or (lines[-1] if lines else type(error).__name__))[:200]
