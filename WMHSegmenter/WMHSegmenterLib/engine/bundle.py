"""Model bundles: a folder with model.json, weights.safetensors and MODEL_CARD.md.

model.json says everything needed to run a model without reading code (inputs, outputs, preprocessing,
network, inference defaults, provenance). Weights are safetensors, hash-checked before loading, so a
bundle can never execute code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .postprocess import ISLAND_MEASURES, island_measure

FORMAT_VERSION = 1
WEIGHT_DTYPES = ("float32", "float16")
TASKS = ("wmh", "brats")
MODELS_ENV = "WMHSEG_MODELS"
BUNDLED_MODELS = Path(__file__).resolve().parents[2] / "Resources" / "Models"
log = logging.getLogger("wmhseg")


def is_number(value: Any) -> bool:
    """A number as JSON and YAML settings hold it; true and false are not, though Python counts them
    as integers."""
    return isinstance(value, int | float) and not isinstance(value, bool)


MIRROR_AXES_RULE = "must list one to three distinct axes of 0 (z), 1 (y), 2 (x)"
#: Mirroring flips every axis unless a bundle names fewer (bundles before the setting flip all three).
DEFAULT_MIRROR_AXES = (0, 1, 2)


def are_mirror_axes(value: Any) -> bool:
    """One to three distinct axes of the working grid (0 z, 1 y, 2 x; x is left-right), as a bundle or
    config names the axes test-time mirroring flips."""
    return (
        isinstance(value, list | tuple)
        and 0 < len(value) == len(set(value))
        and all(isinstance(axis, int) and not isinstance(axis, bool) and axis in (0, 1, 2) for axis in value)
    )


REQUIRED_KEYS = {
    "id": str,
    "version": str,
    "task": str,
    "inputs": list,
    "outputs": dict,
    "preprocessing": dict,
    "network": dict,
    "inference": dict,
    "weights": dict,
}


@dataclass(frozen=True)
class InputSpec:
    """One modality the model needs; patterns find it in a folder (``*`` stands for the case id)."""

    name: str
    description: str
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class OutputChannel:
    """A network output channel and the label value it paints (sigmoid channels paint in order)."""

    name: str
    label: int


@dataclass(frozen=True)
class LabelInfo:
    value: int
    name: str
    color: tuple[float, float, float]
    terminology: dict | None = None


class ModelBundle:
    """A validated model.json and the folder it lives in."""

    def __init__(self, folder: str | Path, meta: dict[str, Any] | None = None):
        """Read ``folder``/model.json, or take ``meta`` as it (training validates before export)."""
        self.folder = Path(folder)
        self.meta = (
            _read_model_json(self.folder / "model.json") if meta is None else _check_meta(meta, folder)
        )
        meta = self.meta
        self.id: str = meta["id"]
        self.version: str = meta["version"]
        self.task: str = meta["task"]
        self.inputs = tuple(
            InputSpec(i["name"], i.get("description", i["name"]), tuple(i.get("patterns", ())))
            for i in meta["inputs"]
        )
        outputs = meta["outputs"]
        self.output_activation: str = outputs["activation"]
        self.output_channels = tuple(OutputChannel(c["name"], int(c["label"])) for c in outputs["channels"])
        self.labels = tuple(
            LabelInfo(int(item["value"]), item["name"], tuple(item["color"]), item.get("terminology"))
            for item in outputs["labels"]
        )
        self.preprocessing: dict[str, Any] = meta["preprocessing"]
        self.inference: dict[str, Any] = meta["inference"]
        self._check_consistency()

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def weights_path(self) -> Path:
        return self.folder / self.meta["weights"].get("file", "weights.safetensors")

    @property
    def members(self) -> int:
        """How many networks the weights hold: more than one is an ensemble, averaged at inference."""
        return int(self.meta["weights"].get("members", 1))

    @property
    def trained(self) -> bool:
        """False for bundles made from freshly initialised networks (tests, smoke checks)."""
        return bool(self.meta.get("training", {}).get("trained", False))

    def network_config(self):
        from .unet import UNetConfig

        network = dict(self.meta["network"])
        network.pop("architecture", None)
        try:
            return UNetConfig(**network)
        except (TypeError, ValueError) as error:
            raise InputError(f"invalid network section ({error})", self.folder / "model.json") from None

    def load_network(self, device: str = "cpu"):
        """Build the U-Net (an :class:`Ensemble` of them for several members) and load its weights
        after checking their sha256. Weights stored as float16 are widened to float32."""
        from safetensors.torch import load_file

        from .unet import Ensemble, UNet3D

        expected = self.meta["weights"].get("sha256", "")
        if not self.weights_path.is_file():
            raise InputError("weights file missing", self.weights_path)
        actual = sha256_of(self.weights_path)
        if actual != expected:
            raise InputError(
                f"sha256 {actual[:12]}… does not match model.json ({expected[:12]}…): "
                "refusing tampered weights",
                self.weights_path,
            )
        if self.members == 1:
            network = UNet3D(self.network_config())
        else:
            members = [UNet3D(self.network_config()) for _ in range(self.members)]
            network = Ensemble(members, sigmoid=self.output_activation == "sigmoid")
        try:
            state = load_file(str(self.weights_path), device="cpu")
            network.load_state_dict(state, strict=True)
        except Exception as error:  # safetensors and torch raise several types for one problem
            raise InputError(
                f"weights do not fit the network ({str(error).splitlines()[0][:150]})", self.weights_path
            ) from None
        return network.to(device).eval()

    def summary(self) -> dict[str, Any]:
        """What `wmhseg models --json` prints for scripts."""
        return {
            "id": self.id,
            "name": self.meta.get("name", self.id),
            "task": self.task,
            "inputs": self.input_names,
            "version": self.version,
            "trained": self.trained,
            "networks": self.members,
            "validation": self.meta.get("validation", {}),
            "path": str(self.folder),
        }

    def _check_consistency(self) -> None:
        path = self.folder / "model.json"
        if self.task not in TASKS:
            raise InputError(f"task must be one of {TASKS}, got {self.task!r}", path)
        if self.output_activation not in ("softmax", "sigmoid"):
            raise InputError("outputs.activation must be softmax or sigmoid", path)
        if self.meta["network"].get("in_channels") != len(self.inputs):
            raise InputError("network.in_channels must equal the number of inputs", path)
        if self.meta["network"].get("out_channels") != len(self.output_channels):
            raise InputError("network.out_channels must equal the number of output channels", path)
        patch = self.inference.get("patch_size_zyx")
        if not (
            isinstance(patch, list) and len(patch) == 3 and all(isinstance(p, int) and p > 0 for p in patch)
        ):
            raise InputError("inference.patch_size_zyx must be three positive integers", path)
        members = self.meta["weights"].get("members", 1)
        if not (isinstance(members, int) and not isinstance(members, bool) and members >= 1):
            raise InputError(f"weights.members must be a positive integer, got {members!r}", path)
        fraction = self.inference.get("min_island_fraction", 0.0)
        if not (is_number(fraction) and 0 <= fraction <= 1):
            raise InputError(
                f"inference.min_island_fraction must be a number in [0, 1], got {fraction!r}", path
            )
        axes = self.inference.get("mirror_axes", DEFAULT_MIRROR_AXES)
        if not are_mirror_axes(axes):
            raise InputError(f"inference.mirror_axes {MIRROR_AXES_RULE}, got {axes!r}", path)
        neck = self.inference.get("island_neck_mm", 0.0)
        if not (is_number(neck) and neck >= 0):
            raise InputError(f"inference.island_neck_mm must be a number >= 0, got {neck!r}", path)
        measure = island_measure(self.inference)
        if measure not in ISLAND_MEASURES:
            raise InputError(
                f"inference.island_measure must be one of {ISLAND_MEASURES}, got {measure!r}", path
            )
        from .preprocessing import require_bias_correction

        require_bias_correction(self.preprocessing.get("bias_correction"), path)
        one_lesion_channel = self.output_activation == "softmax" and len(self.output_channels) == 2
        if self.inference.get("refine_on_input_grid") and not one_lesion_channel:
            raise InputError(
                "inference.refine_on_input_grid needs a softmax model with one lesion channel", path
            )


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_search_paths() -> list[Path]:
    """Folders holding bundles: those in $WMHSEG_MODELS first, then the ones shipped with the extension."""
    extra = [Path(p) for p in os.environ.get(MODELS_ENV, "").split(os.pathsep) if p]
    return [*extra, BUNDLED_MODELS]


def list_bundles() -> list[ModelBundle]:
    """The first bundle of each id in :func:`model_search_paths`. An unreadable one is skipped with a
    one-line warning naming it, so a broken folder among the user's models never hides the others."""
    found: dict[str, ModelBundle] = {}
    for root in model_search_paths():
        for model_json in sorted(root.glob("*/model.json")) if root.is_dir() else ():
            try:
                bundle = ModelBundle(model_json.parent)
            except InputError as error:
                log.warning("skipped a model bundle: %s", error)
                continue
            found.setdefault(bundle.id, bundle)
    return list(found.values())


