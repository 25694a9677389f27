"""Preprocessing shared by the predictor and by training, so both see identical network inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .errors import InputError
from .postprocess import largest_island
from .resampling import check_overlap, resample, working_grid
from .volume import Geometry, Volume

#: Voxels darker than this fraction of the bright end (99.5th percentile) count as air.
HEAD_THRESHOLD_FRACTION = 0.05
#: Brain tissue on FLAIR is brighter than this fraction of the deep head's median; nulled CSF and
#: cortical bone, which part the brain from the scalp, are darker.
BRAIN_TISSUE_FRACTION = 0.5
#: "Deep" head: this far inside the head's surface (or half the deepest point, in a small field of view).
DEEP_HEAD_MM = 20.0
#: Erosion that cuts the brain from scalp and marrow across the dark CSF and inner table of the skull.
BRAIN_EROSION_MM = 4.0
#: Opening that sheds thin scalp still attached to the brain where the dark gap was narrow.
BRAIN_OPENING_MM = 6.0
#: The brain mask is widened by this much (inside the head) to keep the cortex's partial-volume edge.
BRAIN_MARGIN_MM = 2.0
#: The brain mask is found on a grid this coarse (mm), then brought back: the same mask, a quarter the time.
BRAIN_GRID_MM = 2.0
#: A value that fills at least this share of a scan, among its darkest 5 %, is its air stored as a constant.
AIR_FILL_SHARE = 0.01
#: Bias corrections a bundle's preprocessing may name.
BIAS_CORRECTIONS = (None, "n4", "n4_trimmed")
#: N4 estimates its smooth field on a grid this coarse (mm), then evaluates it on the working grid.
N4_GRID_MM = 4.0
#: ``n4_trimmed`` fits the field to the voxels below this percentile of the mask only: a large bright
#: tumour otherwise looks like shading and is dimmed with it (brats-glioma card, 0.5.5 section).
N4_TRIMMED_PERCENTILE = 85.0


def background_level(array: np.ndarray) -> float:
    """The value air is stored as, which the masks and the resampling's fill take as zero.

    A skull-stripped FLAIR stored with an offset (air at -1000, or z-scored by an earlier pipeline so
    that air is negative) would otherwise have no "bright" head at all and come back with an empty mask.
    Only a constant fill counts (the commonest dark value; a few darker voxels from bias correction
    do not move it), and a noisy background keeps 0: scans stored as usual are read as before.
    """
    sample = array[::2, ::2, ::2]
    dark = sample[sample <= np.percentile(sample, 5)]
    values, counts = np.unique(dark, return_counts=True)
    commonest = int(np.argmax(counts))
    return float(values[commonest]) if counts[commonest] >= AIR_FILL_SHARE * sample.size else 0.0


def head_mask(image: np.ndarray) -> np.ndarray:
    """Voxels belonging to the head (or brain, if skull-stripped): bright enough, holes filled."""
    sample = image[::2, ::2, ::2]
    positive = sample[sample > 0]
    if positive.size == 0:
        return np.ones(image.shape, dtype=bool)
    threshold = HEAD_THRESHOLD_FRACTION * float(np.percentile(positive, 99.5))
    mask = image > threshold
    # fill holes slice by slice along z: cheap, and catches dark CSF/ventricles inside the brain
    for index in range(mask.shape[0]):
        mask[index] = ndimage.binary_fill_holes(mask[index])
    return mask


def brain_mask(image: np.ndarray, spacing_zyx) -> np.ndarray:
    """The brain of a FLAIR with or without skull: on a skull-stripped scan, its head mask.

    Scalp fat and skull marrow are as bright as lesions on FLAIR and pull a whole-head z-score off the
    brain's; the network was trained mostly on brains. So: tissue brighter than half the deep head's
    median, eroded until dark CSF and bone part it from the scalp, its largest piece grown back through
    tissue, holes (ventricles, dark lesion cores) filled, opened to shed thin scalp still attached, and a
    small margin of dark voxels kept.
    """
    spacing = np.asarray(spacing_zyx, dtype=float)
    step = np.maximum(np.floor(BRAIN_GRID_MM / spacing), 1).astype(int)
    coarse_image = image[:: step[0], :: step[1], :: step[2]]
    coarse_spacing = spacing * step
    head = head_mask(coarse_image)
    depth = ndimage.distance_transform_edt(head, sampling=coarse_spacing)
    deep = depth > min(DEEP_HEAD_MM, 0.5 * float(depth.max()))
    if not deep.any():
        return head_mask(image)
    tissue = head & (coarse_image > BRAIN_TISSUE_FRACTION * float(np.median(coarse_image[deep])))
    core = largest_island(
        ndimage.distance_transform_edt(tissue, sampling=coarse_spacing) > BRAIN_EROSION_MM,
        face_connected=True,
    )
    # grown back through tissue only, so it cannot jump the dark gap to the scalp the erosion opened
    steps = int(np.ceil((BRAIN_EROSION_MM + BRAIN_MARGIN_MM) / float(coarse_spacing.min())))
    brain = ndimage.binary_dilation(core, iterations=steps, mask=tissue)
    brain = _fill_holes(brain)
    core = ndimage.distance_transform_edt(brain, sampling=coarse_spacing) > BRAIN_OPENING_MM
    brain &= largest_island(_within(core, BRAIN_OPENING_MM, coarse_spacing), face_connected=True)
    # the cortex's dark partial-volume edge, not the scalp beyond the gap
    brain |= _within(brain, BRAIN_MARGIN_MM, coarse_spacing) & ~tissue
    fine = np.ones(step, dtype=bool)
    upsampled = np.kron(brain, fine)[tuple(slice(0, n) for n in image.shape)]
    return upsampled & head_mask(image)


def _within(mask: np.ndarray, distance_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Voxels at most ``distance_mm`` from ``mask`` (a dilation by a ball, on an anisotropic grid)."""
    return ndimage.distance_transform_edt(~mask, sampling=spacing) <= distance_mm


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Holes closed in 3D, then slice by slice along z (ventricles open to the cut edge of a small field)."""
    filled = ndimage.binary_fill_holes(mask)
    for index in range(filled.shape[0]):
        filled[index] = ndimage.binary_fill_holes(filled[index])
    return filled


def bounding_box(mask: np.ndarray, margin_voxels) -> tuple[slice, slice, slice]:
    """The box around ``mask`` widened by a margin, clipped to the array; the whole array if empty."""
    if not mask.any():
        return tuple(slice(0, s) for s in mask.shape)
    box = []
    for axis, size in enumerate(mask.shape):
        others = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(mask.any(axis=others))
        start = max(int(present[0]) - int(margin_voxels[axis]), 0)
        stop = min(int(present[-1]) + 1 + int(margin_voxels[axis]), size)
        box.append(slice(start, stop))
    return tuple(box)


def zscore(channel: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance inside the mask; outside the mask 0 (the mean), as in training."""
    values = channel[mask]
    mean = float(values.mean()) if values.size else 0.0
    std = float(values.std()) if values.size else 1.0
    normalized = (channel - mean) / max(std, 1e-8)
    normalized[~mask] = 0.0
    return normalized.astype(np.float32, copy=False)


