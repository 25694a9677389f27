"""Run configurations: YAML files merged over defaults, checked before any data is touched.

Every key a run may use is listed in DEFAULTS; a key that is not there is an error, because a typo
in a hyper-parameter name would otherwise train silently with the default value.
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from WMHSegmenterLib.engine.bundle import DEFAULT_MIRROR_AXES, MIRROR_AXES_RULE, are_mirror_axes, is_number
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.postprocess import ISLAND_MEASURES
from WMHSegmenterLib.engine.preprocessing import require_bias_correction

#: Relative paths in a config are relative to the repository (the folder holding Training/).
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

TASKS = ("wmh", "brats")
LAYOUTS = ("wmh2017", "brats", "csv", "folder")
LOSS_TERMS = ("dice", "jaccard", "ce", "blob")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("poly", "cosine", "constant")

DEFAULTS: dict[str, Any] = {
    "task": "wmh",
    "data": {
        "layout": "folder",
        "root": None,
        "inputs": None,  # modality names, the first is the reference grid; None: the task's inputs
        "label_file": "lesions",  # folder layout: <case>/<label_file>.nii.gz
        "image_files": None,  # folder layout: modality -> file stem; None: the modality's name
        "folds": 5,
        "fold": 0,  # 0..folds-1, or "all": train on every case and validate on the training cases
        "split_seed": 0,
    },
    # bias_correction "n4": each channel divided by its N4 bias field before the z-score (training and use)
    "preprocessing": {"spacing_xyz_mm": [1.0, 1.0, 1.0], "crop_margin_mm": 10.0, "bias_correction": None},
    "network": {
        "features": [16, 32, 64, 128],
        "kernel_sizes": None,
        "strides": None,
        "convs_per_block": 2,
        "norm": "instance",
        "activation": "leakyrelu",
        "residual": False,
        "deep_supervision": True,
    },
    "training": {
        "seed": 0,
        "epochs": 100,
        "iterations_per_epoch": 250,
        "batch_size": 2,
        "patch_size_zyx": [96, 96, 96],
        "foreground_fraction": 0.33,
        "loss": "dice+ce",
        "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.99, "weight_decay": 3e-5},
        "schedule": {"name": "poly", "exponent": 0.9, "warmup_iterations": 0},
        "gradient_clip_norm": 12.0,
        "amp": True,
        "workers": 0,
        # a bundle (id or folder) whose weights start the run instead of random ones: fine-tuning
        "initial_weights": None,
    },
    "augmentation": {
        "enabled": True,
        "context_fraction": 0.125,
        "affine": {"p": 0.2, "degrees": 15.0, "scales": [0.85, 1.25]},
        "elastic": {"p": 0.05, "control_points": 7, "max_displacement_mm": 6.0},
        "flip": {"p": 0.5, "axes": [0, 1, 2]},
        "gamma": {"p": 0.3, "log_gamma": [-0.3, 0.3]},
        "noise": {"p": 0.1, "std": [0.0, 0.1]},
        "blur": {"p": 0.1, "std_mm": [0.5, 1.0]},
        # mean_over_std: raw tissue mean / SD per channel, [0, 0] multiplies the z-scores (see augmentation)
        "bias_field": {"p": 0.1, "coefficients": 0.3, "per_channel": False, "mean_over_std": [0.0, 0.0]},
        "slice_thickness": {"p": 0.2, "axes": [0, 1, 2], "downsampling": [1.5, 5.0]},
        # share of real patches taken from the case with a drawn head (skull-stripped FLAIR only), and
        # how many heads are drawn per case (each preprocessed once into the cache)
        "drawn_head": {"p": 0.0, "draws": 4},
    },
    # overlap/mirror None: the inference settings, so the checkpoint is chosen by the predictor users get
    "validation": {"every_epochs": 5, "max_cases": None, "overlap": None, "mirror": None},
    # written to the bundle; patch_size_zyx None: the training patch
    "inference": {
        "overlap": 0.5,
        "tile_batch": 1,
        "mirror": False,
        # axes of the working grid (0 z, 1 y, 2 x: left-right) that mirroring flips, every combination
        "mirror_axes": list(DEFAULT_MIRROR_AXES),
        "min_component_voxels": 0,
        # islands under this fraction of the largest are removed (1: the largest only); 0 keeps all
        "min_island_fraction": 0.0,
        "largest_component_only": False,  # the fraction's older name: true means min_island_fraction 1
        # what the fraction compares: island "size", or "confidence" (mean probability, islands >= 1/4
        # of the largest's size)
        "island_measure": "size",
        # islands split where narrower than a ball of this radius before they are measured; 0 does not
        "island_neck_mm": 0.0,
        "brain_mask": False,  # crop, z-score and segment inside an automatic brain mask (skull-on FLAIR)
        "refine_on_input_grid": False,  # lesion borders redrawn from the input's own voxels (WMH)
        "patch_size_zyx": None,
    },
    "output": {"runs_dir": "runs", "name": None, "cache_dir": None},
    # synthetic FLAIR patches mixed into training (wmhseg_training/synthetic/); fraction 0 turns it off
    "synthetic": {"fraction": 0.0, "foreground_fraction": None, "anatomies": [], "generator": {}},
}

#: Keys whose value is a free-form mapping (not checked key by key against DEFAULTS).
FREE_FORM = {("data", "image_files"), ("synthetic", "generator")}


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """The config file merged over DEFAULTS, then ``key.path=value`` overrides (values parsed as YAML)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("config file not found", path)
    try:
        user = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise InputError("not a YAML text file (not UTF-8)", path) from None
    except yaml.YAMLError as error:
        raise InputError(f"not valid YAML ({str(error).splitlines()[0]})", path) from None
    if not isinstance(user, dict):
        raise InputError("a config must be a mapping of sections", path)
    config = merge(DEFAULTS, user, source=path)
    for override in overrides:
        apply_override(config, override)
    if config["output"]["name"] is None:
        config["output"]["name"] = path.stem
    return config


