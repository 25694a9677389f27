"""White matter lesions: periventricular caps and bands, deep punctate and confluent lesions.

Lesions are a field on the anatomy's lattice (atlas space), positive inside lesions, so a sample of any
size or position reads the same lesions: a patch around one lesion and a whole-brain sample of the same
draw agree. Two components make up the field:

* periventricular: log-probability falling linearly with the distance to the ventricles (decay length
  ``decay_mm``), raised at the frontal and occipital horns (caps), plus smooth noise that makes the band
  irregular. Thin caps and lining at low grades, a broad halo reaching into deep white matter at grade 3.
* deep: blobs around random seeds in white matter (favouring 10-40 mm from the ventricles, never within
  3 mm of the cortex), their edges made irregular by smooth noise: few small punctate foci at grade 1,
  larger ones that begin to merge at grade 2, many large ones merging into confluent lesions at grade 3.
  Seeds, not thresholded noise alone, keep a small load from turning into sub-voxel specks: each focus
  has a real size and the number of foci follows the volume.

Each component is thresholded so that the white matter above the threshold holds its share of the drawn
volume, counted on the lattice with each point weighted by its volume in the output (affine scaling,
the warp around growing ventricles). Volume ranges follow the Fazekas grade (see ``FAZEKAS_VOLUME_ML``);
the split between components, shapes and decay lengths are this generator's choices, following the
descriptions of the Fazekas scale (Fazekas et al., AJR 1987) and the finding that periventricular and
deep WMH grow together from the ventricles outward (DeCarli et al., Stroke 2005).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Anatomy, Tissue
from .deformation import SpatialTransform, growth_volume_factor
from .fields import interpolate_grid, refine_twice, smooth_noise

#: WMH volume (ml) per Fazekas grade: ranges of manually segmented WMH in 163 patients rated with the
#: Fazekas scale (Andere et al., Stroke 2020;51:ATP208, doi:10.1161/str.51.suppl_1.tp208): grade 1
#: 0.1-8.3 ml, grade 2 6.0-17.7 ml, grade 3 14.2-77.2 ml. Grade 0 has no lesion.
FAZEKAS_VOLUME_ML = ((0.0, 0.0), (0.1, 8.3), (6.0, 17.7), (14.2, 77.2))
#: Field value outside the white matter's bounding box: far from any lesion.
NO_LESION = -10.0
#: Deep foci are drawn out to this far beyond their radius (mm); their edge noise (clipped to
#: +-``EDGE_NOISE_LIMIT`` std, at most 2.5 mm each) never reaches further.
FOCUS_MARGIN_MM = 8.0
EDGE_NOISE_LIMIT = 2.0


@dataclass(frozen=True)
class LesionStyle:
    """Shape ranges of one Fazekas grade (uniform draws)."""

    periventricular_share: tuple[float, float]
    decay_mm: tuple[float, float]  # of the periventricular band: its thickness scale
    cap_gain: tuple[float, float]  # extra log-probability at the horns
    irregularity: tuple[float, float]  # noise amplitude on the band, in log-probability units
    blob_radius_mm: tuple[float, float]  # deep foci: punctate (small) to confluent (large, merging)
    blob_irregularity_mm: tuple[float, float]  # amplitude of the smooth noise on the foci's edges


STYLES = {
    1: LesionStyle((0.3, 0.7), (1.5, 3.0), (1.0, 2.0), (0.2, 0.5), (1.5, 3.5), (0.3, 1.0)),
    2: LesionStyle((0.5, 0.85), (3.0, 6.0), (0.5, 1.5), (0.4, 0.8), (2.5, 5.0), (0.5, 1.5)),
    3: LesionStyle((0.6, 0.9), (5.0, 10.0), (0.2, 1.0), (0.6, 1.2), (3.0, 8.0), (1.0, 2.5)),
}


@dataclass(frozen=True)
class LesionSettings:
    """How lesion load is drawn: a Fazekas grade, then a volume (log-uniform) in its range."""

    fazekas_probabilities: tuple[float, float, float, float] = (0.1, 0.3, 0.3, 0.3)
    volume_ml: tuple[float, float] | None = None  # a range that replaces the grade's
    edge_noise_mm: tuple[float, float] = (2.0, 3.0)  # correlation length of the deep foci's edge noise
    band_noise_mm: tuple[float, float] = (4.0, 7.0)  # of the periventricular band's irregularity


@dataclass
class LesionPlan:
    """The lesions of one sample, in atlas space."""

    fazekas: int
    volume_ml: float  # the drawn load, as it will be in the output
    field: np.ndarray  # on the lattice: > 0 inside lesions, roughly mm to the lesion's edge
    points_mm: np.ndarray  # (N, 3) atlas mm of lattice points inside lesions


def draw_lesions(
    anatomy: Anatomy,
    rng: np.random.Generator,
    settings: LesionSettings,
    transform: SpatialTransform,
    fazekas: int | None = None,
    volume_ml: float | tuple[float, float] | None = None,
) -> LesionPlan:
    """Lesions of a drawn (or given) grade and volume, placed in the anatomy's white matter."""
    grade, volume = _draw_load(rng, settings, fazekas, volume_ml)
    lattice = anatomy.lattice
    field = np.full(lattice.shape, NO_LESION, dtype=np.float32)
    if volume <= 0:
        return LesionPlan(0, 0.0, field, np.zeros((0, 3)))
    style = STYLES[max(grade, 1)]
    box = lattice.white_box
    white = lattice.tissue[box] == Tissue.WHITE_MATTER
    distance = np.abs(lattice.ventricle_distance[box])  # to the wall, from either side
    h = lattice.spacing_mm
    band_noise = smooth_noise(rng, white.shape, rng.uniform(*settings.band_noise_mm) / h)
    edge_noise = smooth_noise(rng, white.shape, rng.uniform(*settings.edge_noise_mm) / h)

    decay = rng.uniform(*style.decay_mm)
    caps = _cap_profile(anatomy, box) * rng.uniform(*style.cap_gain)
    periventricular = -distance / decay + np.log1p(caps) + rng.uniform(*style.irregularity) * band_noise
    share = rng.uniform(*style.periventricular_share)
    depth = lattice.white_matter_depth[box]
    deep = _deep_foci(
        rng, white & (depth >= 3.0) & (distance >= 4.0), distance, volume * (1 - share), style, h
    )
    deep += rng.uniform(*style.blob_irregularity_mm) * np.clip(
        edge_noise, -EDGE_NOISE_LIMIT, EDGE_NOISE_LIMIT
    )

    # Volumes are counted on the lattice refined twice (the values trilinear interpolation gives between
    # lattice points; lattice points alone overstate thin and punctate lesions), each point weighted by
    # its share of white matter in the full-resolution anatomy and by its volume in the output.
    fraction, inside = lattice.refined_white_fraction
    pv, deep_values = refine_twice(periventricular)[inside], refine_twice(deep)[inside]
    weights = fraction * ((h / 2) ** 3 / 1000.0 * transform.volume_ratio)
    weights *= refine_twice(_growth_factor(lattice, box, transform.ventricle_growth_mm))[inside]
    threshold_pv = _threshold_for_volume(pv, weights, volume * share)
    outside_pv = pv <= threshold_pv
    remaining = volume - float(weights[~outside_pv].sum())
    threshold_deep = _threshold_for_volume(deep_values[outside_pv], weights[outside_pv], remaining)
    field[box] = np.maximum((periventricular - threshold_pv) * decay, deep - threshold_deep)
    lesion = np.zeros(lattice.shape, dtype=bool)
    lesion[box] = white & (field[box] > 0)
    return LesionPlan(grade, float(volume), field, lattice.to_atlas_mm(np.argwhere(lesion)))


