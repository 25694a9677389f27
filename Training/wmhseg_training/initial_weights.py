"""Starting a run from a bundle's weights instead of random ones: fine-tuning a shipped model.

A researcher with their own scans, or a longer schedule for an undertrained model, starts from what a
bundle already learned. The bundle must hold the very network the config builds (same task, inputs
and layers), so nothing is silently reshaped or left random; only the deep-supervision heads, which
bundles drop, start fresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from WMHSegmenterLib.engine.bundle import ModelBundle, find_bundle
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.unet import UNet3D

from .config import differences
from .metadata import input_names, network_config

#: Layers a bundle does not carry: they help training only and are dropped on export.
TRAINING_ONLY_PREFIX = "deep_heads."


def initial_bundle(config: Mapping[str, Any]) -> ModelBundle | None:
    """The bundle named by training.initial_weights (id or folder), checked against the config."""
    source = config["training"]["initial_weights"]
    if source is None:
        return None
    bundle = find_bundle(source)
    where = bundle.folder / "model.json"
    if bundle.members > 1:
        raise InputError(
            f"training.initial_weights: an ensemble of {bundle.members} networks; start from a bundle "
            "of one network (an exported run)",
            where,
        )
    if bundle.task != config["task"]:
        raise InputError(
            f"training.initial_weights: a {bundle.task} model, the run is {config['task']}", where
        )
    if bundle.input_names != input_names(config):
        raise InputError(
            f"training.initial_weights: the model reads {bundle.input_names}, the run {input_names(config)}",
            where,
        )
    if bundle.network_config() != network_config(config, deep_supervision=False):
        raise InputError(
            "training.initial_weights: the model's network section differs from the run's", where
        )
    return bundle


def preprocessing_changes(bundle: ModelBundle, config: Mapping[str, Any]) -> list[str]:
    """Each preprocessing setting the run changes from the bundle's, as "key: bundle's -> run's".

    Moving trained weights onto other preprocessing (bias-corrected images, say) is a legitimate
    experiment, so it is reported rather than refused: the run uses its config's settings either way.
    """
    trained, run = bundle.preprocessing, config["preprocessing"]
    return [f"{key}: {trained.get(key)!r} -> {run.get(key)!r}" for key in differences(trained, run)]


def load_initial_weights(network: UNet3D, bundle: ModelBundle) -> None:
    """Copy the bundle's checked weights into ``network``; every layer but the training-only heads."""
    trained = bundle.load_network("cpu").state_dict()
    outcome = network.load_state_dict(trained, strict=False)
    left_random = [key for key in outcome.missing_keys if not key.startswith(TRAINING_ONLY_PREFIX)]
    if left_random or outcome.unexpected_keys:
        raise InputError(
            f"training.initial_weights: weights do not fit the run's network "
            f"({len(left_random)} missing, {len(outcome.unexpected_keys)} unexpected)",
            bundle.weights_path,
        )


def initial_weights_record(bundle: ModelBundle | None) -> dict[str, Any] | None:
    """What model.json records about the starting weights."""
    if bundle is None:
        return None
    return {"id": bundle.id, "version": bundle.version, "sha256": bundle.meta["weights"]["sha256"]}
