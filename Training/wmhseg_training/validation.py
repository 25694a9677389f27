"""Validation through the product's own path: whole volumes through the engine's Predictor, scored by
the engine's metrics, on each case's original grid. A score seen here is the score a user will get.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from WMHSegmenterLib.engine.bundle import ModelBundle
from WMHSegmenterLib.engine.device import precision_name, resolve_device
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.metrics import evaluate_brats, evaluate_wmh
from WMHSegmenterLib.engine.predictor import Prediction, Predictor
from WMHSegmenterLib.engine.volume import read_image, read_volume

from .datasets import CaseFiles, find_cases
from .metadata import bundle_metadata, inference_settings, input_names, validated_inference_settings

#: The number that picks the best checkpoint: higher is better.
SELECTION_METRIC = {"wmh": "dice", "brats": "mean_dice"}


def validate(
    network: torch.nn.Module,
    config: Mapping[str, Any],
    cases: Sequence[CaseFiles],
    device: torch.device,
    run_dir: Path,
    on_case: Callable[[CaseFiles, Prediction, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Mean metrics over ``cases``.

    ``on_case`` sees each case's prediction and scores as they come (cross-validation keeps both).
    """
    predictor = validation_predictor(network, config, device, run_dir)
    per_case = []
    try:
        for case in cases:
            inputs = {name: read_image(path) for name, path in case.images.items()}
            prediction = predictor.predict(inputs, sources=case.images)
            scores = score(config["task"], read_volume(case.label), prediction.labels, case.label)
            per_case.append(scores)
            if on_case is not None:
                on_case(case, prediction, scores)
    finally:
        network.train()
    return mean_metrics(per_case)


def validation_predictor(
    network: torch.nn.Module, config: Mapping[str, Any], device: torch.device, run_dir: Path
) -> Predictor:
    """The predictor the bundle will have; ``validation.overlap``/``mirror`` override it where set."""
    meta = bundle_metadata(config, model_id="validation")
    meta["inference"] = validated_inference_settings(config)
    return Predictor(ModelBundle(run_dir, meta=meta), device=device.type, network=network)


def validation_precision(device: torch.device) -> str:
    """What :func:`validation_predictor` computes in: the engine's default, mixed precision where the
    device has it."""
    return precision_name(device.type)


def scored_with_bundle_settings(
    validation: dict[str, Any],
    network: torch.nn.Module,
    config: Mapping[str, Any],
    case_ids: Sequence[str],
    folder: Path,
) -> dict[str, Any]:
    """The validation table as the bundle's own inference settings score it.

    Settings chosen after training (export or reissue ``--inference``: island cleaning, brain mask;
    reissue ``--preprocessing``: bias correction) change what the bundle outputs, so the run's table
    would describe another predictor, and the card shows that table first. The validation cases are
    scored again with the bundle's settings when their data can be read here; otherwise the run's table
    is kept, its ``inference`` (and ``preprocessing``, where recorded) saying what scored it.
    ``config``: the run's, with the bundle's inference and preprocessing sections.
    """
    settings = inference_settings(config)
    scored_preprocessing = validation.get("preprocessing", config["preprocessing"])
    if (validation["inference"], scored_preprocessing) == (settings, config["preprocessing"]) or not case_ids:
        return validation
    try:
        found = {case.id: case for case in find_cases(config["data"], config["task"], input_names(config))}
    except InputError:
        return validation
    if not set(case_ids) <= set(found):
        return validation
    device = torch.device(resolve_device("auto"))
    metrics = validate(network, as_bundle(config), [found[i] for i in case_ids], device, folder)
    return {
        **validation,
        "metrics": metrics,
        "inference": settings,
        "preprocessing": config["preprocessing"],
        "precision": validation_precision(device),
    }


def as_bundle(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with validation predicting as the bundle does (validation.overlap/mirror unset)."""
    return {**config, "validation": {**config["validation"], "overlap": None, "mirror": None}}


def score(task: str, reference, prediction, source: Path) -> dict[str, float]:
    if task == "wmh":
        return evaluate_wmh(reference, prediction, reference_source=source)
    metrics = evaluate_brats(reference, prediction, reference_source=source)
    metrics["mean_dice"] = float(np.mean([metrics[f"{r}_dice"] for r in ("wt", "tc", "et")]))
    return metrics


def mean_metrics(per_case: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each metric's mean over cases, NaN-aware: the WMH AVD is undefined on lesion-free references."""
    return {key: _nanmean([scores[key] for scores in per_case]) for key in per_case[0]} if per_case else {}


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")
