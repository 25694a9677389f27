"""The training loop: data checked and cached, then epochs of patches, validation and checkpoints.

An epoch is a fixed number of iterations (nnU-Net's convention), not a pass over the data: cases
differ wildly in size, and a fixed count makes epochs comparable and checkpoints regular. After every
epoch the whole state (model, optimizer, schedule, gradient scaler, RNG, history) is checkpointed,
and because each patch is a pure function of (seed, rank, epoch, index), a resumed run continues
exactly as if it had never stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from WMHSegmenterLib.engine.bundle import ModelBundle
from WMHSegmenterLib.engine.device import mixed_precision_dtype
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.unet import UNet3D
from WMHSegmenterLib.engine.volume import make_output_folder, publish_file

from . import distributed, logs
from .augmentation import Augmentation, context_voxels
from .cache import CachedCase, load_or_build
from .checkpoints import (
    BEST,
    LAST,
    load_checkpoint,
    remove_partial_files,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from .config import DEFAULTS, REPOSITORY_ROOT, check_config, differences, dump_config, loss_terms, merge
from .datasets import CaseFiles, check_case_files, find_cases
from .initial_weights import (
    initial_bundle,
    initial_weights_record,
    load_initial_weights,
    preprocessing_changes,
)
from .losses import SegmentationLoss
from .metadata import input_names, input_specs, network_config
from .provenance import code_version, hardware
from .sampling import EpochIndices, PatchDataset, PatchSampler
from .splits import split_cases
from .synthetic.dataset import MixedPatchSampler, mix_with_synthetic, synthetic_sampler
from .validation import SELECTION_METRIC, validate, validation_precision

CONFIG_FILE = "config.yaml"
SPLITS_FILE = "splits.json"
CHECKPOINT_FOLDER = "checkpoints"
#: Sections that say where a run lives, not what it computes: they may differ on --resume.
LOCATION_SECTIONS = ("output",)
#: Settings a resumed run may change: a new number of epochs re-stretches its schedule from where it stands.
EXTENDABLE_SETTINGS = ("training.epochs",)


@dataclass
class RunResult:
    network: UNet3D
    history: list[dict[str, Any]]
    best: dict[str, Any] | None


class Schedule:
    """Learning-rate factor per iteration: linear warm-up, then poly (nnU-Net), cosine or constant.

    A class, not a lambda, so LambdaLR's state_dict stores its settings as plain values.
    """

    def __init__(self, name: str, total_iterations: int, warmup_iterations: int = 0, exponent: float = 0.9):
        self.name, self.total = name, int(total_iterations)
        self.warmup, self.exponent = int(warmup_iterations), float(exponent)

    def __call__(self, iteration: int) -> float:
        if iteration < self.warmup:
            return (iteration + 1) / self.warmup
        progress = min(iteration / max(self.total, 1), 1.0)
        if self.name == "poly":
            return (1 - progress) ** self.exponent
        if self.name == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0


class Optimization:
    """The network and everything that changes it: optimizer, schedule, gradient scaler, loss."""

    def __init__(
        self, config: Mapping[str, Any], context: distributed.Context, initial: ModelBundle | None = None
    ):
        training = config["training"]
        torch.manual_seed(training["seed"])  # the same initial weights on every rank and every run
        network = UNet3D(network_config(config))
        if initial is not None:
            load_initial_weights(network, initial)
        self.network = network.to(context.device)
        self.model: torch.nn.Module = self.network
        if context.distributed:
            device_ids = [context.local_rank] if context.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.network, device_ids=device_ids)
        self.optimizer = _optimizer(self.network, training["optimizer"])
        schedule = training["schedule"]
        self.schedule = Schedule(
            schedule["name"],
            training["epochs"] * training["iterations_per_epoch"],
            schedule["warmup_iterations"],
            schedule["exponent"],
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule)
        self.amp_dtype = mixed_precision_dtype(context.device.type, training["amp"])
        # bfloat16 keeps float32's exponent range, so only float16 needs its gradients scaled
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.criterion = SegmentationLoss(config["task"], loss_terms(training["loss"]))
        self.clip_norm = training["gradient_clip_norm"]
        self.device = context.device

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One iteration; returns its loss."""
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            outputs = self.model(images)
        loss = self.criterion(outputs, labels)
        self.scaler.scale(loss).backward()
        if self.clip_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    @property
    def precision(self) -> str:
        return (
            "float32" if self.amp_dtype is None else f"{str(self.amp_dtype).removeprefix('torch.')} autocast"
        )

    @property
    def learning_rate(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state(self) -> dict[str, Any]:
        return {
            "model": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        # the schedule's settings come from this run's config, whose epochs may have been extended
        self.scheduler.load_state_dict({**state["scheduler"], "lr_lambdas": [None]})
        for group, base_rate in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base_rate * self.schedule(self.scheduler.last_epoch)
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])


