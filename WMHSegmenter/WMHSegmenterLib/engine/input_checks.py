"""Content checks of a case's scans, for what runs without error and segments wrongly.

**Two scans given in each other's place.** On the bundled BraTS sample, FLAIR and T2 swapped took
tumour-core Dice from 0.80 to 0.09 (43 ml of core where there are 2), T1 and T1ce swapped took
enhancing-tumour Dice from 0.68 to 0.39. File names do not settle which scan is which (a series named
"T2" may be a T2-FLAIR), so the images are asked, from the physics of the sequences:

- Scans of one weighting go together: the T1 with the T1ce, the FLAIR with the T2. Of the three ways
  to split four scans into two pairs, the given one ({FLAIR, T2} and {T1, T1ce}) must have the
  largest sum of the two pairs' rank correlations; a scan of one weighting given in place of one of
  the other (a T1 as the FLAIR, say) changes which split that is.
- Within those pairs, CSF is dark on T1 and on FLAIR and bright on T2, so inside the brain a FLAIR's
  intensity ranks go with the T1's more than a T2's do.
- A contrast agent only adds signal, so the T1ce minus the T1 (each z-scored) has a bright tail and
  no dark one: its skewness is positive.

Measured through the BraTS bundle's preprocessing on the 14 BraTS 2018 cases and the two open_ms
patients (T1post as the T1ce), the head mask taken from the scan given first as at inference: in the
right order no check warns (the given split leads the next by 0.34 to 1.8 in summed correlation); each
of the 64 swaps across the weightings (FLAIR or T2 with T1 or T1ce) is warned of by the split check
alone; of the 32 swaps within a weighting the split check warns of none, as it cannot see them, and
the pair checks catch 31: in the right order the FLAIR's rank correlation with the T1 exceeds the
T2's by 0.12 to 0.88 and the skewness is 1.2 to 5.9, and both change sign when swapped, but with the
head mask drawn from the swapped T2 Brats18_2013_20_1's FLAIR and T2 (margin 0.12 in the right order)
pass unwarned. The split check was devised after looking at the right order's correlations of these
16 subjects (runs/s34/pairs/RULE.md on the development machine); no other subjects were at hand.

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

import functools
from collections.abc import Callable, Mapping, Sequence
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
#: The scans that share a weighting, as the names say: T2-weighted, T1-weighted.
WEIGHTINGS = (frozenset({"flair", "t2"}), frozenset({"t1", "t1ce"}))


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
    step = max(1, int(np.count_nonzero(region)) // MAX_SAMPLES)

    @functools.cache
    def ranks(name: str) -> np.ndarray:
        return _ranks(channels[name][::step])

    if WEIGHTINGS[0] | WEIGHTINGS[1] <= channels.keys():
        alike = most_alike_pairing(ranks)
        if alike != WEIGHTINGS:  # the checks below assume each pair is right
            return [_mixed_weightings_warning(alike, sources)]
    warnings = []
    t1_like = next((name for name in ("t1", "t1ce") if name in channels), None)
    flair_and_t2 = {"flair", "t2"} <= channels.keys() and t1_like is not None
    if flair_and_t2 and flair_t2_margin(ranks("flair"), ranks("t2"), ranks(t1_like)) < 0:
        evidence = "CSF is bright in the first and dark in the second"
        warnings.append(_swap_warning("flair", "t2", sources, evidence))
    if {"t1", "t1ce"} <= channels.keys() and enhancement_skewness(channels["t1"], channels["t1ce"]) < 0:
        evidence = "the first, not the second, shows contrast enhancement"
        warnings.append(_swap_warning("t1", "t1ce", sources, evidence))
    return warnings


def most_alike_pairing(ranks: Callable[[str], np.ndarray]) -> tuple[frozenset, frozenset]:
    """The split of the four scans into two pairs whose scans go together most (the largest sum of the
    two pairs' rank correlations; ``ranks``: a scan's, by name), the FLAIR's pair first: a FLAIR goes
    with the T2 and a T1 with the T1ce, whatever their CSF does."""
    others = ("t1", "t1ce", "t2")  # the FLAIR is paired with each in turn
    pairings = [(frozenset({"flair", partner}), frozenset(others) - {partner}) for partner in others]

    def alikeness(pairing: tuple[frozenset, frozenset]) -> float:
        return sum(_correlation(*(ranks(name) for name in sorted(pair))) for pair in pairing)

    return max(pairings, key=alikeness)


def flair_t2_margin(flair: np.ndarray, t2: np.ndarray, t1: np.ndarray) -> float:
    """How much more the FLAIR's ranks go with the T1's than the T2's do (each given as its ranks);
    negative when swapped."""
    return _correlation(flair, t1) - _correlation(t2, t1)


def enhancement_skewness(t1: np.ndarray, t1ce: np.ndarray) -> float:
    """Skewness of T1ce minus T1, each z-scored: positive when the contrast agent is in the T1ce."""
    difference = _standardized(t1ce) - _standardized(t1)
    centred = difference - difference.mean()
    spread = centred.std()
    return float((centred**3).mean() / spread**3) if spread > 0 else 0.0


def _mixed_weightings_warning(alike: tuple[frozenset, frozenset], sources: Mapping[str, str | Path]) -> str:
    pairs = [
        " and ".join(f"the {INPUT_LABELS[name]} given ({sources.get(name, name)})" for name in sorted(pair))
        for pair in alike
    ]
    return (
        f"{pairs[0]} look alike, and so do {pairs[1]}, where a FLAIR goes with the T2 and a T1 with the "
        "T1ce: a scan of one weighting seems given in place of one of the other, which gives a wrong "
        "segmentation; check which scan is which"
    )


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
