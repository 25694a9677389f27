"""Image intensities from a class map: a random Gaussian mixture, texture, partial voluming, bias field.

Following SynthSeg (Billot et al., Medical Image Analysis 2023), every class draws a mean and a spread
per sample, voxels draw from that Gaussian, and the result is blurred so that class boundaries become
partial-volume mixtures before noise is added (see acquisition.py). Most samples keep FLAIR's ordering,
the rest get fully random tissue contrast so the network learns shape, not a particular contrast; in
both, lesions are brighter than white matter, the one property every WMH image shares.

FLAIR ranges are relative to white matter (= 1). Measured on the two open_ms FLAIRs (Lesjak et al.,
Neuroinformatics 2017): CSF about 0.15 of the tissue mode, lesions 1.33-1.35 at their median and
1.5-1.6 at their 90th percentile. Grey/white contrast on FLAIR is weak and sequence dependent (about
1.0 on these 3D FLAIRs); the ranges below cover that and the stronger contrast of 2D FLAIR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .anatomy import BRAIN_TISSUES, Tissue
from .fields import control_point_field

CLASS_COUNT = len(Tissue)


@dataclass(frozen=True)
class ContrastSettings:
    """Ranges of the intensity model (uniform draws; FLAIR means relative to white matter)."""

    flair_probability: float = 0.8
    csf: tuple[float, float] = (0.05, 0.35)
    ventricle_vs_csf: tuple[float, float] = (0.8, 1.2)
    grey_matter: tuple[float, float] = (0.98, 1.3)
    deep_grey_share: tuple[float, float] = (0.1, 0.7)  # deep grey = white + share * (cortex - white)
    lesion: tuple[float, float] = (1.25, 2.0)
    skull: tuple[float, float] = (0.02, 0.3)
    scalp: tuple[float, float] = (0.5, 2.0)
    random_lesion_contrast: tuple[float, float] = (0.1, 0.5)  # lesion - white matter, random-contrast mode
    within_class_std: tuple[float, float] = (0.02, 0.1)  # of the white matter mean
    texture: tuple[float, float] = (0.0, 0.06)  # smooth relative variation within each tissue
    texture_spacing_mm: float = 16.0
    lesion_rim_mm: tuple[float, float] = (0.5, 3.0)  # lesions reach full contrast this far inside
    lesion_edge_contrast: float = 0.4  # share of the lesion contrast at its very edge
    partial_volume_mm: tuple[float, float] = (0.5, 1.0)  # Gaussian std of the blur before noise
    bias_log_std: tuple[float, float] = (0.0, 0.2)
    bias_spacing_mm: float = 64.0


@dataclass
class Contrast:
    """One drawn intensity model."""

    flair_like: bool
    means: np.ndarray  # (CLASS_COUNT,) by Tissue value
    stds: np.ndarray
    textures: np.ndarray
    lesion_rim_mm: float
    edge_contrast: float
    partial_volume_mm: float
    bias_log_std: float

    def brightest_tissue(self) -> float:
        """The brightest brain tissue's mean: the signal that noise levels are relative to."""
        return float(self.means[list(BRAIN_TISSUES)].max())

    def mean_lesion(self) -> float:
        """Average lesion intensity over the rim-to-core profile."""
        white, lesion = self.means[Tissue.WHITE_MATTER], self.means[Tissue.LESION]
        return float(white + (lesion - white) * (1 + self.edge_contrast) / 2)