def run_paths(run_dir: Path) -> dict[str, Path]:
    checkpoints = run_dir / CHECKPOINT_FOLDER
    return {
        "config": run_dir / CONFIG_FILE,
        "splits": run_dir / SPLITS_FILE,
        "last": checkpoints / LAST,
        "best": checkpoints / BEST,
        "csv": run_dir / logs.METRICS_CSV,
        "png": run_dir / logs.CURVES_PNG,
    }


def train(
    config: Mapping[str, Any],
    run_dir: str | Path,
    resume: bool = False,
    device: str = "auto",
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
) -> RunResult:
    """Train (or continue) the run in ``run_dir``; returns the trained network on every rank."""
    check_config(config)
    context = distributed.start(device)
    try:
        return _train(dict(config), Path(run_dir), resume, context, show_progress and context.is_main, echo)
    finally:
        distributed.stop(context)


def _train(config, run_dir: Path, resume: bool, context, show_progress: bool, echo) -> RunResult:
    say = echo if context.is_main else (lambda message: None)
    paths = run_paths(run_dir)
    training = config["training"]
    state = _checkpoint_to_resume(config, paths, resume)
    initial = initial_bundle(config) if state is None else None  # a resumed run has its weights
    if initial is not None and (changes := preprocessing_changes(initial, config)):
        changed = "; ".join(changes)
        say(f"starting from {initial.id} {initial.version}, trained with other preprocessing: {changed}")
    training_cases, validation_cases = _prepare_data(config, paths, context, say)
    if context.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    optimization = Optimization(config, context, initial)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    start_epoch, seconds = 0, 0.0
    if state is not None:
        if context.is_main:
            remove_partial_files(paths["last"].parent)
        optimization.restore(state)
        history, best = list(state["history"]), state["best"]
        start_epoch, seconds = int(state["epoch"]), float(state["seconds"])
        say(f"resuming {run_dir} after epoch {start_epoch}")
    loader, indices = _patch_loader(config, training_cases, context)
    selection_key = f"val_{SELECTION_METRIC[config['task']]}"
    session = {
        "first_epoch": start_epoch + 1,
        "code_version": code_version(),
        "hardware": {**hardware(context.device, context.world_size), "precision": optimization.precision},
    }
    provenance = {
        "code_version": session["code_version"],
        "hardware": session["hardware"],
        # a resumed run may continue on other code or hardware: each stretch is kept
        "sessions": [*(state or {}).get("sessions", []), session],
        "data": {
            "training_cases": sum(c.head_draw is None for c in training_cases),
            "validation_cases": [c.id for c in validation_cases],
        },
        "initial_weights": state.get("initial_weights") if state else initial_weights_record(initial),
    }
    for epoch in range(start_epoch, training["epochs"]):
        epoch_start = time.perf_counter()
        indices.epoch = epoch
        row = _train_epoch(optimization, loader, epoch, training["epochs"], context, show_progress)
        due = (epoch + 1) % config["validation"]["every_epochs"] == 0 or epoch + 1 == training["epochs"]
        is_best = False
        if context.is_main and due and validation_cases:
            validation_start = time.perf_counter()
            metrics = validate(optimization.network, config, validation_cases, context.device, run_dir)
            row.update({f"val_{key}": value for key, value in metrics.items()})
            row["validation_seconds"] = round(time.perf_counter() - validation_start, 3)
            value = row.get(selection_key, float("nan"))
            is_best = not math.isnan(value) and (best is None or value > best["value"])
            if is_best:
                best = {"epoch": epoch + 1, "metric": selection_key, "value": value}
        row["epoch_seconds"] = round(time.perf_counter() - epoch_start, 3)
        seconds += row["epoch_seconds"]
        history.append(row)
        if context.is_main:
            snapshot = {
                **provenance,
                "epoch": epoch + 1,
                "config": config,
                "history": history,
                "best": best,
                "seconds": seconds,
                "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "validation_metrics": {k[4:]: v for k, v in row.items() if k.startswith("val_")},
                "validation_precision": validation_precision(context.device),
            }
            if is_best:
                save_checkpoint({**snapshot, "model": optimization.network.state_dict()}, paths["best"])
            save_checkpoint({**snapshot, **optimization.state()}, paths["last"])
            logs.write_metrics_csv(history, paths["csv"])
            logs.plot_learning_curves(history, paths["png"])
            say(logs.epoch_summary(row, training["epochs"], selection_key, is_best))
        distributed.barrier(context)
    return RunResult(optimization.network, history, best)


