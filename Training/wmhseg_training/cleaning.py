"""The bundle's island cleaning, chosen on cross-validation predictions.

nnU-Net decides its post-processing once every fold is done, on the folds' held-out predictions
(Isensee et al., Nature Methods 2021). The engine's cleanings, dropping foreground islands smaller than
``min_component_voxels`` or than ``min_island_fraction`` of the largest island, islands first cut at
necks narrower than ``island_neck_mm`` or not, are chosen here the same way: each candidate is applied
to the saved predictions exactly as the predictor applies it, every case is scored against its
reference, and the candidate with the best mean selection metric wins, the one removing least on ties,
so nothing is removed without a measured gain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from WMHSegmenterLib.cli.evaluate import find_cases
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.metrics.report import Evaluation
from WMHSegmenterLib.engine.postprocess import clean_islands, foreground_probability, removes_islands
from WMHSegmenterLib.engine.tasks import task_metadata
from WMHSegmenterLib.engine.volume import Volume, read_channels, read_volume

from .validation import SELECTION_METRIC, score


@dataclass(frozen=True)
class Cleaning:
    """One candidate: islands under ``min_component_voxels`` removed, or under ``min_island_fraction``
    of the largest (1: the largest only), islands measured by ``island_measure`` (size or confidence),
    after cutting them where narrower than a ball of ``island_neck_mm`` radius (0: no cut)."""

    min_component_voxels: int = 0
    min_island_fraction: float = 0.0
    island_measure: str = "size"
    island_neck_mm: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Cleaning:
        """A whole number of voxels, ``largest`` or ``largest:F`` (islands of at least F × the largest);
        the last two measured by confidence with ``@confidence``; any of them with ``+neck:R`` (mm)."""
        text, cut, neck = text.partition("+neck:")
        island_neck_mm = float(neck) if cut else 0.0
        text, by_confidence, rest = text.partition("@confidence")
        if rest or (by_confidence and not text.startswith("largest")):
            raise ValueError(f"only 'largest' or 'largest:F' take '@confidence', got {text!r}")
        measure = "confidence" if by_confidence else "size"
        if text == "largest":
            return cls(min_island_fraction=1.0, island_measure=measure, island_neck_mm=island_neck_mm)
        if text.startswith("largest:"):
            fraction = float(text.removeprefix("largest:"))
            return cls(min_island_fraction=fraction, island_measure=measure, island_neck_mm=island_neck_mm)
        return cls(min_component_voxels=int(text), island_neck_mm=island_neck_mm)

    @property
    def by_confidence(self) -> bool:
        return self.island_measure == "confidence"

    @property
    def removes_islands(self) -> bool:
        return removes_islands(self.min_component_voxels, self.min_island_fraction)

    def apply(
        self,
        labels: np.ndarray,
        foreground_probability: np.ndarray | None = None,
        spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0),
    ) -> np.ndarray:
        """``foreground_probability``: needed, and used, only by a candidate measuring by confidence;
        ``spacing_zyx``: the labels' voxel size, which a neck in mm is measured in."""
        confidence = foreground_probability if self.by_confidence else None
        return clean_islands(
            labels,
            self.min_component_voxels,
            self.min_island_fraction,
            confidence,
            self.island_neck_mm,
            spacing_zyx,
        )

    def __str__(self) -> str:
        measure = "@confidence" if self.by_confidence else ""
        neck = f"+neck:{self.island_neck_mm:g}" if self.island_neck_mm > 0 else ""
        if self.min_island_fraction == 1:
            return f"largest{measure}{neck}"
        if self.min_island_fraction > 0:
            return f"largest:{self.min_island_fraction:g}{measure}{neck}"
        return f"{self.min_component_voxels}{neck}"

    @property
    def inference_settings(self) -> tuple[str, ...]:
        """What ``wmhseg-train export --inference`` takes to bundle it, one setting per option."""
        neck = (f"island_neck_mm={self.island_neck_mm:g}",) if self.island_neck_mm > 0 else ()
        if self.min_island_fraction > 0:
            fraction = f"min_island_fraction={self.min_island_fraction:g}"
            measure = (f"island_measure={self.island_measure}",) if self.by_confidence else ()
            return (fraction, *measure, *neck)
        return (f"min_component_voxels={self.min_component_voxels}", *neck)

    @property
    def removal_rank(self) -> tuple[float, float, float, bool]:
        """Orders candidates from removing least to most, any size threshold before any fraction;
        between equals, the one not cutting necks, then the one measuring by size (it needs no
        probabilities) first."""
        return (self.min_island_fraction, self.min_component_voxels, self.island_neck_mm, self.by_confidence)


