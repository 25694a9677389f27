"""Anatomies: tissue label maps that synthetic FLAIR images are drawn from, and the fields derived from them.

SynthSeg-style generators (Billot et al., Medical Image Analysis 2023, doi:10.1016/j.media.2023.102789)
need label maps, not images: contrast, resolution and artefacts are drawn anew for every sample. An
anatomy is read once (MNI152 tissue probability maps, any scan's tissue segmentation, or a phantom) and
the slow, fixed work is done then: ventricles are found, and distance fields the lesion and deformation
models need are computed on a coarse lattice, so that each sample only interpolates them.

Coordinates: "atlas mm" are array indices (z, y, x) times the anatomy's spacing, so voxel (0, 0, 0) lies at
0 mm. The lattice covers the anatomy plus a margin (room for a simulated skull) at ``LATTICE_MM``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import ndimage

from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.preprocessing import bounding_box
from WMHSegmenterLib.engine.volume import Geometry, Volume, read_volume

from .fields import refine_twice

#: Spacing of the lattice holding the derived fields; lesion shapes are interpolated from it, so it bounds
#: the smallest lesion (about 1.5 lattice spacings across).
LATTICE_MM = 2.0
#: Room around the anatomy for the simulated CSF rim, skull and scalp (at most 3 + 8 + 8 mm, plus unevenness).
HEAD_MARGIN_MM = 24.0
#: How far from the ventricle wall an enlargement of the ventricles still pushes tissue (e-folding, mm).
VENTRICLE_PUSH_DECAY_MM = 15.0
#: Smoothing (Gaussian std) of the push field that enlarges the ventricles.
PUSH_SMOOTHING_MM = 4.0
#: Bright-on-T1 grey matter of a template is deep grey matter when its core holds at least this (ml).
DEEP_GREY_MIN_ML = 1.0
#: A CSF cavity is a ventricle when all of it lies this deep below the brain surface...
VENTRICLE_MIN_DEPTH_MM = 8.0
#: ...and it holds at least this share of the largest such cavity (drops cisterns and the 4th ventricle).
VENTRICLE_MIN_SHARE = 0.2


class Tissue(IntEnum):
    """Classes of an anatomy; ``LESION`` appears only in the class map of a generated sample."""

    BACKGROUND = 0
    CSF = 1  # outside the lateral ventricles: sulci, cisterns, 3rd/4th ventricles, the rim under the skull
    GREY_MATTER = 2
    WHITE_MATTER = 3
    VENTRICLE = 4  # lateral ventricles: the reference for periventricular lesions and for atrophy
    SKULL = 5
    SCALP = 6
    LESION = 7
    DEEP_GREY_MATTER = 8  # basal ganglia and thalami: between cortex and white matter on FLAIR


BRAIN_TISSUES = (
    Tissue.CSF,
    Tissue.GREY_MATTER,
    Tissue.WHITE_MATTER,
    Tissue.VENTRICLE,
    Tissue.DEEP_GREY_MATTER,
)

#: FreeSurfer / SynthSeg label values (FreeSurferColorLUT) -> tissue classes. Lesion labels (77 WM
#: hypointensities) become white matter: synthetic lesions are placed afresh.
FREESURFER_CLASSES: dict[int, Tissue] = {
    **dict.fromkeys((2, 7, 16, 28, 41, 46, 60, 77, 85, 251, 252, 253, 254, 255), Tissue.WHITE_MATTER),
    **dict.fromkeys((3, 8, 17, 18, 42, 47, 53, 54), Tissue.GREY_MATTER),
    **dict.fromkeys((10, 11, 12, 13, 26, 49, 50, 51, 52, 58), Tissue.DEEP_GREY_MATTER),
    **dict.fromkeys((4, 5, 31, 43, 44, 63), Tissue.VENTRICLE),
    **dict.fromkeys((14, 15, 24), Tissue.CSF),
}
#: FSL FAST / SPM-style three-class segmentations.
THREE_CLASS_CLASSES: dict[int, Tissue] = {1: Tissue.CSF, 2: Tissue.GREY_MATTER, 3: Tissue.WHITE_MATTER}
CLASS_PRESETS = {"freesurfer": FREESURFER_CLASSES, "three_class": THREE_CLASS_CLASSES}

#: File names of the MNI152 maps: this project's copy, then nilearn's (nilearn/datasets/data/).
MNI_FILES = {
    "t1": ("t1.nii.gz", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"),
    "gm": ("gm.nii.gz", "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"),
    "wm": ("wm.nii.gz", "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"),
}


@dataclass
class Lattice:
    """Fields on a coarse grid in atlas mm: what lesion placement and deformation interpolate per sample."""

    spacing_mm: float
    origin_mm: np.ndarray  # atlas mm (z, y, x) of lattice point (0, 0, 0)
    tissue: np.ndarray  # uint8 tissue class at each lattice point (nearest anatomy voxel)
    ventricle_distance: np.ndarray  # mm to the ventricle wall, negative inside
    ventricle_push: np.ndarray  # (3, ...) mm displacement per mm of ventricle growth (toward the ventricle)
    push_volume_terms: np.ndarray  # (3, ...) det(I + g * d push/dx) = 1 + g t1 + g^2 t2 + g^3 t3
    white_matter_depth: np.ndarray  # mm from white matter points to the nearest other tissue
    white_fraction: np.ndarray  # share of white matter around each point, from the full-resolution labels
    brain_distance: np.ndarray  # mm from the brain (0 inside): where a simulated skull goes

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.tissue.shape)

    @cached_property
    def white_box(self) -> tuple[slice, slice, slice]:
        """The white matter's bounding box (plus 2 points): where lesions are drawn."""
        return bounding_box(self.tissue == Tissue.WHITE_MATTER, (2, 2, 2))

    @cached_property
    def refined_white_fraction(self) -> tuple[np.ndarray, np.ndarray]:
        """White matter shares on the twice-refined lattice of :attr:`white_box` where above 5 %, and
        that mask: the points lesion volumes are counted on (see lesions.py)."""
        fraction = refine_twice(self.white_fraction[self.white_box])
        inside = fraction > 0.05
        return fraction[inside], inside

    def to_atlas_mm(self, points: np.ndarray) -> np.ndarray:
        """Lattice indices (N, 3) -> atlas mm (N, 3)."""
        return self.origin_mm + np.asarray(points, dtype=float) * self.spacing_mm