def _deep_foci(
    rng: np.random.Generator,
    eligible: np.ndarray,
    distance: np.ndarray,
    volume_ml: float,
    style: LesionStyle,
    spacing_mm: float,
) -> np.ndarray:
    """mm inside the nearest of enough random foci to hold ``volume_ml`` (negative outside them).

    Seeds are drawn among ``eligible`` points, favouring 10-40 mm from the ventricles (weight falling by
    e over 30 mm beyond 10 mm); each has a radius from the style's range.
    """
    field = np.full(eligible.shape, -100.0, dtype=np.float32)
    candidates = np.flatnonzero(eligible)
    if volume_ml <= 0 or candidates.size == 0:
        return field
    low, high = style.blob_radius_mm
    mean_ml = 4.0 / 3.0 * np.pi * (high**4 - low**4) / (4 * (high - low)) / 1000.0  # E[r^3], r uniform
    count = min(candidates.size, max(1, int(round(volume_ml / mean_ml))))
    weight = np.exp(-np.maximum(distance.ravel()[candidates] - 10.0, 0.0) / 30.0)
    seeds = rng.choice(candidates, size=count, replace=False, p=weight / weight.sum())
    radii = rng.uniform(low, high, count)
    reach = int(np.ceil((high + FOCUS_MARGIN_MM) / spacing_mm))  # beyond it the field is surely negative
    offsets = np.arange(-reach, reach + 1) * spacing_mm
    for seed, radius in zip(np.stack(np.unravel_index(seeds, eligible.shape), axis=1), radii):
        window = tuple(slice(max(c - reach, 0), min(c + reach + 1, n)) for c, n in zip(seed, eligible.shape))
        parts = [offsets[w.start - c + reach : w.stop - c + reach] for w, c in zip(window, seed)]
        distance_to_seed = np.sqrt(
            parts[0][:, None, None] ** 2 + parts[1][None, :, None] ** 2 + parts[2] ** 2
        )
        np.maximum(field[window], radius - distance_to_seed, out=field[window])
    return field