CANDIDATES = (
    *(Cleaning(n) for n in (0, 10, 50, 100, 500, 1000, 2000, 5000)),
    *(Cleaning(min_island_fraction=f) for f in (0.5, 0.8, 1.0)),
)

#: Added to the defaults when probability maps are given: with and without the 3 mm neck cut that
#: brats-glioma 0.6.3 chose on its cross-validation.
CONFIDENCE_CANDIDATES = (
    Cleaning(min_island_fraction=1.0, island_measure="confidence"),
    Cleaning(min_island_fraction=1.0, island_measure="confidence", island_neck_mm=3.0),
)


@dataclass(frozen=True)
class CleaningScore:
    """Every case's metrics once cleaned by ``cleaning``."""

    cleaning: Cleaning
    evaluation: Evaluation

    @cached_property
    def mean(self) -> dict[str, float]:
        """Computed once: the ranking and the printed table read it for every column."""
        return self.evaluation.summary()["mean"]


def paired_cases(reference_dir: Path, prediction_dir: Path) -> list[tuple[str, Path, Path]]:
    """(case, reference, prediction) for every prediction; a prediction without reference is an error.

    References without a prediction are fine: a data folder holds cases no fold held out.
    """
    references, predictions = find_cases(reference_dir), find_cases(prediction_dir)
    if not predictions:
        raise InputError("no label maps found", prediction_dir)
    missing = sorted(set(predictions) - set(references))
    if missing:
        raise InputError(f"no reference for case(s) {', '.join(missing)} in {reference_dir}", prediction_dir)
    return [(case, references[case], path) for case, path in predictions.items()]


def compare_cleaning(
    task: str,
    pairs: Sequence[tuple[str, Path, Path]],
    candidates: Sequence[Cleaning] = CANDIDATES,
    probability_dir: Path | None = None,
) -> list[CleaningScore]:
    """``probability_dir``: each case's probability map (``<case>.nii.gz``, as ``wmhseg segment
    --probabilities`` writes it), for candidates measuring islands by confidence."""
    by_confidence = any(c.by_confidence for c in candidates)
    if by_confidence and probability_dir is None:
        raise InputError("candidates measured by confidence need the cases' probability maps")
    evaluations = {cleaning: Evaluation(task) for cleaning in candidates}
    for case, reference_path, prediction_path in pairs:
        reference, prediction = read_volume(reference_path), read_volume(prediction_path)
        confidence = None
        if by_confidence:
            confidence = _foreground_probability(probability_dir / f"{case}.nii.gz", prediction, task)
        spacing_zyx = prediction.geometry.spacing[::-1]
        for cleaning, evaluation in evaluations.items():
            cleaned = prediction.with_array(cleaning.apply(prediction.array, confidence, spacing_zyx))
            evaluation.cases.append((case, score(task, reference, cleaned, reference_path)))
    return [CleaningScore(cleaning, evaluation) for cleaning, evaluation in evaluations.items()]


def _foreground_probability(path: Path, prediction: Volume, task: str) -> np.ndarray:
    probabilities = read_channels(path)
    if probabilities.shape != prediction.shape or not probabilities.geometry.matches(prediction.geometry):
        raise InputError("probability map is not on its prediction's grid", path)
    return foreground_probability(probabilities.array, task_metadata(task)["outputs"]["activation"])


def best_cleaning(task: str, scores: Sequence[CleaningScore]) -> CleaningScore:
    key = SELECTION_METRIC[task]

    def rank(candidate: CleaningScore) -> tuple[float, float, float, float]:
        value = candidate.mean.get(key, math.nan)
        fraction, voxels, neck, _ = candidate.cleaning.removal_rank
        return (-math.inf if math.isnan(value) else value, -fraction, -voxels, -neck)

    return max(scores, key=rank)
