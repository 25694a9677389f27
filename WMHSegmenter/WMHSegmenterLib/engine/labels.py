"""BraTS label conventions: which label values make up the tumor regions WT, TC and ET.

BraTS 2017-2022 label the enhancing tumor 4, BraTS 2023 onwards label it 3; necrotic/non-enhancing
core (1) and edema (2) are the same in both. Everything that reads or writes BraTS label maps (the
metrics, the predictor) asks this module, so a file from either era is read the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError

BRATS2018 = "brats2018"
BRATS2023 = "brats2023"
AUTO = "auto"
CONVENTIONS = (BRATS2018, BRATS2023)

NECROTIC_CORE = 1
EDEMA = 2
ENHANCING = {BRATS2018: 4, BRATS2023: 3}

REGIONS = ("wt", "tc", "et")
#: How a radiologist reads each region's name (tables, overlays).
REGION_NAMES = {"wt": "Whole tumor", "tc": "Tumor core", "et": "Enhancing tumor"}
#: Region name -> the tissue classes it unites; "enhancing" is resolved per convention.
REGION_TISSUES = {
    "wt": ("necrotic_core", "edema", "enhancing"),
    "tc": ("necrotic_core", "enhancing"),
    "et": ("enhancing",),
}

#: Float label files may carry rounding noise from resampling or conversion tools, never more.
LABEL_TOLERANCE = 1e-3


def region_labels(convention: str) -> dict[str, tuple[int, ...]]:
    """Region name -> the label values it is made of, e.g. {"wt": (1, 2, 4), "tc": (1, 4), "et": (4,)}."""
    _check_convention(convention)
    values = {"necrotic_core": NECROTIC_CORE, "edema": EDEMA, "enhancing": ENHANCING[convention]}
    return {region: tuple(values[tissue] for tissue in tissues) for region, tissues in REGION_TISSUES.items()}


def as_label_array(array: np.ndarray, source: str | Path | None = None) -> np.ndarray:
    """Integer labels from an integer or float file; a float file must hold whole numbers."""
    if np.issubdtype(array.dtype, np.integer):
        return array
    rounded = np.rint(array)
    if not np.allclose(array, rounded, atol=LABEL_TOLERANCE, equal_nan=False):
        raise InputError("not a label map (holds non-integer values)", source)
    return rounded.astype(np.int16)


def described_values(values: list, most: int = 4) -> str:
    """Stray values for a one-line error: the first few, and how many there are in all."""
    shown = ", ".join(f"{value:g}" for value in values[:most])
    return f"value(s) {shown}" if len(values) <= most else f"values {shown}, ... ({len(values)} in all)"


def detect_convention(labels: np.ndarray, source: str | Path | None = None) -> str | None:
    """The convention a label map was written in, or None when it has no enhancing tumor.

    Without enhancing tumor both conventions read the file identically, so None is not an error.
    """
    present = set(np.unique(as_label_array(labels, source)).tolist())
    unknown = sorted(present - {0, NECROTIC_CORE, EDEMA, *ENHANCING.values()})
    if unknown:
        raise InputError(
            f"not a BraTS label map: holds {described_values(unknown)} "
            "(its labels are 0, 1, 2 and 4, or 3 for enhancing tumor in BraTS 2023)",
            source,
        )
    has_2018, has_2023 = ENHANCING[BRATS2018] in present, ENHANCING[BRATS2023] in present
    if has_2018 and has_2023:
        raise InputError("holds both label 3 and label 4: mixes the BraTS 2023 and 2018 conventions", source)
    if has_2023:
        return BRATS2023
    return BRATS2018 if has_2018 else None


def resolve_convention(labels: np.ndarray, convention: str = AUTO, source: str | Path | None = None) -> str:
    """The convention to read ``labels`` with: the one given, or the detected one for "auto".

    Checks that every label value belongs to that convention, so a 2023 file read as 2018 (or a
    file with stray labels) fails loudly instead of silently losing the enhancing tumor.
    """
    if convention == AUTO:
        convention = detect_convention(labels, source) or BRATS2018
    _check_convention(convention)
    allowed = {0, NECROTIC_CORE, EDEMA, ENHANCING[convention]}
    unknown = sorted(set(np.unique(as_label_array(labels, source)).tolist()) - allowed)
    if unknown:
        raise InputError(
            f"labels {unknown} are not {convention} labels (expected {sorted(allowed)}); check --labels",
            source,
        )
    return convention


def region_masks(
    labels: np.ndarray, convention: str = AUTO, source: str | Path | None = None
) -> dict[str, np.ndarray]:
    """Boolean WT, TC and ET masks of a label map read in ``convention`` ("auto" detects it)."""
    labels = as_label_array(labels, source)
    convention = resolve_convention(labels, convention, source)
    return {region: np.isin(labels, values) for region, values in region_labels(convention).items()}


def convert_convention(labels: np.ndarray, target: str, source_convention: str = AUTO) -> np.ndarray:
    """The same label map written in ``target`` convention (only the enhancing-tumor value changes)."""
    labels = as_label_array(labels)
    source_convention = resolve_convention(labels, source_convention)
    _check_convention(target)
    converted = labels.copy()
    converted[labels == ENHANCING[source_convention]] = ENHANCING[target]
    return converted


def converted_value(value: int, target: str, source: str = BRATS2018) -> int:
    """One label value as ``target`` convention writes it (only the enhancing tumor's differs)."""
    _check_convention(target)
    return ENHANCING[target] if value == ENHANCING[source] else value


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise InputError(
            f"unknown BraTS label convention {convention!r} (use {', '.join(CONVENTIONS)} or auto)"
        )
