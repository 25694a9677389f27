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
from pathlib import Path

from WMHSegmenterLib.cli.evaluate import find_cases
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.metrics.report import Evaluation
from WMHSegmenterLib.engine.postprocess import clean_islands
from WMHSegmenterLib.engine.volume import read_volume

from .validation import SELECTION_METRIC, score


@dataclass(frozen=True)
class Cleaning:
    """One candidate: islands under ``min_component_voxels`` removed, or under ``min_island_fraction``
    of the largest (1: the largest only)."""

    min_component_voxels: int = 0
    min_island_fraction: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Cleaning:
        """A whole number of voxels, ``largest`` or ``largest:F`` (islands of at least F × the largest)."""
        if text == "largest":
            return cls(min_island_fraction=1.0)
        if text.startswith("largest:"):
            return cls(min_island_fraction=float(text.removeprefix("largest:")))
        return cls(min_component_voxels=int(text))

    def apply(self, labels):
        return clean_islands(labels, self.min_component_voxels, self.min_island_fraction)

    def __str__(self) -> str:
        if self.min_island_fraction == 1:
            return "largest"
        if self.min_island_fraction > 0:
            return f"largest:{self.min_island_fraction:g}"
        return str(self.min_component_voxels)

    @property
    def inference_setting(self) -> str:
        """What ``wmhseg-train export --inference`` takes to bundle it."""
        if self.min_island_fraction > 0:
            return f"min_island_fraction={self.min_island_fraction:g}"
        return f"min_component_voxels={self.min_component_voxels}"

    @property
    def removal_rank(self) -> tuple[float, float]:
        """Orders candidates from removing least to most: any size threshold before any fraction."""
        return (self.min_island_fraction, self.min_component_voxels)


CANDIDATES = (
    *(Cleaning(n) for n in (0, 10, 50, 100, 500, 1000, 2000, 5000)),
    *(Cleaning(min_island_fraction=f) for f in (0.5, 0.8, 1.0)),
)


@dataclass(frozen=True)
class CleaningScore:
    """Mean metrics over the cases cleaned by ``cleaning``."""

    cleaning: Cleaning
    mean: dict[str, float]


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
    task: str, pairs: Sequence[tuple[str, Path, Path]], candidates: Sequence[Cleaning] = CANDIDATES
) -> list[CleaningScore]:
    evaluations = {cleaning: Evaluation(task) for cleaning in candidates}
    for case, reference_path, prediction_path in pairs:
        reference, prediction = read_volume(reference_path), read_volume(prediction_path)
        for cleaning, evaluation in evaluations.items():
            cleaned = prediction.with_array(cleaning.apply(prediction.array))
            evaluation.cases.append((case, score(task, reference, cleaned, reference_path)))
    return [
        CleaningScore(cleaning, evaluation.summary()["mean"]) for cleaning, evaluation in evaluations.items()
    ]


def best_cleaning(task: str, scores: Sequence[CleaningScore]) -> CleaningScore:
    key = SELECTION_METRIC[task]

    def rank(candidate: CleaningScore) -> tuple[float, float, float]:
        value = candidate.mean.get(key, math.nan)
        removal = candidate.cleaning.removal_rank
        return (-math.inf if math.isnan(value) else value, -removal[0], -removal[1])

    return max(scores, key=rank)