@dataclass
class Anatomy:
    """A tissue label map with its geometry, its lattice fields and its anatomical axes."""

    name: str
    labels: np.ndarray  # (z, y, x) uint8 Tissue values
    geometry: Geometry
    lattice: Lattice
    has_head: bool  # True when skull and scalp come with the labels (else they are simulated)
    superior_axis: int  # array axis closest to head-foot: axial slices are stacked along it
    anterior_axis: int  # array axis closest to front-back: periventricular caps sit at its ends

    @property
    def spacing_zyx(self) -> np.ndarray:
        return np.asarray(self.geometry.spacing[::-1], dtype=float)

    @property
    def extent_mm(self) -> np.ndarray:
        return (np.asarray(self.labels.shape) - 1) * self.spacing_zyx

    @cached_property
    def brain_points_mm(self) -> np.ndarray:
        """(N, 3) atlas mm of the lattice points inside the brain: where random crops are centred."""
        return self.lattice.to_atlas_mm(np.argwhere(np.isin(self.lattice.tissue, BRAIN_TISSUES)))

    def brain_centre_mm(self) -> np.ndarray:
        """Atlas mm of the centre of the brain's bounding box: where whole-brain samples are centred."""
        points = self.brain_points_mm
        return (points.min(0) + points.max(0)) / 2


