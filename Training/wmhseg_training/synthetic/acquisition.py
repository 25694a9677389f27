"""Acquisition: slice thickness, pixel size, slice gaps and noise of a clinical FLAIR, resampled back.

Clinical FLAIR is often 2D, with 3-8 mm slices (plus gaps) and 0.4-1.2 mm pixels, sometimes 3D at about
1 mm; slices are mostly axial. Each sample draws such a protocol; the object is blurred with the slice
profile and pixel size (Gaussians whose full width at half maximum is the slice thickness or pixel
size, less the training grid's own resolution), sampled on the acquired grid with a random slice
position, given Rician noise there (magnitude of a complex Gaussian: real MRI noise, biased upward in
dark CSF), and interpolated back onto the training grid the way preprocessing resamples a real scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Gaussian std = FWHM / this.
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
SLICE_ORIENTATIONS = ("axial", "coronal", "sagittal")


@dataclass(frozen=True)
class AcquisitionSettings:
    """Ranges of the simulated protocol."""

    orientation_probabilities: tuple[float, float, float] = (0.8, 0.1, 0.1)  # axial, coronal, sagittal
    three_d_probability: float = 0.25  # isotropic 3D FLAIR instead of 2D slices
    three_d_mm: tuple[float, float] = (0.9, 1.3)
    thickness_mm: tuple[float, float] = (2.0, 8.0)  # 2D slice thickness, log-uniform
    slice_gap: tuple[float, float] = (0.0, 0.25)  # gap between 2D slices, as a share of the thickness
    in_plane_mm: tuple[float, float] = (0.4, 1.2)
    noise: tuple[float, float] = (0.01, 0.06)  # noise std relative to the brightest brain tissue


@dataclass
class Acquisition:
    """One drawn protocol, per array axis (z, y, x)."""

    orientation: str
    slice_axis: int
    resolution_mm: np.ndarray  # FWHM of the point spread along each axis
    spacing_mm: np.ndarray  # distance between acquired samples along each axis
    noise_std: float  # relative to the brightest brain tissue (``noise_scale`` in :func:`acquire`)

    def describe(self) -> str:
        """E.g. "ax 5.0/0.86mm": orientation, slice thickness / pixel size."""
        thickness = self.resolution_mm[self.slice_axis]
        in_plane = min(r for a, r in enumerate(self.resolution_mm) if a != self.slice_axis)
        return f"{self.orientation[:3]} {thickness:.1f}/{in_plane:.2f}mm"


def draw_acquisition(
    rng: np.random.Generator, settings: AcquisitionSettings, superior_axis: int, anterior_axis: int
) -> Acquisition:
    """A random protocol; ``superior_axis`` and ``anterior_axis`` name the array axes that axial and coronal
    slices are stacked along."""
    probabilities = np.asarray(settings.orientation_probabilities, dtype=float)
    orientation = SLICE_ORIENTATIONS[int(rng.choice(3, p=probabilities / probabilities.sum()))]
    lateral_axis = 3 - superior_axis - anterior_axis
    slice_axis = {"axial": superior_axis, "coronal": anterior_axis, "sagittal": lateral_axis}[orientation]
    resolution = np.empty(3)
    if rng.random() < settings.three_d_probability:
        resolution[:] = rng.uniform(*settings.three_d_mm)
        spacing = resolution.copy()
    else:
        resolution[:] = rng.uniform(*settings.in_plane_mm)
        low, high = settings.thickness_mm
        resolution[slice_axis] = np.exp(rng.uniform(np.log(low), np.log(high)))
        spacing = resolution.copy()
        spacing[slice_axis] *= 1.0 + rng.uniform(*settings.slice_gap)
    return Acquisition(orientation, slice_axis, resolution, spacing, float(rng.uniform(*settings.noise)))


def acquire(
    image: np.ndarray,
    spacing_zyx: np.ndarray,
    acquisition: Acquisition,
    noise_scale: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The object as scanned with ``acquisition`` and interpolated back onto its grid (float32).

    ``noise_scale`` turns the protocol's relative noise into intensity units (the brightest tissue's mean).
    """
    spacing_zyx = np.asarray(spacing_zyx, dtype=float)
    for axis in range(3):
        extra = acquisition.resolution_mm[axis] ** 2 - spacing_zyx[axis] ** 2
        sigma = np.sqrt(max(extra, 0.0)) / FWHM_PER_SIGMA / spacing_zyx[axis]
        if sigma > 0.25:
            image = ndimage.gaussian_filter1d(image, sigma, axis=axis, truncate=3.0, mode="nearest")
    steps = acquisition.spacing_mm / spacing_zyx
    resampled = [axis for axis in range(3) if steps[axis] > 1.01]
    positions, lengths = {}, image.shape
    for axis in resampled:
        phase = rng.uniform(0.0, steps[axis])
        positions[axis] = (
            np.arange(phase, image.shape[axis] - 1, steps[axis])
            if phase < image.shape[axis] - 1
            else np.zeros(1)
        )
        image = _linear_along(image, axis, positions[axis])
    sigma = acquisition.noise_std * noise_scale
    if sigma > 0:
        real = image + sigma * rng.standard_normal(image.shape, dtype=np.float32)
        imaginary = sigma * rng.standard_normal(image.shape, dtype=np.float32)
        image = np.sqrt(real * real + imaginary * imaginary)
    for axis in resampled:
        sampled = positions[axis]
        grid = np.arange(lengths[axis], dtype=float)
        image = _linear_along(image, axis, np.interp(grid, sampled, np.arange(len(sampled))))
    return image.astype(np.float32, copy=False)


def _linear_along(image: np.ndarray, axis: int, positions: np.ndarray) -> np.ndarray:
    """Values at fractional ``positions`` along ``axis`` by linear interpolation (clamped at the ends)."""
    positions = np.clip(positions, 0, image.shape[axis] - 1)
    lower = np.floor(positions).astype(np.intp)
    upper = np.minimum(lower + 1, image.shape[axis] - 1)
    weight = (positions - lower).astype(np.float32)
    shape = [1, 1, 1]
    shape[axis] = -1
    weight = weight.reshape(shape)
    below = np.take(image, lower, axis=axis)
    return below + weight * (np.take(image, upper, axis=axis) - below)
