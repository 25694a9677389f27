"""A simulated head around a brain-only anatomy: CSF rim, skull and scalp of random, uneven thickness.

The MNI152 maps and many segmentations stop at the brain, while clinical FLAIR usually shows the whole
head; a network that never saw a skull would mistake bright scalp fat for lesions. Shells are laid at
distances from the brain surface, each thickness drawn per sample and made uneven by a smooth field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Lattice, Tissue
from .fields import smooth_noise


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