def _train_epoch(optimization: Optimization, loader, epoch: int, epochs: int, context, show_progress: bool):
    """One epoch of iterations; returns its row of the history (mean loss over all ranks)."""
    start = time.perf_counter()
    optimization.model.train()
    loss_sum = 0.0
    bar = logs.progress_bar(loader, len(loader), f"epoch {epoch + 1}/{epochs}", show_progress)
    for images, labels in bar:
        loss_value = optimization.step(images, labels)
        loss_sum += loss_value
        if bar is not loader:
            bar.set_postfix(loss=f"{loss_value:.4f}")
    seconds = time.perf_counter() - start
    return {
        "epoch": epoch + 1,
        "train_loss": distributed.mean_over_ranks(loss_sum / len(loader), context),
        "learning_rate": optimization.learning_rate,
        "train_seconds": round(seconds, 3),
        "seconds_per_iteration": round(seconds / len(loader), 4),
    }


def _prepare_data(config, paths: dict[str, Path], context, say) -> tuple[list[CachedCase], list[CaseFiles]]:
    """Cases found, checked, split and cached: (cached training cases, validation case files)."""
    names = input_names(config)
    input_specs(config)  # refuses unknown or misordered modalities before any file is read
    data = config["data"]
    cases = find_cases(data, config["task"], names)
    for case in cases:
        check_case_files(case)
    training_ids, validation_ids = split_cases(
        [c.id for c in cases], data["folds"], data["fold"], data["split_seed"]
    )
    validation_cases = [c for c in cases if c.id in set(validation_ids)][: config["validation"]["max_cases"]]
    say(f"{len(cases)} cases: {len(training_ids)} training, {len(validation_cases)} validation")
    if context.is_main:
        make_output_folder(paths["config"].parent)
        _write_text(paths["config"], dump_config(config))
        splits = {"fold": data["fold"], "training": training_ids, "validation": validation_ids}
        _write_text(paths["splits"], json.dumps(splits, indent=1) + "\n")
    cached = _cached_cases(config, cases, names, context, say)
    return [c for c in cached if c.id in set(training_ids)], validation_cases


def _patch_loader(config, training_cases: list[CachedCase], context) -> tuple[DataLoader, EpochIndices]:
    training, augmentation = config["training"], config["augmentation"]
    patch = training["patch_size_zyx"]
    region = [p + 2 * m for p, m in zip(patch, context_voxels(augmentation, patch))]
    sampler = _real_sampler(training_cases, region, training["foreground_fraction"], augmentation)
    if config["synthetic"]["fraction"] > 0:
        synthetic = synthetic_sampler(
            config["synthetic"],
            region,
            training["foreground_fraction"],
            config["preprocessing"]["spacing_xyz_mm"],
            REPOSITORY_ROOT,
        )
        sampler = mix_with_synthetic(sampler, synthetic, config["synthetic"]["fraction"])
    dataset = PatchDataset(
        sampler,
        patch,
        samples_per_epoch=training["iterations_per_epoch"] * training["batch_size"],
        seed=training["seed"],
        rank=context.rank,
        augmentation=Augmentation(augmentation) if augmentation["enabled"] else None,
    )
    indices = EpochIndices(len(dataset))
    loader = DataLoader(
        dataset,
        batch_size=training["batch_size"],
        sampler=indices,
        num_workers=training["workers"],
        persistent_workers=training["workers"] > 0,
        pin_memory=context.device.type == "cuda",
    )
    return loader, indices


