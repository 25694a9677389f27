"""A run's checkpoint -> a model bundle `wmhseg segment`, Slicer and the web app load like any other.

The bundle is written by the engine's ``save_bundle`` (weights as safetensors with their sha256), into
a temporary folder renamed into place, so a half-exported bundle never appears in a models folder.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from WMHSegmenterLib.engine.bundle import ModelBundle, find_bundle, save_bundle
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.preprocessing import require_bias_correction
from WMHSegmenterLib.engine.unet import Ensemble, UNet3D
from WMHSegmenterLib.engine.volume import make_output_folder

from .checkpoints import load_checkpoint
from .config import (
    DEFAULTS,
    REPOSITORY_ROOT,
    apply_override,
    check_config,
    differences,
    merge,
    resolve_paths,
)
from .initial_weights import TRAINING_ONLY_PREFIX
from .loop import run_paths
from .metadata import (
    UNRECORDED_PRECISION,
    bundle_metadata,
    input_names,
    island_setting_upgraded,
    network_config,
    validated_inference_settings,
    validation_preprocessing,
    validation_settings,
    with_current_patterns,
)
from .model_card import model_card
from .validation import scored_with_bundle_settings

CHECKPOINT_CHOICES = ("auto", "best", "last")
#: Preprocessing a reissue may change: an intensity correction, which leaves the network's grid and crop.
REISSUABLE_PREPROCESSING = ("bias_correction",)
INTENDED_USE = {
    "wmh": "Research: segmenting white matter hyperintensities on brain FLAIR MRI of adults.",
    "brats": "Research: segmenting glioma sub-regions (necrotic core, edema, enhancing tumor) on "
    "co-registered, skull-stripped FLAIR, T1, T1ce and T2 MRI.",
}


def export_run(
    run_dir: str | Path,
    model_id: str,
    out: str | Path,
    checkpoint: str = "auto",
    version: str = "1.0.0",
    name: str | None = None,
    overwrite: bool = False,
    card_notes: str | Path | None = None,
    inference: Sequence[str] = (),
    members: Sequence[str | Path] = (),
) -> ModelBundle:
    """Bundle the best checkpoint (``auto``: best if validation ever ran, else last) of ``run_dir``.

    ``card_notes`` is a Markdown file appended to the generated model card. ``inference`` holds
    ``key=value`` settings of the bundle's inference section chosen after training (patch size,
    overlap, mirroring, cleaning), as nnU-Net picks its post-processing once the folds are done;
    model.json keeps the training's own values under ``training.hyperparameters``.
    ``members``: more networks of the same recipe (run folders, or bundles of one network) to ship
    with the run's as an ensemble, its weights in float16; the run's network is the first member.
    """
    out = Path(out)
    if not model_id or any(c in model_id for c in "/\\ "):
        raise InputError(f"model id must be a non-empty name without slashes or spaces, got {model_id!r}")
    _refuse_to_replace(out, overwrite)
    chosen = chosen_checkpoint(Path(run_dir), checkpoint)
    notes = _read_notes(card_notes)
    state = load_checkpoint(chosen)
    config = state["config"]
    network = inference_network(state)
    shipped = bundle_config(config, inference)
    meta = bundle_metadata(shipped, model_id, version)
    meta["name"] = name or model_id
    meta["intended_use"] = INTENDED_USE[config["task"]]
    meta["training"] = _json_safe(training_provenance(state, chosen.name))
    if members:
        others = [member_network(source, config, checkpoint) for source in members]
        network = Ensemble(
            [network, *(other for other, _ in others)], meta["outputs"]["activation"] == "sigmoid"
        )
        meta["training"]["members"] = _json_safe([record for _, record in others])
    validation = scored_with_bundle_settings(
        validation_summary(state), network, shipped, state["data"]["validation_cases"], Path(run_dir)
    )
    meta["validation"] = _json_safe(validation)

    weights_dtype = "float16" if members else "float32"
    return _write_bundle(network, meta, out, model_card(meta, notes), weights_dtype)


def chosen_checkpoint(run_dir: Path, checkpoint: str) -> Path:
    """``best`` or ``last``; ``auto``: best if validation ever ran, else last."""
    paths = run_paths(run_dir)
    if checkpoint not in CHECKPOINT_CHOICES:
        raise InputError(f"checkpoint must be one of {', '.join(CHECKPOINT_CHOICES)}, got {checkpoint!r}")
    if checkpoint == "best" or (checkpoint == "auto" and paths["best"].is_file()):
        return paths["best"]
    return paths["last"]


def member_network(source: str | Path, config: dict[str, Any], checkpoint: str) -> tuple[UNet3D, dict]:
    """Another network for an ensemble with ``config``'s run, and the record model.json keeps of it.

    ``source`` is a run folder (its ``checkpoint``) or a bundle of one network (id or folder). It must
    read the same inputs through the same preprocessing into the same architecture: averaging networks
    that see different images would average different questions.
    """
    where = Path(source)
    if (where / "checkpoints").is_dir():
        chosen = chosen_checkpoint(where, checkpoint)
        state = load_checkpoint(chosen)
        other = state["config"]
        network, task, inputs, preprocessing = (
            inference_network(state),
            other["task"],
            input_names(other),
            other["preprocessing"],
        )
        record = {
            "run": where.name,
            "checkpoint": chosen.name,
            "epochs": state["epoch"],
            "seed": other["training"]["seed"],
            "seconds": round(float(state["seconds"]), 1),
            "initial_weights": state.get("initial_weights"),
        }
    else:
        bundle = find_bundle(source)
        if bundle.members > 1:
            raise InputError("already an ensemble: give its members' runs or bundles instead", bundle.folder)
        where = bundle.folder
        network, task, inputs, preprocessing = (
            bundle.load_network(),
            bundle.task,
            bundle.input_names,
            bundle.preprocessing,
        )
        record = {"bundle": bundle.id, "version": bundle.version, "sha256": bundle.meta["weights"]["sha256"]}
    if task != config["task"] or inputs != input_names(config):
        raise InputError(
            f"a {task} model reading {inputs}; the run is {config['task']} reading {input_names(config)}",
            where,
        )
    if network.config != network_config(config, deep_supervision=False):
        raise InputError("its network differs from the run's: an ensemble needs one architecture", where)
    changed = differences(config["preprocessing"], preprocessing)
    if changed:
        raise InputError(f"preprocesses differently from the run ({', '.join(changed)})", where)
    return network, record


def inference_network(state: dict[str, Any]) -> UNet3D:
    """A checkpoint's network as a bundle holds it: without the deep-supervision heads."""
    network = UNet3D(network_config(state["config"], deep_supervision=False))
    weights = {k: v for k, v in state["model"].items() if not k.startswith(TRAINING_ONLY_PREFIX)}
    network.load_state_dict(weights, strict=True)
    return network


