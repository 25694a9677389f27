"""A simulated head around a brain: CSF rim, skull and scalp of random, uneven thickness.

The MNI152 maps, many segmentations and every real case here stop at the brain, while clinical FLAIR
usually shows the whole head; a network that never saw a skull mistakes bright scalp fat for lesions
(wmh-flair 0.3.0 lost a third of its Dice on real brains given a drawn head). Shells are laid at
distances from the brain surface, each thickness drawn per sample and made uneven by a smooth field:
on the synthetic anatomy's lattice (:func:`draw_head`), or around a real skull-stripped FLAIR
(:func:`draw_head_around_brain`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.volume import Geometry, Volume

from .anatomy import Lattice, Tissue
from .fields import smooth_noise

#: A skull-stripped image is zero outside the brain; above this share of non-zero voxels it is not.
MAX_BRAIN_FRACTION = 0.8


@dataclass(frozen=True)
class HeadSettings:
    """Thickness ranges of the shells around the brain (uniform draws, mm)."""

    csf_rim_mm: tuple[float, float] = (0.5, 3.0)
    skull_mm: tuple[float, float] = (4.0, 8.0)
    scalp_mm: tuple[float, float] = (3.0, 8.0)
    unevenness_mm: float = 1.5  # std of the smooth thickness variation
    unevenness_scale_mm: float = 12.0


@dataclass
class Head:
    """One drawn head: shell thicknesses and the lattice field of distances from the brain they apply to."""

    csf_rim_mm: float
    skull_mm: float
    scalp_mm: float
    distance: np.ndarray  # lattice: mm from the brain, made uneven

    def classes(self, distance_mm: np.ndarray) -> np.ndarray:
        """Tissue classes (uint8) of background points at ``distance_mm`` from the brain."""
        classes = np.zeros(distance_mm.shape, dtype=np.uint8)
        edges = np.cumsum([self.csf_rim_mm, self.skull_mm, self.scalp_mm])
        classes[distance_mm <= edges[2]] = Tissue.SCALP
        classes[distance_mm <= edges[1]] = Tissue.SKULL
        classes[distance_mm <= edges[0]] = Tissue.CSF
        return classes


def draw_head(rng: np.random.Generator, settings: HeadSettings, lattice: Lattice) -> Head:
    uneven = smooth_noise(rng, lattice.shape, settings.unevenness_scale_mm / lattice.spacing_mm)
    return Head(
        csf_rim_mm=float(rng.uniform(*settings.csf_rim_mm)),
        skull_mm=float(rng.uniform(*settings.skull_mm)),
        scalp_mm=float(rng.uniform(*settings.scalp_mm)),
        distance=lattice.brain_distance + settings.unevenness_mm * uneven,
    )


@dataclass(frozen=True)
class FlairHeadIntensities:
    """FLAIR intensities of the drawn shells, as multiples of the brain's median (uniform draws).

    On FLAIR the CSF signal is nulled and cortical bone gives none, while scalp fat and the fatty marrow
    between the skull's tables stay bright, as bright as lesions or brighter: the false positives to
    unlearn.
    """

    csf_rim: tuple[float, float] = (0.1, 0.5)
    skull: tuple[float, float] = (0.02, 0.3)
    marrow: tuple[float, float] = (0.4, 1.3)
    marrow_probability: float = 0.5
    scalp: tuple[float, float] = (0.7, 2.0)
    noise: tuple[float, float] = (0.0, 0.1)  # multiplicative, std


def draw_head_around_brain(
    image: Volume,
    labels: Volume,
    rng: np.random.Generator,
    shells: HeadSettings = HeadSettings(),
    intensities: FlairHeadIntensities = FlairHeadIntensities(),
) -> tuple[Volume, Volume]:
    """A skull-stripped FLAIR and its labels, padded, with a drawn head around the brain.

    The brain's voxels keep their values and their place in the world (the padding moves the origin),
    so the labels stay true; the new voxels are labelled background.
    """
    array = np.asarray(image.array, dtype=np.float32)
    brain = ndimage.binary_fill_holes(array > 0)
    if brain.mean() > MAX_BRAIN_FRACTION:
        raise InputError("a head can only be drawn around a skull-stripped image (zero outside the brain)")
    spacing_zyx = np.asarray(image.geometry.spacing[::-1], dtype=float)
    reach_mm = sum(high for _, high in (shells.csf_rim_mm, shells.skull_mm, shells.scalp_mm))
    pad = np.ceil((reach_mm + 3 * shells.unevenness_mm) / spacing_zyx).astype(int)
    widths = [(int(p), int(p)) for p in pad]
    array, brain = np.pad(array, widths), np.pad(brain, widths)

    uneven = smooth_noise(rng, array.shape, shells.unevenness_scale_mm / float(spacing_zyx.min()))
    distance = ndimage.distance_transform_edt(~brain, sampling=spacing_zyx) + shells.unevenness_mm * uneven
    head = Head(
        csf_rim_mm=float(rng.uniform(*shells.csf_rim_mm)),
        skull_mm=float(rng.uniform(*shells.skull_mm)),
        scalp_mm=float(rng.uniform(*shells.scalp_mm)),
        distance=distance,
    )
    classes = head.classes(np.where(brain, np.inf, distance))
    shell_values = np.zeros(array.shape, dtype=np.float32)
    shell_values[classes == Tissue.CSF] = rng.uniform(*intensities.csf_rim)
    shell_values[classes == Tissue.SKULL] = rng.uniform(*intensities.skull)
    shell_values[classes == Tissue.SCALP] = rng.uniform(*intensities.scalp)
    if rng.random() < intensities.marrow_probability:
        into_skull = distance - head.csf_rim_mm
        marrow = (into_skull > 0.3 * head.skull_mm) & (into_skull < 0.7 * head.skull_mm) & ~brain
        shell_values[marrow] = rng.uniform(*intensities.marrow)
    shell_values = ndimage.gaussian_filter(shell_values, 0.7 / spacing_zyx)
    noise = rng.standard_normal(array.shape, dtype=np.float32) * rng.uniform(*intensities.noise)
    shell_values *= np.clip(1 + noise, 0, None)
    median = float(np.median(array[brain & (array > 0)]))
    drawn = np.where(brain, array, shell_values * median).astype(np.float32)

    corner = image.geometry.index_to_world(-pad[None].astype(float))[0]
    geometry = Geometry(image.geometry.spacing, tuple(corner.tolist()), image.geometry.direction)
    drawn_labels = np.pad(np.asarray(labels.array), widths)
    return Volume(drawn, geometry), Volume(drawn_labels, geometry)