def build_anatomy(
    labels: np.ndarray, geometry: Geometry, name: str, ventricles_known: bool = True
) -> Anatomy:
    """An anatomy from a tissue label map; ventricles are derived from CSF when not labelled.

    ``ventricles_known=False`` forces the derivation even if the map has a ventricle label.
    """
    labels = np.asarray(labels, dtype=np.uint8).copy()
    unknown = sorted(set(np.unique(labels).tolist()) - {int(t) for t in Tissue if t != Tissue.LESION})
    if unknown:
        raise InputError(f"anatomy {name}: labels {unknown} are not tissue classes")
    spacing = np.asarray(geometry.spacing[::-1], dtype=float)
    if not ventricles_known or not np.any(labels == Tissue.VENTRICLE):
        labels[labels == Tissue.VENTRICLE] = Tissue.CSF
        labels[derive_ventricles(labels, spacing)] = Tissue.VENTRICLE
    if not np.any(labels == Tissue.VENTRICLE):
        raise InputError(f"anatomy {name}: no lateral ventricles found (periventricular lesions need them)")
    if not np.any(labels == Tissue.WHITE_MATTER):
        raise InputError(f"anatomy {name}: no white matter")
    has_head = bool(np.any(np.isin(labels, (Tissue.SKULL, Tissue.SCALP))))
    direction = geometry.direction_matrix  # columns: index axes x, y, z in LPS
    superior = 2 - int(np.argmax(np.abs(direction[2])))
    anterior = 2 - int(np.argmax(np.abs(direction[1])))
    if anterior == superior:
        anterior = (superior + 1) % 3
    return Anatomy(name, labels, geometry, build_lattice(labels, spacing), has_head, superior, anterior)