def bundle_config(config: dict[str, Any], inference: Sequence[str] = ()) -> dict[str, Any]:
    """A run's config as its bundle will run: with ``key=value`` inference settings chosen after training."""
    shipped = merge(DEFAULTS, config)  # runs older than a config key get its default
    shipped["inference"] = island_setting_upgraded(shipped["inference"])
    for setting in inference:
        apply_override(shipped, f"inference.{setting}")
    check_config(shipped)
    return shipped


def reissue_bundle(
    bundle_dir: str | Path,
    out: str | Path,
    version: str,
    inference: Sequence[str] = (),
    card_notes: str | Path | None = None,
    overwrite: bool = False,
    preprocessing: Sequence[str] = (),
) -> ModelBundle:
    """A bundle's weights again under a new version, with inference settings chosen after training.

    For when the run folder is gone (a fresh machine) but a setting such as ``brain_mask`` is chosen
    later: weights and training record are kept as they are, ``reissued_from`` says which bundle this
    was, and the validation cases are scored again with the new settings where their data is at hand.
    ``preprocessing``: ``key=value`` settings of the bundle's preprocessing; only those in
    REISSUABLE_PREPROCESSING, since the grid and the crop are what the network learned on.
    """
    source = ModelBundle(bundle_dir)
    if "hyperparameters" not in source.meta.get("training", {}) or "validation" not in source.meta:
        raise InputError("not a bundle made by wmhseg-train export (no training record)", source.folder)
    if version == source.meta["version"]:
        raise InputError(
            f"is already version {version}; a reissue needs a new version (it would name itself its parent)",
            source.folder,
        )
    out = Path(out)
    _refuse_to_replace(out, overwrite)
    notes = _read_notes(card_notes)
    shipped = {
        "inference": island_setting_upgraded({**DEFAULTS["inference"], **source.meta["inference"]}),
        "preprocessing": reissued_preprocessing(source, preprocessing),
    }
    for setting in inference:
        apply_override(shipped, f"inference.{setting}")
    meta = copy.deepcopy(source.meta)
    meta.update(version=version, **shipped)
    meta["inputs"] = with_current_patterns(meta["task"], meta["inputs"])
    meta["reissued_from"] = {"id": source.id, "version": source.meta["version"]}
    network = source.load_network()
    validation = {
        **meta["validation"],
        "inference": validation_settings(meta),
        "preprocessing": validation_preprocessing(meta),
    }
    run_config = _run_config(meta["training"]["hyperparameters"])
    if run_config is not None:
        validation = scored_with_bundle_settings(
            validation,
            network,
            {**run_config, **shipped},
            meta["training"]["data"]["validation_cases"],
            source.folder,
        )
    meta["validation"] = _json_safe(validation)
    weights_dtype = source.meta["weights"].get("dtype", "float32")
    return _write_bundle(network, meta, out, model_card(meta, notes), weights_dtype)


