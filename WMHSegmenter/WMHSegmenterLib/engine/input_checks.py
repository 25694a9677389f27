"""Content checks of a case's scans, for what runs without error and segments wrongly.

**Two scans given in each other's place.** On the bundled BraTS sample, FLAIR and T2 swapped took
tumour-core Dice from 0.80 to 0.09 (43 ml of core where there are 2), T1 and T1ce swapped took
enhancing-tumour Dice from 0.68 to 0.39. File names do not settle which scan is which (a series named
"T2" may be a T2-FLAIR), so the images are asked, from the physics of the sequences:

- CSF is dark on T1 and on FLAIR and bright on T2, so inside the brain a FLAIR's intensity ranks go
  with the T1's more than a T2's do.
- A contrast agent only adds signal, so the T1ce minus the T1 (each z-scored) has a bright tail and
  no dark one: its skewness is positive.

Measured through the BraTS bundle's preprocessing on the 14 BraTS 2018 cases and the two open_ms
patients (T1post as the T1ce): in the right order the FLAIR's rank correlation with the T1 exceeds the
T2's by 0.12 to 0.88 (0.12 to 0.80 with the T1ce in the T1's place) and the skewness is 1.2 to 5.9;
swapped, both change sign, so all 16 pass and all 32 swaps are caught. Other swaps (a T1 given as
FLAIR, say) are not checked.

**A skull on a scan for a model that never saw one** (BraTS data are skull-stripped). The brain mask
the WMH model relies on (``preprocessing.brain_mask``) covers most of a skull-stripped FLAIR's head
mask and about half of a FLAIR with a head: on a 3 mm grid 0.82 to 0.96 of it on the same 16 FLAIRs,
0.39 to 0.57 with a head drawn around each (``scripts/skull_composite.py``, seed 20261202); no real
skull-on FLAIR with a glioma was at hand. With a head drawn around the BraTS sample's FLAIR, the
shipped BraTS model's whole-tumour Dice fell from 0.77 to 0.17 (321 ml marked where there are 38: the
z-score taken over the head shifts the whole brain), and the swap check above flagged FLAIR and T2
falsely: its statistics were measured on stripped brains, so a scan with its skull gets the skull
warning alone.

The checks warn, they do not refuse: a scan unlike these may break their rule, and the reader knows
the series.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .preprocessing import PreparedCase, brain_mask, head_mask, resampled_with_air_at_zero
from .resampling import working_grid
from .tasks import SKULL_STRIPPED_TASKS
from .volume import Volume

#: Rank correlations are estimated on at most this many brain voxels (evenly spaced, so repeatable).
MAX_SAMPLES = 200_000
#: Below this share of the head in the brain mask, a scan is taken to have its skull (measured above).
SKULL_STRIPPED_MIN_BRAIN_SHARE = 0.7
#: The grid the share is measured on, mm: the measurement above used it; 0.18 s for a BraTS FLAIR
#: (2 mm: 0.6-0.9 s, the same separation).
SKULL_CHECK_GRID_MM = 3.0
#: How the warnings name each input.
INPUT_LABELS = {"flair": "FLAIR", "t1": "T1", "t1ce": "T1ce", "t2": "T2"}


def input_warnings(
    task: str,
    inputs: Mapping[str, Volume],
    names: Sequence[str],
    prepared: PreparedCase,
    sources: Mapping[str, str | Path],
) -> list[str]:
    """Every check's warning for one case of ``task``: ``inputs`` as read, ``prepared`` from them by
    ``prepare_case``. For a task whose data are skull-stripped a skull is checked for first, on the
    first input (its FLAIR)."""
    first = names[0]
    if task in SKULL_STRIPPED_TASKS and (skull := skull_warning(inputs[first], sources.get(first, first))):
        return [skull]
    return swapped_modality_warnings(prepared.image, names, prepared.region, sources)


def swapped_modality_warnings(
    image: np.ndarray,
    names: Sequence[str],
    region: np.ndarray,
    sources: Mapping[str, str | Path],
) -> list[str]:
    """One line per pair of inputs that look swapped, naming both files; empty when none do.

    ``image``: (channels, z, y, x) in the order of ``names``; ``region``: the brain (or head) voxels.
    """
    channels = {name: image[index][region] for index, name in enumerate(names)}
    warnings = []
    t1_like = channels.get("t1", channels.get("t1ce"))
    flair_and_t2 = {"flair", "t2"} <= channels.keys() and t1_like is not None
    if flair_and_t2 and flair_t2_margin(channels["flair"], channels["t2"], t1_like) < 0:
        evidence = "CSF is bright in the first and dark in the second"
        warnings.append(_swap_warning("flair", "t2", sources, evidence))
    if {"t1", "t1ce"} <= channels.keys() and enhancement_skewness(channels["t1"], channels["t1ce"]) < 0:
        evidence = "the first, not the second, shows contrast enhancement"
        warnings.append(_swap_warning("t1", "t1ce", sources, evidence))
    return warnings


def flair_t2_margin(flair: np.ndarray, t2: np.ndarray, t1: np.ndarray) -> float:
    """How much more the FLAIR's ranks go with the T1's than the T2's do; negative when swapped."""
    step = max(1, flair.size // MAX_SAMPLES)
    t1_ranks = _ranks(t1[::step])
    return _correlation(_ranks(flair[::step]), t1_ranks) - _correlation(_ranks(t2[::step]), t1_ranks)


def enhancement_skewness(t1: np.ndarray, t1ce: np.ndarray) -> float:
    """Skewness of T1ce minus T1, each z-scored: positive when the contrast agent is in the T1ce."""
    difference = _standardized(t1ce) - _standardized(t1)
    centred = difference - difference.mean()
    spread = centred.std()
    return float((centred**3).mean() / spread**3) if spread > 0 else 0.0


def _swap_warning(first: str, second: str, sources: Mapping[str, str | Path], evidence: str) -> str:
    given = [f"the {INPUT_LABELS[name]} given ({sources.get(name, name)})" for name in (first, second)]
    return (
        f"{given[0]} and {given[1]} look swapped: {evidence}. "
        "A swapped pair gives a wrong segmentation; check which scan is which"
    )


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing their average rank (Spearman's way). Written here: scipy.stats
    would do it, but importing it costs a fresh process 0.4-1 s."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # where each run of ties begins
    ends = np.r_[starts[1:], values.size]
    ranks = np.empty(values.size)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _standardized(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64, copy=False)
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else values - values.mean()


def skull_warning(flair: Volume, source: str | Path) -> str | None:
    """A line naming ``source`` when its FLAIR looks skull-on: for models trained on stripped brains."""
    share = brain_share_of_head(flair)
    if share >= SKULL_STRIPPED_MIN_BRAIN_SHARE:
        return None
    return (
        f"{source} looks like a scan with its skull (the brain is {share:.0%} of the head): this model was "
        "trained on skull-stripped scans and segments skull-on ones wrongly; strip the skull first"
    )


def brain_share_of_head(flair: Volume) -> float:
    """The share of a FLAIR's head mask that its brain mask covers: near 1 when skull-stripped."""
    geometry, shape = working_grid(flair, (SKULL_CHECK_GRID_MM,) * 3)
    coarse = resampled_with_air_at_zero(flair, geometry, shape)
    head = head_mask(coarse)
    return float(brain_mask(coarse, geometry.spacing[::-1]).sum() / max(int(head.sum()), 1))
