"""The bundle's island cleaning, chosen on cross-validation predictions.

nnU-Net decides its post-processing once every fold is done, on the folds' held-out predictions
(Isensee et al., Nature Methods 2021). The engine's cleanings, dropping foreground islands smaller than
``min_component_voxels`` or than ``min_island_fraction`` of the largest island, are chosen
here the same way: each candidate is applied to the saved predictions exactly as the predictor applies
it, every case is scored against its reference, and the candidate with the best mean selection metric
wins, the one removing least on ties, so nothing is removed without a measured gain.
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
from WMHSegmenterLib.engine.postprocess import clean_islands, foreground_probability
from WMHSegmenterLib.engine.tasks import task_metadata
from WMHSegmenterLib.engine.volume import Volume, read_channels, read_volume

from .validation import SELECTION_METRIC, score


@dataclass(frozen=True)
class Cleaning:
    """One candidate: islands under ``min_component_voxels`` removed, or under ``min_island_fraction``
    of the largest (1: the largest only), islands measured by ``island_measure`` (size or confidence)."""

    min_component_voxels: int = 0
    min_island_fraction: float = 0.0
    island_measure: str = "size"

    @classmethod
    def parse(cls, text: str) -> Cleaning:
        """A whole number of voxels, ``largest`` or ``largest:F`` (islands of at least F × the largest);
        the last two measured by confidence with ``@confidence``."""
        text, by_confidence, rest = text.partition("@confidence")
        if rest or (by_confidence and not text.startswith("largest")):
            raise ValueError(f"only 'largest' or 'largest:F' take '@confidence', got {text!r}")
        measure = "confidence" if by_confidence else "size"
        if text == "largest":
            return cls(min_island_fraction=1.0, island_measure=measure)
        if text.startswith("largest:"):
            return cls(min_island_fraction=float(text.removeprefix("largest:")), island_measure=measure)
        return cls(min_component_voxels=int(text))

    @property
    def by_confidence(self) -> bool:
        return self.island_measure == "confidence"

    def apply(self, labels: np.ndarray, foreground_probability: np.ndarray | None = None) -> np.ndarray:
        """``foreground_probability``: needed, and used, only by a candidate measuring by confidence."""
        confidence = foreground_probability if self.by_confidence else None
        return clean_islands(labels, self.min_component_voxels, self.min_island_fraction, confidence)

    def __str__(self) -> str:
        measure = "@confidence" if self.by_confidence else ""
        if self.min_island_fraction == 1:
            return f"largest{measure}"
        if self.min_island_fraction > 0:
            return f"largest:{self.min_island_fraction:g}{measure}"
        return str(self.min_component_voxels)

    @property
    def inference_settings(self) -> tuple[str, ...]:
        """What ``wmhseg-train export --inference`` takes to bundle it, one setting per option."""
        if self.min_island_fraction > 0:
            fraction = f"min_island_fraction={self.min_island_fraction:g}"
            return (fraction, f"island_measure={self.island_measure}") if self.by_confidence else (fraction,)
        return (f"min_component_voxels={self.min_component_voxels}",)

    @property
    def removal_rank(self) -> tuple[float, float, bool]:
        """Orders candidates from removing least to most, any size threshold before any fraction;
        between equals, the one measuring by size (it needs no probabilities) first."""
        return (self.min_island_fraction, self.min_component_voxels, self.by_confidence)


CANDIDATES = (
    *(Cleaning(n) for n in (0, 10, 50, 100, 500, 1000, 2000, 5000)),
    *(Cleaning(min_island_fraction=f) for f in (0.5, 0.8, 1.0)),
)

#: Added to the defaults when probability maps are given.
CONFIDENCE_CANDIDATES = (Cleaning(min_island_fraction=1.0, island_measure="confidence"),)


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
        for cleaning, evaluation in evaluations.items():
            cleaned = prediction.with_array(cleaning.apply(prediction.array, confidence))
            evaluation.cases.append((case, score(task, reference, cleaned, reference_path)))
    return [CleaningScore(cleaning, evaluation) for cleaning, evaluation in evaluations.items()]


def _foreground_probability(path: Path, prediction: Volume, task: str) -> np.ndarray:
    probabilities = read_channels(path)
    if probabilities.shape != prediction.shape or not probabilities.geometry.matches(prediction.geometry):
        raise InputError("probability map is not on its prediction's grid", path)
    return foreground_probability(probabilities.array, task_metadata(task)["outputs"]["activation"])


def best_cleaning(task: str, scores: Sequence[CleaningScore]) -> CleaningScore:
    key = SELECTION_METRIC[task]

    def rank(candidate: CleaningScore) -> tuple[float, float, float]:
        value = candidate.mean.get(key, math.nan)
        removal = candidate.cleaning.removal_rank
        return (-math.inf if math.isnan(value) else value, -removal[0], -removal[1])

    return max(scores, key=rank)