def reissued_preprocessing(source: ModelBundle, settings: Sequence[str]) -> dict[str, Any]:
    """The source bundle's preprocessing with ``key=value`` settings applied, refused in one line if a
    setting is one the weights are bound to or its value is not one the engine knows."""
    preprocessing = {"preprocessing": {**DEFAULTS["preprocessing"], **source.preprocessing}}
    for setting in settings:
        key = setting.partition("=")[0].strip()
        if key not in REISSUABLE_PREPROCESSING:
            raise InputError(
                f"preprocessing.{key} cannot change after training (the network learned on that grid "
                f"and crop); a reissue may set {', '.join(REISSUABLE_PREPROCESSING)}",
                source.folder,
            )
        apply_override(preprocessing, f"preprocessing.{setting}")
    require_bias_correction(preprocessing["preprocessing"]["bias_correction"], source.folder)
    return preprocessing["preprocessing"]


def _run_config(hyperparameters: dict[str, Any]) -> dict[str, Any] | None:
    """The run's config from model.json, its paths resolved; None where this version cannot read it
    (a key since removed), which leaves the validation table as recorded."""
    try:
        return resolve_paths(merge(DEFAULTS, hyperparameters))
    except InputError:
        return None


def _refuse_to_replace(out: Path, overwrite: bool) -> None:
    """Checked before any work, so a refused export or reissue fails at once. ``overwrite`` replaces
    an earlier bundle only: never a file, and never another folder (a run folder, the runs folder),
    which replacing would delete with its checkpoints."""
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a bundle folder", out)
    if out.exists() and any(out.iterdir()):
        if not (out / "model.json").is_file():
            raise InputError("folder holds other files, not a bundle (no model.json); choose another", out)
        if not overwrite:
            raise InputError("output folder exists and is not empty (use --overwrite to replace it)", out)
    make_output_folder(out.parent)


def _write_bundle(
    network, meta: dict[str, Any], out: Path, card: str, weights_dtype: str = "float32"
) -> ModelBundle:
    """Into a temporary folder renamed into place: a half-written bundle never appears."""
    temporary = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        save_bundle(network, meta, temporary, card, weights_dtype)
        if out.exists():
            shutil.rmtree(out)
        temporary.rename(out)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return ModelBundle(out)


def _read_notes(path: str | Path | None) -> str:
    if path is None:
        return ""
    path = Path(path)
    if not path.is_file():
        raise InputError("model card notes not found", path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("model card notes are not UTF-8 text", path) from None


def training_provenance(state: dict[str, Any], checkpoint_name: str) -> dict[str, Any]:
    config = copy.deepcopy(state["config"])
    config["data"]["root"] = recorded_path(config["data"]["root"])
    if config["training"].get("initial_weights") is not None:
        config["training"]["initial_weights"] = recorded_path(config["training"]["initial_weights"])
    return {
        "trained": True,
        "checkpoint": checkpoint_name,
        "epochs": state["epoch"],
        "epochs_planned": config["training"]["epochs"],
        "iterations_per_epoch": config["training"]["iterations_per_epoch"],
        "data": {
            "layout": config["data"]["layout"],
            "root": config["data"]["root"],
            "fold": config["data"]["fold"],
            "folds": config["data"]["folds"],
            **state["data"],
        },
        "code_version": state["code_version"],
        "date": state["saved"],
        "hardware": state["hardware"],
        "sessions": state.get("sessions", []),
        "seconds": round(float(state["seconds"]), 1),
        "initial_weights": state.get("initial_weights"),
        "hyperparameters": {key: value for key, value in config.items() if key != "output"},
    }


def recorded_path(path: str) -> str:
    """A path beside the repository as seen from it (``../shared/data/open_ms``), others unchanged.

    model.json should say where the training data lay, not the user name and folders of the machine
    that trained it; a path outside the repository's parent folder is kept as given.
    """
    resolved = Path(path)
    if not resolved.is_absolute() or not resolved.is_relative_to(REPOSITORY_ROOT.parent):
        return path
    return os.path.relpath(resolved, REPOSITORY_ROOT)


def validation_summary(state: dict[str, Any]) -> dict[str, Any]:
    data = state["data"]
    return {
        "inference": validated_inference_settings(merge(DEFAULTS, state["config"])),
        "metrics": state["validation_metrics"],
        "precision": state.get("validation_precision", UNRECORDED_PRECISION),
        "epoch": state["epoch"],
        "cases": len(data["validation_cases"]),
        "selection": state["best"],
        "on_training_data": state["config"]["data"]["fold"] == "all",
        "method": "whole volumes through the engine's Predictor, scored by the engine's metrics on each "
        "case's original grid",
    }


def _json_safe(value: Any) -> Any:
    """NaN (e.g. AVD of a lesion-free reference) as null: strict JSON readers reject NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