def require_bias_correction(correction: Any, source: str | Path | None = None) -> None:
    """Refuse a bias correction this engine does not know, naming where it was set."""
    if correction not in BIAS_CORRECTIONS:
        raise InputError(
            f"preprocessing.bias_correction must be one of {BIAS_CORRECTIONS}, got {correction!r}", source
        )


def n4_corrected(
    channel: np.ndarray,
    mask: np.ndarray,
    spacing_xyz: Sequence[float],
    fit_below_percentile: float | None = None,
) -> np.ndarray:
    """The channel divided by N4's estimate of its bias field (Tustison et al., IEEE TMI 2010).

    Receive-coil shading can make normal cortex as bright as edema; the network never sees it if
    training and inference divide it out alike. Voxels outside ``mask`` (or not above 0) only receive
    the field, they do not shape it; with ``fit_below_percentile``, neither do the mask's brightest.
    """
    fit_mask = mask & (channel > 0)
    if fit_below_percentile is not None and fit_mask.any():
        fit_mask &= channel < np.percentile(channel[fit_mask], fit_below_percentile)
    # N4 fits its field on at least two voxels along every axis: a slab one voxel thin has none to fit
    if not fit_mask.any() or min(channel.shape) < 2:
        return channel
    image = sitk.GetImageFromArray(channel.astype(np.float32, copy=False))
    image.SetSpacing([float(s) for s in spacing_xyz])
    mask_image = sitk.GetImageFromArray(fit_mask.astype(np.uint8))
    mask_image.CopyInformation(image)
    # coarser than the scan allows, the shrunk grid would lose an axis
    shrink = [max(1, min(int(N4_GRID_MM // s), n // 2)) for s, n in zip(image.GetSpacing(), image.GetSize())]
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([50, 50, 50])
    n4.Execute(sitk.Shrink(image, shrink), sitk.Shrink(mask_image, shrink))
    log_field = sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(image))
    return (channel / np.exp(log_field)).astype(np.float32, copy=False)


@dataclass
class PreparedCase:
    """What the network sees, and where it lies: the cropped working grid."""

    image: np.ndarray  # (channels, z, y, x), normalized
    geometry: Geometry  # of the cropped working grid
    labels: np.ndarray | None = None  # (z, y, x) on the same grid, when a reference was given
    region: np.ndarray | None = None  # (z, y, x) bool: where the z-score was taken (head or brain)


def resampled_with_air_at_zero(volume: Volume, geometry: Geometry, shape: Sequence[int]) -> np.ndarray:
    """``volume`` on the grid (``geometry``, ``shape``) as float32, shifted so its air is 0, as
    :func:`head_mask` and :func:`brain_mask` expect; outside the volume is air too."""
    air = background_level(volume.array)
    on_grid = resample(volume, geometry, shape, default=air).array.astype(np.float32, copy=False)
    return on_grid - np.float32(air) if air else on_grid


def prepare_case(
    inputs: Mapping[str, Volume],
    input_names: Sequence[str],
    settings: Mapping[str, Any],
    sources: Mapping[str, str | Path] | None = None,
    labels: Volume | None = None,
    within_brain: bool = False,
) -> PreparedCase:
    """Modalities onto the first one's grid, then the working grid (model spacing), head crop, z-score.

    ``settings`` is a bundle's preprocessing section. Training passes ``labels`` (nearest-neighbour
    resampled alongside) so its patches come from exactly the images the predictor would build.
    ``within_brain``: crop and z-score inside :func:`brain_mask` rather than the head, and blank the rest.
    """
    bias_correction = settings.get("bias_correction")
    require_bias_correction(bias_correction)
    sources = sources or {name: name for name in input_names}
    reference = inputs[input_names[0]]
    for name in input_names[1:]:
        check_overlap(reference, inputs[name], sources[name])
    geometry, shape = working_grid(reference, settings.get("spacing_xyz_mm", (None, None, None)))
    # air at 0 for the masks; the z-score below does not see the shift
    channels = [resampled_with_air_at_zero(inputs[name], geometry, shape) for name in input_names]
    mask = brain_mask(channels[0], geometry.spacing[::-1]) if within_brain else head_mask(channels[0])
    margin_mm = float(settings.get("crop_margin_mm", 10.0))
    box = bounding_box(mask, [int(np.ceil(margin_mm / s)) for s in geometry.spacing[::-1]])
    cropped_mask = mask[box]
    cropped_channels = [channel[box] for channel in channels]
    if bias_correction is not None:
        trim = N4_TRIMMED_PERCENTILE if bias_correction == "n4_trimmed" else None
        cropped_channels = [n4_corrected(c, cropped_mask, geometry.spacing, trim) for c in cropped_channels]
    image = np.stack([zscore(channel, cropped_mask) for channel in cropped_channels])
    cropped_origin = tuple(geometry.index_to_world(np.array([[b.start for b in box]]))[0].tolist())
    cropped = Geometry(geometry.spacing, cropped_origin, geometry.direction)
    label_array = None if labels is None else resample(labels, geometry, shape, linear=False).array[box]
    return PreparedCase(image, cropped, label_array, cropped_mask)
