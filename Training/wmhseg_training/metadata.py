"""From a run's config to the engine's objects: the U-Net's configuration and the bundle's model.json.

Validation and export build the same metadata here, so the model scored during training is the model
that ships.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.postprocess import island_fraction
from WMHSegmenterLib.engine.tasks import task_metadata
from WMHSegmenterLib.engine.unet import UNetConfig

from .config import DEFAULTS

#: Modalities a task may add to its own inputs, with the patterns `wmhseg segment --input-dir` uses.
EXTRA_INPUTS = {
    "wmh": {"t1": {"name": "t1", "description": "T1", "patterns": ["*_t1", "*t1"]}},
    "brats": {},
}
WEIGHTS_FILE = "weights.safetensors"


def input_names(config: Mapping[str, Any]) -> list[str]:
    """The modalities the network reads, in channel order; the first one is the reference grid."""
    task_inputs = [spec["name"] for spec in task_metadata(config["task"])["inputs"]]
    return list(config["data"]["inputs"] or task_inputs)


def _known_inputs(task: str) -> dict[str, dict[str, Any]]:
    return {spec["name"]: spec for spec in task_metadata(task)["inputs"]} | EXTRA_INPUTS[task]


def with_current_patterns(task: str, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A bundle's inputs with this code's file-name patterns, so a reissued bundle finds a case's files
    as a new export would (the patterns say how files are named, not what the network learned)."""
    known = _known_inputs(task)
    return [
        {**spec, "patterns": list(known[spec["name"]]["patterns"])} if spec["name"] in known else spec
        for spec in inputs
    ]


def input_specs(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    task = config["task"]
    known = _known_inputs(task)
    names = input_names(config)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InputError(f"data.inputs: {task} models take {', '.join(known)}, not {', '.join(unknown)}")
    reference = task_metadata(task)["inputs"][0]["name"]
    if names[0] != reference:
        raise InputError(f"data.inputs must start with {reference}, the modality that defines the grid")
    if len(set(names)) != len(names):
        raise InputError("data.inputs lists a modality twice")
    return [copy.deepcopy(known[name]) for name in names]


def output_channel_count(task: str) -> int:
    return len(task_metadata(task)["outputs"]["channels"])


def network_config(config: Mapping[str, Any], deep_supervision: bool | None = None) -> UNetConfig:
    """The U-Net of this run; export switches deep supervision off (its extra heads only help training)."""
    network = dict(config["network"])
    if deep_supervision is not None:
        network["deep_supervision"] = deep_supervision
    for key in ("kernel_sizes", "strides"):
        if network[key] is not None:
            network[key] = tuple(tuple(level) for level in network[key])
    network["features"] = tuple(network["features"])
    return UNetConfig(
        in_channels=len(input_names(config)), out_channels=output_channel_count(config["task"]), **network
    )


def bundle_metadata(config: Mapping[str, Any], model_id: str, version: str = "0.0.0") -> dict[str, Any]:
    """model.json content except weights and training provenance (export adds those)."""
    meta = task_metadata(config["task"])
    meta["inputs"] = input_specs(config)
    meta.update(
        id=model_id,
        version=version,
        preprocessing=copy.deepcopy(config["preprocessing"]),
        network=network_config(config, deep_supervision=False).to_dict(),
        inference=inference_settings(config),
        weights={"file": WEIGHTS_FILE, "sha256": ""},
        training={"trained": False},
    )
    return meta


def inference_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The bundle's inference defaults: the config's, with the training patch where it sets none."""
    inference = island_setting_upgraded(config["inference"])
    return {
        **inference,
        "patch_size_zyx": list(inference["patch_size_zyx"] or config["training"]["patch_size_zyx"]),
    }


def island_setting_upgraded(inference: Mapping[str, Any]) -> dict[str, Any]:
    """``largest_component_only: true`` written as ``min_island_fraction: 1``, its newer form, so every
    settings derived from a config or bundle say the same thing the same way, and an ``--inference
    min_island_fraction=F`` given for a bundle or run using the old name takes effect."""
    return {**inference, "min_island_fraction": island_fraction(inference), "largest_component_only": False}


def validated_inference_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """What validation predicts with: the bundle's settings, ``validation.overlap``/``mirror`` where set."""
    settings = inference_settings(config)
    overrides = config.get("validation", {})  # model.json of runs older than these keys lacks them
    settings.update({key: overrides[key] for key in ("overlap", "mirror") if overrides.get(key) is not None})
    return settings


#: What validation computed in before runs recorded it: the engine ran float32 until mixed precision
#: became its default (2026-12-02).
UNRECORDED_PRECISION = "float32"


def validation_settings(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The inference settings a bundle's validation table was scored with: recorded beside the table
    since export scores it with the bundle's own settings; for bundles made before, the run's. A
    setting newer than the record was scored with its default."""
    recorded = meta["validation"].get("inference")
    return run_validation_settings(meta) if recorded is None else {**DEFAULTS["inference"], **recorded}


def validation_preprocessing(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The preprocessing a bundle's validation table was scored with: recorded beside the table once a
    reissue changed the bundle's; before that, the run's."""
    recorded = meta["validation"].get("preprocessing")
    return run_preprocessing(meta) if recorded is None else {**DEFAULTS["preprocessing"], **recorded}


def run_preprocessing(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The preprocessing the network was trained with (a setting newer than the run at its default)."""
    return {**DEFAULTS["preprocessing"], **meta["training"]["hyperparameters"]["preprocessing"]}


def run_validation_settings(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the training run validated with (a run older than a setting used its default, "off")."""
    hyperparameters = meta["training"]["hyperparameters"]
    run = {**hyperparameters, "inference": {**DEFAULTS["inference"], **hyperparameters["inference"]}}
    return validated_inference_settings(run)
