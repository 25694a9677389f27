"""The bundle's small-component cleaning, chosen on cross-validation predictions.

nnU-Net decides its post-processing once every fold is done, on the folds' held-out predictions
(Isensee et al., Nature Methods 2021). The one cleaning the engine has, dropping foreground islands
smaller than ``min_component_voxels``, is chosen here the same way: each candidate is applied to the
saved predictions exactly as the predictor applies it, every case is scored against its reference,
and the candidate with the best mean selection metric wins, the smallest on ties, so nothing is
removed without a measured gain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from WMHSegmenterLib.cli.evaluate import find_cases
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.metrics.report import Evaluation
from WMHSegmenterLib.engine.postprocess import remove_small_components
from WMHSegmenterLib.engine.volume import read_volume

from .validation import SELECTION_METRIC, score

CANDIDATE_VOXELS = (0, 10, 50, 100, 500, 1000, 2000, 5000)


@dataclass(frozen=True)
class CleaningScore:
    """Mean metrics over the cases with islands under ``min_component_voxels`` removed."""

    min_component_voxels: int
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
    task: str, pairs: Sequence[tuple[str, Path, Path]], candidates: Sequence[int] = CANDIDATE_VOXELS
) -> list[CleaningScore]:
    evaluations = {voxels: Evaluation(task) for voxels in candidates}
    for case, reference_path, prediction_path in pairs:
        reference, prediction = read_volume(reference_path), read_volume(prediction_path)
        for voxels, evaluation in evaluations.items():
            cleaned = prediction.with_array(remove_small_components(prediction.array, voxels))
            evaluation.cases.append((case, score(task, reference, cleaned, reference_path)))
    return [CleaningScore(voxels, evaluation.summary()["mean"]) for voxels, evaluation in evaluations.items()]


def best_cleaning(task: str, scores: Sequence[CleaningScore]) -> CleaningScore:
    key = SELECTION_METRIC[task]

    def rank(candidate: CleaningScore) -> tuple[float, int]:
        value = candidate.mean.get(key, math.nan)
        return (-math.inf if math.isnan(value) else value, -candidate.min_component_voxels)

    return max(scores, key=rank)