def _checkpoint_to_resume(config, paths: dict[str, Path], resume: bool) -> dict[str, Any] | None:
    """The last checkpoint when resuming (with the same config); refuses to overwrite a run otherwise."""
    if not resume:
        if paths["last"].exists():
            raise InputError(
                "run folder already holds a checkpoint: continue it with --resume or pick another --run-dir",
                paths["last"].parent.parent,
            )
        return None
    if not paths["last"].is_file():
        raise InputError("nothing to resume: no checkpoint yet", paths["last"])
    state = load_checkpoint(paths["last"])
    check_same_recipe(config, state, paths["config"])
    if config["training"]["epochs"] <= state["epoch"]:
        raise InputError(
            f"the run has finished its {state['epoch']} epochs; to extend it, resume with more "
            f"(--set training.epochs=N)",
            paths["last"],
        )
    return state


def check_same_recipe(config: Mapping[str, Any], state: Mapping[str, Any], source: Path) -> None:
    """Refuses a config that would train other than the checkpoint's run (its length may differ)."""
    changed = [
        key
        # a run older than a config key is compared as if it had the key's default, as export reads it
        for key in differences(merge(DEFAULTS, state["config"]), config)
        if key.split(".")[0] not in LOCATION_SECTIONS and key not in EXTENDABLE_SETTINGS
    ]
    if changed:
        raise InputError(
            f"config differs from the run's ({', '.join(changed[:6])}); resume with the same config", source
        )


def _real_sampler(cases: list[CachedCase], region, foreground_fraction: float, augmentation):
    """Patches of the scans, and with probability ``drawn_head.p`` of one of their drawn-head variants."""
    scans = PatchSampler([c for c in cases if c.head_draw is None], region, foreground_fraction)
    headed = [c for c in cases if c.head_draw is not None]
    if not headed:
        return scans
    p = augmentation["drawn_head"]["p"]
    return MixedPatchSampler([(scans, 1 - p), (PatchSampler(headed, region, foreground_fraction), p)])


def _cached_cases(config, cases, names, context, say):
    """Rank 0 fills the cache (reporting each case) while the other ranks wait, then all open it."""
    cache_dir = Path(config["output"]["cache_dir"])
    augmentation, drawn_head = config["augmentation"], config["augmentation"]["drawn_head"]
    head_draws = drawn_head["draws"] if augmentation["enabled"] and drawn_head["p"] > 0 else 0
    arguments = (cache_dir, config["task"], names, config["preprocessing"])

    def report(case_id: str, built: bool) -> None:
        if built:
            say(f"preprocessed {case_id}")

    if context.is_main:
        cached = load_or_build(cases, *arguments, on_case=report, head_draws=head_draws)
        for case in cached:
            for warning in case.warnings:  # on every run, not only the one that preprocessed the case
                say(f"{case.id}: warning: {warning}")
        distributed.barrier(context)
        return cached
    distributed.barrier(context)
    return load_or_build(cases, *arguments, build=False, head_draws=head_draws)


def _optimizer(network: torch.nn.Module, settings: Mapping[str, Any]) -> torch.optim.Optimizer:
    if settings["name"] == "adamw":
        return torch.optim.AdamW(
            network.parameters(), lr=settings["learning_rate"], weight_decay=settings["weight_decay"]
        )
    return torch.optim.SGD(
        network.parameters(),
        lr=settings["learning_rate"],
        momentum=settings["momentum"],
        nesterov=settings["momentum"] > 0,
        weight_decay=settings["weight_decay"],
    )


def _write_text(path: Path, text: str) -> None:
    def write(temporary: Path) -> None:
        temporary.write_text(text)

    publish_file(write, path, overwrite=True)