def draw_contrast(rng: np.random.Generator, settings: ContrastSettings) -> Contrast:
    """Class means and spreads for one sample: FLAIR-like ordering, or (sometimes) any contrast."""
    flair_like = bool(rng.random() < settings.flair_probability)
    means = np.zeros(CLASS_COUNT)
    if flair_like:
        means[Tissue.WHITE_MATTER] = 1.0
        means[Tissue.CSF] = rng.uniform(*settings.csf)
        means[Tissue.VENTRICLE] = means[Tissue.CSF] * rng.uniform(*settings.ventricle_vs_csf)
        means[Tissue.GREY_MATTER] = rng.uniform(*settings.grey_matter)
        share = rng.uniform(*settings.deep_grey_share)
        means[Tissue.DEEP_GREY_MATTER] = 1.0 + share * (means[Tissue.GREY_MATTER] - 1.0)
        means[Tissue.LESION] = rng.uniform(*settings.lesion)
        means[Tissue.SKULL] = rng.uniform(*settings.skull)
        means[Tissue.SCALP] = rng.uniform(*settings.scalp)
    else:
        tissues = [t for t in Tissue if t not in (Tissue.BACKGROUND, Tissue.LESION)]
        means[tissues] = rng.uniform(0.0, 1.0, len(tissues))
        means[Tissue.LESION] = means[Tissue.WHITE_MATTER] + rng.uniform(*settings.random_lesion_contrast)
    scale = means[Tissue.WHITE_MATTER] if flair_like else 1.0
    stds = rng.uniform(*settings.within_class_std, CLASS_COUNT) * scale
    textures = rng.uniform(*settings.texture, CLASS_COUNT)
    means[Tissue.BACKGROUND] = stds[Tissue.BACKGROUND] = textures[Tissue.BACKGROUND] = 0.0
    return Contrast(
        flair_like=flair_like,
        means=means,
        stds=stds,
        textures=textures,
        lesion_rim_mm=float(rng.uniform(*settings.lesion_rim_mm)),
        edge_contrast=float(settings.lesion_edge_contrast),
        partial_volume_mm=float(rng.uniform(*settings.partial_volume_mm)),
        bias_log_std=float(rng.uniform(*settings.bias_log_std)),
    )


def render(
    classes: np.ndarray,
    lesion_depth_mm: np.ndarray,
    contrast: Contrast,
    spacing_zyx: np.ndarray,
    rng: np.random.Generator,
    settings: ContrastSettings,
) -> np.ndarray:
    """The noise-free object (float32): mixture draws, lesion profile, texture, partial volume, bias.

    ``lesion_depth_mm`` (the lesion field, roughly mm inside a lesion) shades lesions from
    ``edge_contrast`` of their contrast at the edge to full contrast ``lesion_rim_mm`` inside.
    """
    means = contrast.means.astype(np.float32)
    image = means[classes]
    lesion = classes == Tissue.LESION
    if lesion.any():
        profile = np.clip(lesion_depth_mm[lesion] / contrast.lesion_rim_mm, 0.0, 1.0)
        profile = contrast.edge_contrast + (1 - contrast.edge_contrast) * profile
        white = means[Tissue.WHITE_MATTER]
        image[lesion] = white + (means[Tissue.LESION] - white) * profile
    texture = control_point_field(rng, classes.shape, spacing_zyx, settings.texture_spacing_mm)
    image *= 1.0 + contrast.textures.astype(np.float32)[classes] * texture
    image += contrast.stds.astype(np.float32)[classes] * rng.standard_normal(classes.shape, dtype=np.float32)
    sigma = contrast.partial_volume_mm / spacing_zyx
    image = ndimage.gaussian_filter(image, sigma, truncate=3.0)
    if contrast.bias_log_std > 0:
        bias = control_point_field(rng, classes.shape, spacing_zyx, settings.bias_spacing_mm)
        image *= np.exp(contrast.bias_log_std * bias)
    return image


def normalise(
    image: np.ndarray,
    foreground: np.ndarray,
    fractions: np.ndarray,
    contrast: Contrast,
    noise_std: float,
    spacing_zyx: np.ndarray,
) -> np.ndarray:
    """Z-score as the engine does (zero mean, unit std inside the head, 0 outside), from the model.

    The statistics are those of the whole head, computed from the class ``fractions`` (by Tissue value,
    over the head) and the drawn means and spreads, not from the voxels at hand: a patch is then scaled
    exactly as the whole image it is part of would be, as in training on real cases.
    """
    means = contrast.means.copy()
    means[Tissue.LESION] = contrast.mean_lesion()
    mean = float(np.sum(fractions * means))
    blur = contrast.partial_volume_mm / np.asarray(spacing_zyx)
    shrink = min(1.0, float(np.prod(1.0 / (2.0 * np.sqrt(np.pi) * np.maximum(blur, 1e-3)))))
    variance = float(np.sum(fractions * ((means - mean) ** 2 + shrink * contrast.stds**2))) + noise_std**2
    normalised = (image - mean) / np.float32(max(np.sqrt(variance), 1e-6))
    normalised[~foreground] = 0.0
    return normalised.astype(np.float32, copy=False)