def find_bundle(model: str | Path) -> ModelBundle:
    """A bundle by id (searched in :func:`model_search_paths`) or by folder path."""
    if Path(model).is_dir():
        return ModelBundle(model)
    bundles = list_bundles()
    for bundle in bundles:
        if bundle.id == str(model):
            return bundle
    known = ", ".join(b.id for b in bundles) or "none installed"
    raise InputError(f"unknown model (known: {known})", model)


def save_bundle(
    network,
    meta: dict[str, Any],
    folder: str | Path,
    model_card: str | None = None,
    weights_dtype: str = "float32",
) -> ModelBundle:
    """Write weights and model.json (with the weights' sha256); used by training export and tests.

    ``network``: a U-Net or an :class:`Ensemble`. ``weights_dtype`` float16 halves the file (an
    ensemble of two fits where one float32 network would), for a rounding of about 5e-4 of each weight.
    """
    import torch
    from safetensors.torch import save_file

    from .unet import Ensemble

    if weights_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weights_dtype must be one of {WEIGHT_DTYPES}, got {weights_dtype!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "weights.safetensors"
    dtype = getattr(torch, weights_dtype)
    state = {
        name: tensor.detach().cpu().to(dtype if tensor.is_floating_point() else tensor.dtype).contiguous()
        for name, tensor in network.state_dict().items()
    }
    save_file(state, str(weights))
    meta = {**meta, "format_version": FORMAT_VERSION, "network": network.config.to_dict()}
    meta["weights"] = {"file": weights.name, "sha256": sha256_of(weights), "dtype": weights_dtype}
    if isinstance(network, Ensemble):
        meta["weights"]["members"] = len(network.members)
    _write_text_atomically(folder / "model.json", json.dumps(meta, indent=2) + "\n")
    if model_card is not None:
        _write_text_atomically(folder / "MODEL_CARD.md", model_card)
    return ModelBundle(folder)


def _write_text_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(text)
    os.replace(temporary, path)


def _read_model_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError("model.json not found", path)
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"not valid JSON ({error})", path) from None
    return _check_meta(meta, path)


def _check_meta(meta: Any, path: str | Path) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise InputError("must hold a JSON object", path)
    for key, kind in REQUIRED_KEYS.items():
        if not isinstance(meta.get(key), kind):
            raise InputError(f"'{key}' missing or not a {kind.__name__}", path)
    outputs = meta["outputs"]
    for key in ("activation", "channels", "labels"):
        if key not in outputs:
            raise InputError(f"'outputs.{key}' missing", path)
    if not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in meta["inputs"]):
        raise InputError("every input needs a 'name'", path)
    return meta