def _growth_factor(lattice, box: tuple[slice, ...], growth_mm: float) -> np.ndarray:
    """:func:`growth_volume_factor` on every other lattice point, interpolated: it varies smoothly."""
    sparse = tuple(slice(s.start, s.stop + 1, 2) for s in box)
    factor = growth_volume_factor(lattice, sparse, growth_mm)
    full = interpolate_grid(factor, [2 * n - 1 for n in factor.shape])
    shape = tuple(s.stop - s.start for s in box)
    full = np.pad(full, [(0, max(0, n - f)) for n, f in zip(shape, full.shape)], mode="edge")
    return full[tuple(slice(0, n) for n in shape)]


def _draw_load(
    rng: np.random.Generator,
    settings: LesionSettings,
    fazekas: int | None,
    volume_ml: float | tuple[float, float] | None,
) -> tuple[int, float]:
    """(grade, volume in ml): the grade picks the volume range, or a given volume picks the grade."""
    if volume_ml is None and settings.volume_ml is not None and fazekas is None:
        volume_ml = tuple(settings.volume_ml)
    if volume_ml is not None:
        low, high = (volume_ml, volume_ml) if np.isscalar(volume_ml) else volume_ml
        volume = _log_uniform(rng, float(low), float(high))
        grade = next((g for g in (1, 2, 3) if volume <= FAZEKAS_VOLUME_ML[g][1]), 3) if volume > 0 else 0
        return grade, volume
    if fazekas is None:
        probabilities = np.asarray(settings.fazekas_probabilities, dtype=float)
        fazekas = int(rng.choice(4, p=probabilities / probabilities.sum()))
    if fazekas not in (0, 1, 2, 3):
        raise ValueError(f"Fazekas grade must be 0-3, got {fazekas}")
    return fazekas, _log_uniform(rng, *FAZEKAS_VOLUME_ML[fazekas])


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    if low < 0 or high < low:
        raise ValueError(f"lesion volume range must satisfy 0 <= low <= high, got ({low}, {high})")
    if high <= 0:
        return 0.0
    low = max(low, 1e-3)
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _threshold_for_volume(values: np.ndarray, weights: np.ndarray, volume: float) -> float:
    """The value above which the weights add up to ``volume`` (+inf: nothing above).

    Only the top values are sorted: a lesion load is a small share of the white matter.
    """
    if volume <= 0 or values.size == 0:
        return float("inf")
    mean_weight = float(weights.mean())
    top = min(values.size, int(4 * volume / max(mean_weight, 1e-12)) + 16)
    while True:
        candidates = np.argpartition(-values, top - 1)[:top] if top < values.size else np.arange(values.size)
        order = candidates[np.argsort(-values[candidates], kind="stable")]
        total = np.cumsum(weights[order])
        if total[-1] >= volume or top == values.size:
            break
        top = min(values.size, 4 * top)
    count = int(np.searchsorted(total, volume))
    if count >= order.size:
        return float(values[order[-1]]) - 1e-3
    upper = values[order[count - 1]] if count > 0 else values[order[0]] + 1e-3
    return float(0.5 * (upper + values[order[count]]))


def _cap_profile(anatomy: Anatomy, box: tuple[slice, ...]) -> np.ndarray:
    """0 along the ventricles' middle, rising to 1 at and beyond their front and back ends (the horns)."""
    lattice = anatomy.lattice
    axis = anatomy.anterior_axis
    ventricle = np.argwhere(lattice.tissue == Tissue.VENTRICLE)[:, axis]
    low, high = ventricle.min(), ventricle.max()
    centre, half = (low + high) / 2, max((high - low) / 2, 1)
    along = np.arange(lattice.shape[axis])[box[axis]]
    profile = np.clip(np.abs(along - centre) / half, 0, 1.2) ** 4
    shape = [1, 1, 1]
    shape[axis] = -1
    return profile.reshape(shape).astype(np.float32)
