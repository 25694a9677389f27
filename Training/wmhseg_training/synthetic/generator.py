"""Synthetic FLAIR samples with white matter lesions, on the fly: anatomy -> deformation -> lesions -> image.

One sample: pick an anatomy, deform it, place lesions in its white matter, turn classes into intensities,
simulate the acquisition, z-score. The label map is fixed before any intensity is drawn: it is exactly the
lesions placed, and intensity, contrast and acquisition settings cannot change it. Every random choice
comes from the numpy Generator passed in, split into one seeded stream per stage, so the same seed gives
the same sample, and changing e.g. the contrast ranges leaves anatomy and lesions as they were.

Samples can be whole brains or small crops (``shape_zyx``) centred on a lesion, for patch training at a
fraction of the cost: lesions live in atlas space, so a crop shows exactly the lesions the whole brain of
the same draw would show there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.volume import Geometry, Volume

from .acquisition import AcquisitionSettings, acquire, draw_acquisition
from .anatomy import Anatomy, Tissue
from .deformation import (
    SpatialSettings,
    coarse_positions,
    draw_transform,
    map_to_atlas,
    sample_lattice,
    tissue_at,
    upsample,
)
from .head import HeadSettings, draw_head
from .intensity import CLASS_COUNT, ContrastSettings, draw_contrast, normalise, render
from .lesions import NO_LESION, LesionSettings, draw_lesions

CENTRES = ("brain", "lesion", "random")
#: The smooth parts of the map (affine, elastic, ventricle growth, head) are evaluated this far apart and
#: interpolated; lesions are read from their lattice at every white matter voxel.
COARSE_MM = 4.0


@dataclass(frozen=True)
class GeneratorSettings:
    """Everything a generator draws from; :meth:`from_mapping` reads it from a config section."""

    spacing_xyz_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    shape_zyx: tuple[int, int, int] = (160, 192, 160)  # whole-brain samples; crops ask for less
    skull_probability: float = 0.5  # keep (or simulate) skull and scalp; otherwise brain-extracted
    spatial: SpatialSettings = field(default_factory=SpatialSettings)
    head: HeadSettings = field(default_factory=HeadSettings)
    lesions: LesionSettings = field(default_factory=LesionSettings)
    contrast: ContrastSettings = field(default_factory=ContrastSettings)
    acquisition: AcquisitionSettings = field(default_factory=AcquisitionSettings)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> GeneratorSettings:
        """Settings from nested mappings (YAML); unknown keys are errors, lists become tuples."""
        return _dataclass_from_mapping(cls, values or {}, "generator")


@dataclass
class SyntheticSample:
    """A generated image with its lesion labels, on one grid."""

    image: Volume  # float32 (z, y, x), z-scored inside the head like the engine's preprocessing
    labels: Volume  # uint8 (z, y, x): 1 lesion, 0 anything else
    tissue: np.ndarray  # uint8 (z, y, x) Tissue classes; lesion voxels keep their tissue (white matter)
    info: dict[str, Any]  # what was drawn: anatomy, grade, volumes, contrast, protocol


class SyntheticFlairGenerator:
    """Draws :class:`SyntheticSample` s from one or more anatomies."""

    def __init__(self, anatomies: Sequence[Anatomy], settings: GeneratorSettings | None = None):
        if not anatomies:
            raise InputError("a synthetic generator needs at least one anatomy")
        self.anatomies = list(anatomies)
        self.settings = settings or GeneratorSettings()

    @property
    def spacing_zyx(self) -> np.ndarray:
        return np.asarray(self.settings.spacing_xyz_mm[::-1], dtype=float)

    def generate(
        self,
        rng: np.random.Generator,
        shape_zyx: Sequence[int] | None = None,
        centre: str | Sequence[float] = "brain",
        fazekas: int | None = None,
        volume_ml: float | tuple[float, float] | None = None,
    ) -> SyntheticSample:
        """One sample of ``shape_zyx`` voxels (default: the settings' whole-brain shape).

        ``centre``: "brain" (the brain's centre, jittered), "lesion" (a random lesion point; a random brain
        point when there is none), "random" (a random brain point) or atlas mm (z, y, x). ``fazekas`` (0-3)
        or ``volume_ml`` (a value or a range) fix the lesion load; by default it is drawn.
        """
        settings = self.settings
        shape = tuple(int(s) for s in (shape_zyx or settings.shape_zyx))
        spacing = self.spacing_zyx
        spatial_rng, lesion_rng, contrast_rng, acquisition_rng = (
            np.random.default_rng(seed) for seed in rng.integers(2**63, size=4)
        )

        anatomy = self.anatomies[int(spatial_rng.integers(len(self.anatomies)))]
        transform = draw_transform(spatial_rng, settings.spatial, (np.asarray(shape) - 1) * spacing)
        keep_head = bool(spatial_rng.random() < settings.skull_probability)
        head = (
            draw_head(spatial_rng, settings.head, anatomy.lattice)
            if keep_head and not anatomy.has_head
            else None
        )
        lesions = draw_lesions(anatomy, lesion_rng, settings.lesions, transform, fazekas, volume_ml)
        centre_mm = self._centre(anatomy, centre, lesions.points_mm, spatial_rng)

        step = max(1, int(round(COARSE_MM / float(spacing.min()))))
        coarse = map_to_atlas(anatomy, transform, centre_mm, shape, spacing, coarse_positions(shape, step))
        if head is not None:
            coarse = np.concatenate([coarse, sample_lattice(anatomy.lattice, head.distance, coarse)])
        fine = upsample(coarse, shape)
        tissue = tissue_at(anatomy, fine[:3])
        if head is not None:
            outside = tissue == Tissue.BACKGROUND
            tissue[outside] = head.classes(fine[3][outside])
        elif anatomy.has_head and not keep_head:
            tissue[np.isin(tissue, (Tissue.SKULL, Tissue.SCALP))] = Tissue.BACKGROUND
        white = tissue == Tissue.WHITE_MATTER
        lesion_field = np.full(shape, NO_LESION, dtype=np.float32)
        lesion_field[white] = sample_lattice(anatomy.lattice, lesions.field, fine[:3, white])[0]
        lesion = white & (lesion_field > 0)
        labels = lesion.astype(np.uint8)  # final: nothing below reads or writes it

        classes = tissue.copy()
        classes[lesion] = Tissue.LESION
        contrast = draw_contrast(contrast_rng, settings.contrast)
        image = render(classes, lesion_field, contrast, spacing, contrast_rng, settings.contrast)
        acquisition = draw_acquisition(
            acquisition_rng, settings.acquisition, anatomy.superior_axis, anatomy.anterior_axis
        )
        brightest = contrast.brightest_tissue()
        image = acquire(image, spacing, acquisition, brightest, acquisition_rng)
        fractions = _class_fractions(anatomy, lesions.field, head, keep_head)
        noise_std = acquisition.noise_std * brightest
        image = normalise(image, classes > 0, fractions, contrast, noise_std, spacing)

        geometry = _output_geometry(anatomy, centre_mm, shape, spacing)
        voxel_ml = float(np.prod(spacing)) / 1000.0
        info = {
            "anatomy": anatomy.name,
            "fazekas": lesions.fazekas,
            "lesion_ml_drawn": round(lesions.volume_ml, 3),
            "lesion_ml_in_sample": round(float(labels.sum()) * voxel_ml, 3),
            "ventricle_growth_mm": round(transform.ventricle_growth_mm, 2),
            "skull": keep_head and (head is not None or anatomy.has_head),
            "contrast": "flair" if contrast.flair_like else "random",
            "protocol": acquisition.describe(),
            "slice_axis": acquisition.slice_axis,
            "superior_axis": anatomy.superior_axis,
            "centre_mm": [round(float(c), 1) for c in centre_mm],
        }
        return SyntheticSample(Volume(image, geometry), Volume(labels, geometry), tissue, info)

    def _centre(
        self,
        anatomy: Anatomy,
        centre: str | Sequence[float],
        lesion_points: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        if not isinstance(centre, str):
            return np.asarray(centre, dtype=float)
        if centre not in CENTRES:
            raise ValueError(f"centre must be one of {CENTRES} or atlas mm, got {centre!r}")
        jitter = rng.normal(0.0, self.settings.spatial.centre_jitter_mm, 3)
        choice = rng.random()
        if centre == "brain":
            return anatomy.brain_centre_mm() + jitter
        if centre == "lesion" and len(lesion_points):
            return lesion_points[int(choice * len(lesion_points))]
        brain = anatomy.brain_points_mm
        return brain[int(choice * len(brain))]


def _class_fractions(anatomy: Anatomy, lesion_field: np.ndarray, head, keep_head: bool) -> np.ndarray:
    """Share of each class in the whole head of this sample, counted on the lattice (for z-scoring)."""
    lattice = anatomy.lattice
    classes = lattice.tissue.copy()
    if head is not None:
        outside = classes == Tissue.BACKGROUND
        classes[outside] = head.classes(head.distance[outside])
    elif anatomy.has_head and not keep_head:
        classes[np.isin(classes, (Tissue.SKULL, Tissue.SCALP))] = Tissue.BACKGROUND
    classes[(classes == Tissue.WHITE_MATTER) & (lesion_field > 0)] = Tissue.LESION
    counts = np.bincount(classes.ravel(), minlength=CLASS_COUNT).astype(float)
    counts[Tissue.BACKGROUND] = 0.0
    return counts / max(counts.sum(), 1.0)


def _output_geometry(anatomy: Anatomy, centre_mm: np.ndarray, shape, spacing_zyx: np.ndarray) -> Geometry:
    """The output grid: centred on the sample's centre in the anatomy's world, with the anatomy's axes."""
    source = anatomy.geometry
    centre_world = source.index_to_world((centre_mm / anatomy.spacing_zyx)[None])[0]
    half_xyz = ((np.asarray(shape) - 1) / 2 * spacing_zyx)[::-1]
    origin = centre_world - source.direction_matrix @ half_xyz
    return Geometry(tuple(spacing_zyx[::-1].tolist()), tuple(origin.tolist()), source.direction)


def _dataclass_from_mapping(cls, values: Mapping[str, Any], where: str):
    if not isinstance(values, Mapping):
        raise InputError(f"{where} must be a mapping")
    defaults = cls()
    names = {f.name for f in dataclasses.fields(cls)}
    arguments = {}
    for key, value in values.items():
        if key not in names:
            raise InputError(f"unknown key {where}.{key} (known: {', '.join(sorted(names))})")
        default = getattr(defaults, key)
        if dataclasses.is_dataclass(default):
            arguments[key] = _dataclass_from_mapping(type(default), value, f"{where}.{key}")
        else:
            arguments[key] = tuple(value) if isinstance(value, list) else value
    return cls(**arguments)