def derive_ventricles(labels: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """Lateral ventricles from CSF: the large CSF cavities enclosed deep inside the brain.

    CSF is eroded by about 1 mm so that thin sheets (sulci, the interhemispheric fissure) and the narrow
    openings between cavities vanish. A remaining component is a ventricle when all of it lies at least
    ``VENTRICLE_MIN_DEPTH_MM`` below the brain surface (fissures and cisterns reach the surface) and it
    holds at least ``VENTRICLE_MIN_SHARE`` of the largest such component (small pockets deep in sulci).
    The kept cores are then grown back through CSF by about 2 mm, restoring the eroded wall.
    """
    ventricles = np.zeros(labels.shape, dtype=bool)
    inside = np.isin(labels, BRAIN_TISSUES)
    if not inside.any():
        return ventricles
    box = bounding_box(inside, (2, 2, 2))
    labels = labels[box]
    csf = labels == Tissue.CSF
    steps = [max(1, int(round(1.0 / s))) for s in spacing_zyx]
    core = ndimage.binary_erosion(csf, _axis_structure(steps), border_value=0)
    components, count = ndimage.label(core)
    if count == 0:
        return ventricles
    brain = ndimage.binary_fill_holes(np.isin(labels, BRAIN_TISSUES))
    depth = ndimage.distance_transform_edt(brain, sampling=spacing_zyx)
    index = np.arange(1, count + 1)
    shallowest = ndimage.minimum(depth, components, index=index)
    sizes = ndimage.sum_labels(core, components, index=index)
    enclosed = shallowest >= VENTRICLE_MIN_DEPTH_MM
    if not enclosed.any():
        return ventricles
    keep = index[enclosed & (sizes >= VENTRICLE_MIN_SHARE * sizes[enclosed].max())]
    found = np.isin(components, keep)
    for _ in range(2):
        found = ndimage.binary_dilation(found, _axis_structure(steps)) & csf
    ventricles[box] = found
    return ventricles


def deep_grey_from_t1(labels: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """Deep grey matter (basal ganglia, thalami, brainstem nuclei) of a template, from its T1.

    On T1 these nuclei are brighter than cortex: grey matter brighter than the grey-matter median plus a
    quarter of the way to the white-matter median is a candidate. The thin cortical rim where grey meets
    white matter passes too, so candidates are opened by 2 voxels, cores under ``DEEP_GREY_MIN_ML``
    (1 voxel = 1 mm³ assumed, as in the template) are dropped, and the rest grown back 2 voxels into
    grey matter.
    """
    grey = labels == Tissue.GREY_MATTER
    white = labels == Tissue.WHITE_MATTER
    grey_median, white_median = float(np.median(t1[grey])), float(np.median(t1[white]))
    candidates = grey & (t1 > grey_median + 0.25 * (white_median - grey_median))
    core = ndimage.binary_opening(candidates, iterations=2)
    components, count = ndimage.label(core)
    if count == 0:
        return core
    sizes_ml = ndimage.sum_labels(core, components, index=np.arange(1, count + 1)) / 1000.0
    core = np.isin(components, np.flatnonzero(sizes_ml >= DEEP_GREY_MIN_ML) + 1)
    return ndimage.binary_dilation(core, iterations=2) & grey


def build_lattice(labels: np.ndarray, spacing_zyx: np.ndarray, lattice_mm: float = LATTICE_MM) -> Lattice:
    """The coarse fields of an anatomy; done once, since distance transforms are the slow part."""
    extent = (np.asarray(labels.shape) - 1) * spacing_zyx
    origin = np.full(3, -HEAD_MARGIN_MM)
    shape = np.ceil((extent + 2 * HEAD_MARGIN_MM) / lattice_mm).astype(int) + 1
    indices = []
    valid = []
    for axis in range(3):
        index = np.rint((origin[axis] + np.arange(shape[axis]) * lattice_mm) / spacing_zyx[axis]).astype(int)
        valid.append((index >= 0) & (index < labels.shape[axis]))
        indices.append(np.clip(index, 0, labels.shape[axis] - 1))
    tissue = labels[np.ix_(*indices)].copy()
    inside = valid[0][:, None, None] & valid[1][None, :, None] & valid[2][None, None, :]
    tissue[~inside] = Tissue.BACKGROUND
    fraction = (labels == Tissue.WHITE_MATTER).astype(np.float32)
    for axis in range(3):  # weights of trilinear interpolation from the lattice: a tent one lattice wide
        half = lattice_mm / spacing_zyx[axis]
        offsets = np.arange(-np.ceil(half) + 1, np.ceil(half))
        tent = 1.0 - np.abs(offsets) / half
        fraction = ndimage.correlate1d(fraction, tent / tent.sum(), axis=axis, mode="constant")
    white_fraction = fraction[np.ix_(*indices)]
    white_fraction[~inside] = 0.0

    ventricle = tissue == Tissue.VENTRICLE
    # signed distance to the wall, which lies half a lattice spacing beyond the last ventricle point
    outside = ndimage.distance_transform_edt(~ventricle, sampling=lattice_mm)
    inside = ndimage.distance_transform_edt(ventricle, sampling=lattice_mm)
    distance = (np.where(ventricle, -inside, outside) - np.where(ventricle, -0.5, 0.5) * lattice_mm).astype(
        np.float32
    )
    gradient = np.stack(np.gradient(distance, lattice_mm))
    weight = np.exp(-np.maximum(distance, 0) / VENTRICLE_PUSH_DECAY_MM)
    # smoothed so that the warp cannot fold where pushes from two walls meet (e.g. at the septum)
    push = ndimage.gaussian_filter(
        -weight * gradient, (0, PUSH_SMOOTHING_MM / lattice_mm, *(2 * (PUSH_SMOOTHING_MM / lattice_mm,)))
    ).astype(np.float32)
    white = tissue == Tissue.WHITE_MATTER
    brain = ndimage.binary_fill_holes(np.isin(tissue, BRAIN_TISSUES))
    return Lattice(
        spacing_mm=float(lattice_mm),
        origin_mm=origin,
        tissue=tissue,
        ventricle_distance=distance.astype(np.float32),
        ventricle_push=push,
        push_volume_terms=_determinant_terms(push, lattice_mm),
        white_matter_depth=ndimage.distance_transform_edt(white, sampling=lattice_mm).astype(np.float32),
        white_fraction=white_fraction,
        brain_distance=ndimage.distance_transform_edt(~brain, sampling=lattice_mm).astype(np.float32),
    )


def load_mni152(folder: str | Path) -> Anatomy:
    """The MNI152 2009a template (Fonov et al., NeuroImage 2011) from its T1 and GM/WM probability maps.

    ``folder`` holds t1/gm/wm.nii.gz or nilearn's file names (``pip install nilearn``; the files are in
    nilearn/datasets/data/). Inside the brain each voxel takes the most probable of CSF (1 - GM - WM),
    grey and white matter; deep grey matter is told from cortex by its T1 (:func:`deep_grey_from_t1`).
    The brain is the T1's non-zero region when the T1 is brain-extracted; when it shows the head, the
    brain is the closed GM+WM region and the head around it becomes skull (dark T1) and scalp (bright T1).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("MNI152 folder not found", folder)
    t1, grey, white = (read_volume(_find_file(folder, MNI_FILES[key])) for key in ("t1", "gm", "wm"))
    for other in (grey, white):
        if other.shape != t1.shape or not other.geometry.matches(t1.geometry):
            raise InputError("MNI152 maps are not on one grid", folder)
    scale = max(float(grey.array.max()), float(white.array.max()), 1e-6)
    box = bounding_box((t1.array > 0) | (grey.array > 0) | (white.array > 0), (4, 4, 4))
    grey_p = grey.array[box].astype(np.float32) / scale
    white_p = white.array[box].astype(np.float32) / scale
    t1_values = t1.array[box]
    tissue = ndimage.binary_fill_holes(
        ndimage.binary_closing(grey_p + white_p >= 0.5, ndimage.generate_binary_structure(3, 1), iterations=3)
    )
    head = ndimage.binary_fill_holes(t1_values > 0)
    outer = head & ~ndimage.binary_dilation(tissue, iterations=5)
    is_head_image = np.count_nonzero(outer) > 0.2 * np.count_nonzero(tissue)
    brain = tissue if is_head_image else head
    csf_p = np.clip(1.0 - grey_p - white_p, 0.0, 1.0)
    inner = (np.argmax(np.stack([csf_p, grey_p, white_p]), axis=0) + 1).astype(np.uint8)
    inner[~brain] = Tissue.BACKGROUND
    inner[deep_grey_from_t1(inner, t1_values)] = Tissue.DEEP_GREY_MATTER
    if is_head_image:
        outer = head & ~brain
        bright = t1_values > np.median(t1_values[outer])
        inner[outer & ~bright] = Tissue.SKULL
        inner[outer & bright] = Tissue.SCALP
    labels = np.zeros(t1.shape, dtype=np.uint8)
    labels[box] = inner
    return build_anatomy(labels, t1.geometry, f"mni152:{folder.name}", ventricles_known=False)


def anatomy_from_segmentation(
    volume: Volume, classes: Mapping[int, Tissue | int] | str, name: str = "segmentation"
) -> Anatomy:
    """An anatomy from any scan's tissue segmentation; ``classes`` maps its labels to :class:`Tissue`.

    ``classes`` may name a preset: "freesurfer" (aseg, SynthSeg) or "three_class" (FAST: 1 CSF, 2 GM,
    3 WM). Unlisted labels become background. Without a ventricle label, ventricles come from CSF.
    """
    if isinstance(classes, str):
        if classes not in CLASS_PRESETS:
            raise InputError(f"unknown class preset {classes!r}; use one of {sorted(CLASS_PRESETS)}")
        classes = CLASS_PRESETS[classes]
    values = np.asarray(volume.array)
    if values.ndim != 3:
        raise InputError(f"anatomy {name}: expected a 3D label map")
    lookup = np.zeros(int(max(values.max(), max(classes))) + 1, dtype=np.uint8)
    for value, tissue in classes.items():
        lookup[int(value)] = int(Tissue(tissue))
    labels = lookup[np.clip(values, 0, None).astype(np.int64)]
    return build_anatomy(labels, volume.geometry, name)


def load_segmentation(path: str | Path, classes: Mapping[int, Tissue | int] | str) -> Anatomy:
    """:func:`anatomy_from_segmentation` of a label file."""
    return anatomy_from_segmentation(read_volume(path), classes, name=Path(path).name)


def phantom_anatomy(
    spacing_mm: float = 2.0, with_head: bool = False, ventricle_scale: float = 1.0, folds: bool = True
) -> Anatomy:
    """A head-sized phantom of nested ellipsoids: no files needed (tests, demonstrations).

    Brain 120 x 150 x 130 mm (z, y, x) with a folded grey-matter ribbon around white matter, two lateral
    ventricles, two deep grey nuclei, a CSF rim and, with ``with_head``, skull and scalp.
    """
    radii = np.array([60.0, 75.0, 65.0])
    margin = 16.0 if with_head else 6.0
    shape = np.ceil(2 * (radii + margin) / spacing_mm).astype(int) + 1
    axes = [(np.arange(n) - (n - 1) / 2) * spacing_mm for n in shape]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)

    def ellipsoid(centre, semi_axes):
        return sum(((c - o) / r) ** 2 for c, o, r in zip((z, y, x), centre, semi_axes))

    brain = ellipsoid((0, 0, 0), radii)
    labels = np.zeros(shape, dtype=np.uint8)
    if with_head:
        labels[ellipsoid((0, 0, 0), radii + 14) <= 1] = Tissue.SCALP
        labels[ellipsoid((0, 0, 0), radii + 9) <= 1] = Tissue.SKULL
    labels[ellipsoid((0, 0, 0), radii + 3) <= 1] = Tissue.CSF
    labels[brain <= 1] = Tissue.GREY_MATTER
    ripple = 0.06 * np.sin(z / 6.0) * np.sin(y / 7.0) * np.sin(x / 5.0) if folds else 0.0
    labels[brain + ripple <= 0.88**2] = Tissue.WHITE_MATTER
    for side in (-1, 1):
        labels[ellipsoid((-5, 0, side * 24), (14, 18, 10)) <= 1] = Tissue.DEEP_GREY_MATTER
        ventricle = np.array([12.0, 28.0, 5.0]) * ventricle_scale
        labels[ellipsoid((8, -2, side * 10), ventricle) <= 1] = Tissue.VENTRICLE
    geometry = Geometry.identity(spacing=(spacing_mm,) * 3)
    return build_anatomy(labels, geometry, f"phantom{'-head' if with_head else ''}")


def _determinant_terms(displacement: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Coefficients of det(I + g J) in g, J the displacement's Jacobian: volume change for any growth g.

    For a 3x3 matrix J: det(I + gJ) = 1 + g tr(J) + g^2 (sum of principal 2x2 minors) + g^3 det(J).
    """
    j = [np.gradient(component, spacing_mm) for component in displacement]  # j[row][column]
    trace = j[0][0] + j[1][1] + j[2][2]
    minors = sum(j[a][a] * j[b][b] - j[a][b] * j[b][a] for a, b in ((0, 1), (0, 2), (1, 2)))
    determinant = (
        j[0][0] * (j[1][1] * j[2][2] - j[1][2] * j[2][1])
        - j[0][1] * (j[1][0] * j[2][2] - j[1][2] * j[2][0])
        + j[0][2] * (j[1][0] * j[2][1] - j[1][1] * j[2][0])
    )
    return np.stack([trace, minors, determinant]).astype(np.float32)


def _find_file(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    stem = names[0].split(".")[0]
    matches = sorted(p for p in folder.iterdir() if fnmatch.fnmatch(p.name, f"*_{stem}_*.nii*"))
    if len(matches) == 1:
        return matches[0]
    raise InputError(f"missing {stem} map (expected {' or '.join(names)})", folder)


def _axis_structure(steps: list[int]) -> np.ndarray:
    """A 6-connected cross reaching ``steps[axis]`` voxels along each axis (about 1 mm on fine grids)."""
    size = [2 * s + 1 for s in steps]
    structure = np.zeros(size, dtype=bool)
    centre = tuple(steps)
    for axis, step in enumerate(steps):
        index = list(centre)
        for offset in range(-step, step + 1):
            index[axis] = centre[axis] + offset
            structure[tuple(index)] = True
    return structure