def merge(defaults: Mapping[str, Any], user: Mapping[str, Any], source: Path | None = None, prefix=()):
    """A deep copy of ``defaults`` with ``user`` values put in; unknown keys are errors."""
    merged = copy.deepcopy(dict(defaults))
    for key, value in user.items():
        where = (*prefix, key)
        if key not in defaults:
            close = difflib.get_close_matches(str(key), list(defaults), n=1)
            hint = f" (did you mean {'.'.join((*prefix, close[0]))}?)" if close else ""
            raise InputError(f"unknown config key {'.'.join(map(str, where))}{hint}", source)
        if isinstance(defaults[key], dict) and where not in FREE_FORM:
            if not isinstance(value, dict):
                raise InputError(f"config key {'.'.join(where)} must be a mapping", source)
            merged[key] = merge(defaults[key], value, source, where)
        elif isinstance(defaults[key], dict) and isinstance(value, dict):
            merged[key] = _laid_over(defaults[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _laid_over(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` laid over a free-form ``base`` key by key at every depth, any key allowed.

    So ``--set synthetic.generator.contrast.lesion=[1.1,2.0]`` changes that one range and keeps the
    config's other generator settings, as ``--set`` does in every other section.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _laid_over(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_override(config: dict[str, Any], override: str) -> None:
    """Set one ``section.key=value`` (``--set training.epochs=2``) after checking the key exists."""
    key, separator, text = override.partition("=")
    if not separator:
        raise InputError(f"--set needs key=value, got {override!r}")
    *parents, leaf = key.strip().split(".")
    user: dict[str, Any] = {leaf: yaml.safe_load(text)}
    for parent in reversed(parents):
        user = {parent: user}
    config.update(merge(config, user))


def resolve_paths(config: dict[str, Any], base: Path = REPOSITORY_ROOT) -> dict[str, Any]:
    """Absolute data, runs and cache paths, so the stored config means the same from any folder."""
    resolved = copy.deepcopy(config)
    data, output = resolved["data"], resolved["output"]
    if data["root"] is None:
        raise InputError("config needs data.root (or give --data)")
    data["root"] = str((base / Path(data["root"]).expanduser()).resolve())
    output["runs_dir"] = str((base / Path(output["runs_dir"]).expanduser()).resolve())
    if output["cache_dir"] is None:
        output["cache_dir"] = str(Path(output["runs_dir"]) / "cache")
    output["cache_dir"] = str((base / Path(output["cache_dir"]).expanduser()).resolve())
    initial = resolved["training"]["initial_weights"]
    if initial is not None and (base / Path(initial).expanduser()).is_dir():
        resolved["training"]["initial_weights"] = str((base / Path(initial).expanduser()).resolve())
    return resolved


def check_config(config: Mapping[str, Any]) -> None:
    """Refuse a run that could not finish or would not mean what it says, before reading any data."""
    from .metadata import network_config

    training, data = config["training"], config["data"]
    _require(config["task"] in TASKS, f"task must be one of {TASKS}, got {config['task']!r}")
    _require(data["layout"] in LAYOUTS, f"data.layout must be one of {LAYOUTS}, got {data['layout']!r}")
    _require(
        _is_int(data["folds"]) and data["folds"] >= 2,
        f"data.folds must be an integer >= 2, got {data['folds']!r}",
    )
    _require(
        data["fold"] == "all" or (_is_int(data["fold"]) and 0 <= data["fold"] < data["folds"]),
        f"data.fold must be 0..{data['folds'] - 1} or 'all', got {data['fold']!r}",
    )
    for key in ("epochs", "iterations_per_epoch", "batch_size"):
        _require(_is_int(training[key]) and training[key] >= 1, f"training.{key} must be a positive integer")
    _require(_is_int(training["workers"]) and training["workers"] >= 0, "training.workers must be >= 0")
    _require(
        is_number(training["foreground_fraction"]) and 0 <= training["foreground_fraction"] <= 1,
        "training.foreground_fraction must be a number in [0, 1]",
    )
    max_cases = config["validation"]["max_cases"]
    _require(
        max_cases is None or (_is_int(max_cases) and max_cases >= 1),
        "validation.max_cases must be a positive integer or null (all)",
    )
    terms = loss_terms(training["loss"])
    _require(bool(terms), f"training.loss must join {LOSS_TERMS} with '+', got {training['loss']!r}")
    _require(
        "blob" not in terms or config["task"] == "wmh",
        "training.loss: the 'blob' term scores WMH lesions one by one; it is for task wmh only",
    )
    _require(
        training["optimizer"]["name"] in OPTIMIZERS, f"training.optimizer.name must be one of {OPTIMIZERS}"
    )
    optimizer = training["optimizer"]
    _require(
        is_number(optimizer["learning_rate"]) and optimizer["learning_rate"] >= 0,
        f"training.optimizer.learning_rate must be a number >= 0, got {optimizer['learning_rate']!r}",
    )
    for key in ("weight_decay", "momentum"):
        _require(
            key not in optimizer or (is_number(optimizer[key]) and optimizer[key] >= 0),
            f"training.optimizer.{key} must be a number >= 0, got {optimizer.get(key)!r}",
        )
    _require(training["schedule"]["name"] in SCHEDULES, f"training.schedule.name must be one of {SCHEDULES}")
    _require(
        _is_int(config["validation"]["every_epochs"]) and config["validation"]["every_epochs"] >= 1,
        "validation.every_epochs must be a positive integer",
    )
    spacing = config["preprocessing"]["spacing_xyz_mm"]
    _require(
        isinstance(spacing, list)
        and len(spacing) == 3
        and all(s is None or (isinstance(s, int | float) and s > 0) for s in spacing),
        "preprocessing.spacing_xyz_mm must be three positive numbers (or null to keep the input's)",
    )
    require_bias_correction(config["preprocessing"]["bias_correction"])
    patch = training["patch_size_zyx"]
    _require(
        _is_patch_size(patch),
        "training.patch_size_zyx must be three positive integers",
    )
    try:
        unet = network_config(config)
    except (TypeError, ValueError) as error:
        raise InputError(f"network section: {error}") from None
    stride = unet.total_stride
    _require(
        all(p % s == 0 for p, s in zip(patch, stride)),
        f"training.patch_size_zyx {patch} must be divisible by the network's total stride {list(stride)}",
    )
    fraction = config["inference"]["min_island_fraction"]
    _require(
        is_number(fraction) and 0 <= fraction <= 1,
        "inference.min_island_fraction must be a number in [0, 1]",
    )
    neck = config["inference"]["island_neck_mm"]
    _require(is_number(neck) and neck >= 0, "inference.island_neck_mm must be a number >= 0")
    _require(are_mirror_axes(config["inference"]["mirror_axes"]), f"inference.mirror_axes {MIRROR_AXES_RULE}")
    _require(
        config["inference"]["island_measure"] in ISLAND_MEASURES,
        f"inference.island_measure must be one of {ISLAND_MEASURES}",
    )
    inference_patch = config["inference"]["patch_size_zyx"]
    _require(
        inference_patch is None
        or (_is_patch_size(inference_patch) and all(p % s == 0 for p, s in zip(inference_patch, stride))),
        f"inference.patch_size_zyx must be null or three positive integers divisible by {list(stride)}",
    )
    if config["augmentation"]["enabled"]:
        _check_augmentation(config["augmentation"], patch)
        _check_drawn_head(config["augmentation"]["drawn_head"], config["task"])
    _check_synthetic(config["synthetic"], config["task"])


def _check_synthetic(section: Mapping[str, Any], task: str) -> None:
    """Parse the generator settings now, so a typo fails before any data is read."""
    fraction = section["fraction"]
    _require(is_number(fraction) and 0 <= fraction <= 1, "synthetic.fraction must be a number in [0, 1]")
    if fraction == 0:
        return
    _require(task == "wmh", "synthetic data makes FLAIR with white matter lesions: only for task wmh")
    _require(bool(section["anatomies"]), "synthetic.anatomies needs at least one anatomy when fraction > 0")
    from .synthetic.generator import GeneratorSettings

    GeneratorSettings.from_mapping(section["generator"])


def _check_drawn_head(settings: Mapping[str, Any], task: str) -> None:
    _require(
        is_number(settings["p"]) and 0 <= settings["p"] <= 1,
        "augmentation.drawn_head.p must be a number in [0, 1]",
    )
    _require(
        _is_int(settings["draws"]) and settings["draws"] >= 1,
        "augmentation.drawn_head.draws must be a positive integer",
    )
    _require(
        settings["p"] == 0 or task == "wmh",
        "augmentation.drawn_head draws a head around a skull-stripped FLAIR: only for task wmh",
    )


def _check_augmentation(settings: Mapping[str, Any], patch_size_zyx) -> None:
    """Build the transforms once now: a bad range would otherwise fail inside a data-loader worker."""
    import numpy as np

    from .augmentation import Augmentation

    try:
        Augmentation(settings).transforms(np.asarray(patch_size_zyx[::-1], dtype=float))
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"augmentation section: {error}") from None


def loss_terms(loss: str) -> tuple[str, ...]:
    """``"dice+ce"`` -> ("dice", "ce"); empty when any part is not a known term."""
    terms = tuple(part.strip() for part in str(loss).split("+"))
    return terms if terms and all(term in LOSS_TERMS for term in terms) else ()


def dump_config(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False)


def differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ: what stops a resume from continuing the same run."""
    changed = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += differences(a, b, f"{prefix}{key}.")
        elif a != b and not (isinstance(a, float) and isinstance(b, float) and math.isclose(a, b)):
            changed.append(f"{prefix}{key}")
    return changed


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_patch_size(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(_is_int(p) and p > 0 for p in value)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)
