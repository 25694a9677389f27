"""The bundle's island cleaning, chosen on cross-validation predictions.

nnU-Net decides its post-processing once every fold is done, on the folds' held-out predictions
(Isensee et al., Nature Methods 2021). The engine's cleanings, dropping foreground islands smaller than
``min_component_voxels`` or keeping only the largest island (``largest_component_only``), are chosen
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
    """One candidate: islands under ``min_component_voxels`` removed, or all but the largest."""

    min_component_voxels: int = 0
    largest_only: bool = False

    @classmethod
    def parse(cls, text: str) -> Cleaning:
        """``"largest"`` or a whole number of voxels."""
        return cls(largest_only=True) if text == "largest" else cls(min_component_voxels=int(text))

    def apply(self, labels):
        return clean_islands(labels, self.min_component_voxels, self.largest_only)

    def __str__(self) -> str:
        return "largest" if self.largest_only else str(self.min_component_voxels)

    @property
    def inference_setting(self) -> str:
        """What ``wmhseg-train export --inference`` takes to bundle it."""
        if self.largest_only:
            return "largest_component_only=true"
        return f"min_component_voxels={self.min_component_voxels}"

    @property
    def removal_rank(self) -> float:
        """Orders candidates from removing least to most."""
        return float("inf") if self.largest_only else self.min_component_voxels


CANDIDATES = (*(Cleaning(n) for n in (0, 10, 50, 100, 500, 1000, 2000, 5000)), Cleaning(largest_only=True))


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

    def rank(candidate: CleaningScore) -> tuple[float, float]:
        value = candidate.mean.get(key, math.nan)
        return (-math.inf if math.isnan(value) else value, -candidate.cleaning.removal_rank)

    return max(scores, key=rank)
