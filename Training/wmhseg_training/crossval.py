"""Cross-validation in one command: each fold trained (or continued), then its held-out cases segmented
by the fold's last epoch as its bundle would segment them, and every case scored in one table.

A recipe comparison is then reproducible from the repository alone: a lost run folder costs machine
time, never the protocol. Folds run one after another and the table is written after each, so a stop
loses at most the fold in progress, and running the same command again continues where it stopped.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from WMHSegmenterLib.engine.device import resolve_device
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.volume import make_output_folder, write_volume

from .checkpoints import load_checkpoint
from .config import apply_override
from .datasets import find_cases
from .export import bundle_config, inference_network
from .logs import write_metrics_csv
from .loop import check_same_recipe, run_paths, train
from .metadata import input_names
from .validation import SELECTION_METRIC, as_bundle, mean_metrics, validate

CASES_CSV = "cases.csv"
PREDICTIONS = "predictions"
PROBABILITIES = "probabilities"


def cross_validate(
    config: Mapping[str, Any],
    out_dir: str | Path,
    folds: Sequence[int] | None = None,
    inference: Sequence[str] = (),
    device: str = "auto",
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Train and score ``folds`` (default all) into ``out_dir``; returns one row per held-out case.

    ``out_dir`` holds a run folder per fold (``fold<k>``), each case's prediction and probability
    map (``predictions/<case>.nii.gz``, ``probabilities/<case>.nii.gz``: the input for
    ``select-cleaning`` when no cleaning is set) and ``cases.csv``, the folds of this call only, so
    one table is never scored two ways.
    ``inference``: ``key=value`` settings of the bundle the folds are scored as.
    """
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise InputError(
            "cross-validate runs as one process, not under torchrun; for several GPUs run a fold a "
            "process (CUDA_VISIBLE_DEVICES, --folds), each with its own --out"
        )
    out_dir = Path(out_dir)
    folds = checked_folds(config, folds)
    make_output_folder(out_dir)
    rows: list[dict[str, Any]] = []
    for fold in folds:
        fold_config = copy.deepcopy(dict(config))
        apply_override(fold_config, f"data.fold={fold}")
        run_dir = out_dir / f"fold{fold}"
        _train_unless_finished(fold_config, run_dir, device, show_progress, echo)
        rows += score_fold(run_dir, out_dir, inference, device, echo)
        write_metrics_csv(rows, out_dir / CASES_CSV)
    return rows


def checked_folds(config: Mapping[str, Any], folds: Sequence[int] | None) -> list[int]:
    count = config["data"]["folds"]
    if folds is None:
        return list(range(count))
    unknown = [fold for fold in folds if not 0 <= fold < count]
    if unknown or len(set(folds)) != len(folds):
        raise InputError(
            f"folds must be distinct, from 0 to {count - 1} (data.folds {count}); got {list(folds)}"
        )
    return list(folds)


def _train_unless_finished(config, run_dir: Path, device: str, show_progress: bool, echo) -> None:
    paths = run_paths(run_dir)
    if not paths["last"].is_file():
        train(config, run_dir, device=device, show_progress=show_progress, echo=echo)
        return
    state = load_checkpoint(paths["last"])
    check_same_recipe(config, state, paths["config"])  # a finished fold of another recipe is not reused
    epochs = config["training"]["epochs"]
    if state["epoch"] > epochs:
        raise InputError(
            f"fold {config['data']['fold']} has trained {state['epoch']} epochs, more than the {epochs} "
            "asked; score it with its length (--set training.epochs) or use another --out",
            run_dir,
        )
    if state["epoch"] == epochs:
        echo(f"fold {config['data']['fold']}: trained ({epochs} epochs) in {run_dir}")
        return
    train(config, run_dir, resume=True, device=device, show_progress=show_progress, echo=echo)


def score_fold(
    run_dir: Path, out_dir: Path, inference: Sequence[str], device: str, echo
) -> list[dict[str, Any]]:
    """The fold's held-out cases (all of them, whatever validation.max_cases) through its last epoch,
    their label and probability maps written into ``out_dir``."""
    paths = run_paths(run_dir)
    state = load_checkpoint(paths["last"])
    config = bundle_config(state["config"], inference)
    held_out = json.loads(paths["splits"].read_text())["validation"]
    found = {case.id: case for case in find_cases(config["data"], config["task"], input_names(config))}
    missing = sorted(set(held_out) - set(found))
    if missing:
        raise InputError(
            f"held-out case(s) {', '.join(missing)} of this fold are no longer in the data", run_dir
        )
    predictions = make_output_folder(out_dir / PREDICTIONS)
    probabilities = make_output_folder(out_dir / PROBABILITIES)
    fold, selection = config["data"]["fold"], SELECTION_METRIC[config["task"]]
    rows = []

    def keep(case, prediction, scores) -> None:
        write_volume(prediction.labels, predictions / f"{case.id}.nii.gz", overwrite=True)
        write_volume(prediction.probabilities, probabilities / f"{case.id}.nii.gz", overwrite=True)
        seconds = round(sum(prediction.timings.values()), 2)  # to segment; reading the files aside
        # a case whose scans look swapped, or with a skull, scores its input rather than the recipe
        warnings = "; ".join(prediction.warnings)
        rows.append({"fold": fold, "case": case.id, **scores, "seconds": seconds, "warnings": warnings})
        echo(
            f"fold {fold}  {case.id}  {selection} {scores[selection]:.4f}"
            + (f"  warning: {warnings}" if warnings else "")
        )

    network = inference_network(state)
    validate(
        network,
        as_bundle(config),
        [found[i] for i in held_out],
        torch.device(resolve_device(device)),
        run_dir,
        keep,
    )
    return rows


def mean_row(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Each metric's mean over the held-out cases of every fold."""
    return mean_metrics(
        [{k: v for k, v in row.items() if k not in ("fold", "case", "warnings")} for row in rows]
    )
