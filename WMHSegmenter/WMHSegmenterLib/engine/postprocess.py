"""From probabilities to label maps: argmax or nested sigmoid regions, then optional cleaning."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def labels_from_probabilities(
    probabilities: np.ndarray, activation: str, channel_labels: list[int]
) -> np.ndarray:
    """Softmax outputs: the most probable channel's label. Sigmoid outputs are nested regions
    (e.g. BraTS whole tumor > tumor core > enhancing): each channel above 0.5 paints its label
    over the previous ones, so the innermost region wins."""
    if activation == "softmax":
        lookup = np.asarray(channel_labels, dtype=np.uint8)
        return lookup[np.argmax(probabilities, axis=0)]
    labels = np.zeros(probabilities.shape[1:], dtype=np.uint8)
    for channel, label in zip(probabilities, channel_labels):
        labels[channel > 0.5] = label
    return labels


#: How an island is measured for ``min_island_fraction``: its voxel count, or its mean foreground probability.
ISLAND_MEASURES = ("size", "confidence")

#: Islands smaller than this share of the largest are measured 0 by confidence, so a small island
#: the network is sure of cannot displace a tumour (tumours seen beside a larger false island: >= 0.53).
CONFIDENT_ISLAND_MIN_SHARE = 0.25


def clean_islands(
    labels: np.ndarray,
    min_component_voxels: int = 0,
    min_island_fraction: float = 0.0,
    foreground_probability: np.ndarray | None = None,
    neck_mm: float = 0.0,
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """A bundle's island cleaning (its inference settings ``min_component_voxels``,
    ``min_island_fraction``, ``island_measure`` and ``island_neck_mm``), in one place for the
    predictor and for choosing it on held-out data.

    Foreground islands (26-connected, all labels together) smaller than ``min_component_voxels`` are
    removed, and so are islands whose measure is under ``min_island_fraction`` of the largest measure;
    the island of largest measure always stays, so cleaning never erases the one finding of a scan
    with a small lesion or tumour. A fraction of 1 keeps only that island. An island's measure is its
    size, or with ``foreground_probability`` (on the labels' grid) its mean probability, for islands
    of at least ``CONFIDENT_ISLAND_MIN_SHARE`` of the largest's size.

    A glioma is one connected lesion in most patients: on the BraTS cross-validation the network's
    second islands (20-61 ml, 23-70 % of the tumour's, 4 of 14 cases) were all false. But a false
    island can outgrow the tumour (a 150 ml one beside a 96 ml tumour on Brats18_2013_11_1; 4 of 6
    held-out cases of one 40-epoch cross-validation), so size alone does not tell tumour from
    artefact; in those four the tumour was the island the network was surest of (mean probability
    0.90-0.94 against 0.74-0.90). The price of any fraction: a small second focus goes too.

    With ``neck_mm`` > 0 an island is first split where it is narrower than a ball of that radius
    (``_pieces_at_necks``; ``spacing_zyx``: the labels' voxel size), and the pieces are measured and
    removed as islands are: a false region touching the tumour is otherwise kept with it (on the BraTS
    cross-validation a 3 mm neck cut one from Brats18_CBICA_AME_1, WT HD95 10.7 -> 5.8 mm).

    Returns ``labels`` itself when nothing is removed, so a caller can tell without comparing.
    """
    if not removes_islands(min_component_voxels, min_island_fraction):
        return labels
    components, sizes = (
        _islands(labels) if neck_mm <= 0 else _pieces_at_necks(labels > 0, neck_mm, spacing_zyx)
    )
    if not sizes.any():
        return labels
    measures = (
        sizes
        if foreground_probability is None
        else _mean_confidence(components, sizes, foreground_probability)
    )
    removed = (sizes < min_component_voxels) | (measures < min_island_fraction * measures.max())
    removed[0] = False
    removed[np.argmax(measures)] = False
    if not removed.any():
        return labels
    cleaned = labels.copy()
    cleaned[removed[components]] = 0
    return cleaned


#: Regions the island cleaning removes are told (and kept apart) from this size up: on the 14 BraTS
#: cases (13 trained on) the shipped model lost a region of 1.4-114 ml in 9, nearly all false, one
#: (1.5 ml) two-thirds tumour.
NOTED_REMOVED_ML = 1.0


def removed_regions(
    before: np.ndarray, after: np.ndarray, spacing_zyx: tuple[float, float, float], min_ml: float
) -> tuple[np.ndarray, list[float]]:
    """The regions (26-connected) labelled in ``before`` and not in ``after``, from ``min_ml`` up:
    their labels as ``before`` had them, and their volumes in ml, largest first. What a cleaning took
    away, so the user can be told and can look at it (a removed region can be true lesion)."""
    components, sizes = _islands(((before > 0) & (after == 0)).astype(np.uint8))
    volumes = sizes * float(np.prod(spacing_zyx)) / 1000.0
    shown = volumes >= min_ml
    shown[0] = False
    labels = np.where(shown[components], before, 0).astype(before.dtype, copy=False)
    return labels, sorted((float(v) for v in volumes[shown]), reverse=True)


def islands_largest_first(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Foreground islands (26-connected) numbered 1, 2, ... from the largest down (equal sizes in scan
    order), and their sizes in voxels in that order: island ``k`` is ``numbered == k``. The order a
    reader steps through lesions and removed regions in, and the number they keep one by."""
    components, sizes = _islands(labels)
    order = np.argsort(-sizes[1:], kind="stable") + 1
    rank = np.zeros(len(sizes), dtype=np.int32)
    rank[order] = np.arange(1, len(order) + 1)
    return rank[components], sizes[order]


def removes_islands(min_component_voxels: int, min_island_fraction: float) -> bool:
    """Whether cleaning with these settings can remove anything: no island is under 1 voxel, and a
    fraction of 0 keeps every island."""
    return min_component_voxels > 1 or min_island_fraction > 0


def _mean_confidence(components: np.ndarray, sizes: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Each island's mean probability; 0 for background and for islands too small to be measured so."""
    sums = np.bincount(components.ravel(), weights=probability.ravel(), minlength=len(sizes))
    means = sums / np.maximum(sizes, 1)
    means[sizes < CONFIDENT_ISLAND_MIN_SHARE * sizes.max()] = 0.0
    return means


def foreground_probability(foreground_channels: np.ndarray, activation: str) -> np.ndarray:
    """The probability that a voxel is any foreground, from the output channels but background's (as
    ``--probabilities`` writes them): their sum for softmax outputs; for nested sigmoid regions the
    outermost, i.e. the largest channel (BraTS: whole tumour)."""
    if activation == "softmax":
        return foreground_channels.sum(axis=0)
    return foreground_channels.max(axis=0)


def island_measure(settings: dict) -> str:
    """``island_measure`` of inference settings; bundles made before it measured islands by size."""
    return settings.get("island_measure", "size")


def island_fraction(settings: dict) -> float:
    """``min_island_fraction`` of inference settings; ``largest_component_only: true``, its name in
    bundles and runs made before the fraction existed, means 1 (the largest only)."""
    if settings.get("largest_component_only", False):
        return 1.0
    return float(settings.get("min_island_fraction", 0.0))


def largest_island(mask: np.ndarray, face_connected: bool = False) -> np.ndarray:
    """The largest connected piece of a mask's foreground (26-connected, or 6 with ``face_connected``)."""
    components, sizes = _islands(mask, face_connected)
    return components == np.argmax(sizes) if sizes.any() else np.zeros(mask.shape, dtype=bool)


def _pieces_at_necks(
    foreground: np.ndarray, neck_mm: float, spacing_zyx: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The foreground cut where it is narrower than a ball of radius ``neck_mm``: the islands left by
    eroding it with that ball are the cores, and every foreground voxel joins the core it reaches
    first through the foreground, so thin rims and fingers stay with their own lesion. An island with
    no core (thinner than the ball everywhere) stays one piece. Returns the piece number of each voxel
    (0 background) and each piece's size, as ``_islands`` does."""
    pieces = np.zeros(foreground.shape, dtype=np.int32)
    boxes = ndimage.find_objects(foreground.astype(np.uint8))
    if boxes:
        pieces[boxes[0]] = _grown_cores(foreground[boxes[0]], _ellipsoid(neck_mm, spacing_zyx))
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    return pieces, sizes


def _grown_cores(foreground: np.ndarray, ball: np.ndarray) -> np.ndarray:
    """Cores of the eroded foreground, grown back one voxel layer at a time inside it (where two
    meet, the higher-numbered wins), then coreless islands numbered after them."""
    cube = np.ones((3, 3, 3), dtype=bool)
    pieces, core_count = ndimage.label(ndimage.binary_erosion(foreground, ball), structure=cube)
    while True:
        grown = ndimage.grey_dilation(pieces, footprint=cube)
        reached = foreground & (pieces == 0) & (grown > 0)
        if not reached.any():
            break
        pieces[reached] = grown[reached]
    coreless, _ = ndimage.label(foreground & (pieces == 0), structure=cube)
    pieces[coreless > 0] = coreless[coreless > 0] + core_count
    return pieces


def _ellipsoid(radius_mm: float, spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """A ball of ``radius_mm`` on a grid of that voxel size (no extent along axes coarser than it)."""
    half = [int(radius_mm // step) for step in spacing_zyx]
    axes = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    return sum((axis * step / radius_mm) ** 2 for axis, step in zip(axes, spacing_zyx)) <= 1


def _islands(labels: np.ndarray, face_connected: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The island number of each voxel (0 background) and each island's size (background's counted 0)."""
    structure = None if face_connected else np.ones((3, 3, 3))
    components, _ = ndimage.label(labels > 0, structure=structure)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components, sizes


def refine_lesions_by_intensity(
    probability: np.ndarray, zscores: np.ndarray, zone_threshold: float = 0.3, fraction: float = 0.6
) -> np.ndarray:
    """Lesion voxels redrawn at the input's resolution from the input's own brightness.

    The network works on a coarser grid (WMH: 2 mm slices), so on a 1 mm scan a small lesion comes
    back as a blurred blob: its thin ends fall under 0.5 and are lost, and dark voxels around it come
    in. FLAIR lesions are by definition brighter than the tissue around them, so within each piece of
    ``probability >= zone_threshold`` the voxels brighter than ``fraction`` of that piece's typical
    lesion brightness (the median brain z-score of its ``probability >= 0.5`` voxels) are lesion, and
    confident voxels are dropped only when darker than half that. A piece whose confident voxels are
    not brighter than the brain is left as the network drew it. ``zscores``: the input image z-scored
    inside the brain, on the same grid as ``probability``.
    """
    confident = probability >= 0.5
    zone = probability >= zone_threshold
    pieces, count = ndimage.label(zone, structure=np.ones((3, 3, 3)))
    if count == 0:
        return confident
    medians = ndimage.median(zscores, np.where(confident, pieces, 0), index=np.arange(1, count + 1))
    medians = np.nan_to_num(np.asarray(medians, dtype=np.float64), nan=0.0)
    bright = medians > 0
    add_above = np.concatenate([[np.inf], np.where(bright, fraction * medians, np.inf)])[pieces]
    keep_above = np.concatenate([[np.inf], np.where(bright, 0.5 * fraction * medians, -np.inf)])[pieces]
    return (zone & (zscores >= add_above)) | (confident & (zscores >= keep_above))
