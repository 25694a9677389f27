"""The one prediction path: the CLI, the Slicer module, the web app and training validation call it.

volumes -> reference grid -> working grid (reoriented, model spacing) -> crop to head -> z-score ->
sliding-window U-Net -> probabilities back on the input grid -> labels.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .activations import ActivationRecorder, LayerActivations
from .bundle import DEFAULT_MIRROR_AXES, ModelBundle
from .device import mixed_precision_dtype, resolve_device
from .errors import InputError
from .input_checks import input_warnings
from .postprocess import (
    NOTED_REMOVED_ML,
    clean_islands,
    foreground_probability,
    island_fraction,
    island_measure,
    labels_from_probabilities,
    refine_lesions_by_intensity,
    removed_regions,
)
from .preprocessing import PreparedCase, prepare_case, zscore
from .resampling import resample
from .volume import Geometry, Volume, read_image, same_file

ProgressCallback = Callable[[str, float], None]

#: Where each stage sits on the overall 0..1 progress scale.
STAGES = {"load": (0.0, 0.05), "preprocess": (0.05, 0.15), "network": (0.15, 0.9), "postprocess": (0.9, 1.0)}


@dataclass
class Prediction:
    labels: Volume
    probabilities: Volume | None = None
    channel_names: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    #: layer name -> maps on that layer's grid, when an ActivationRecorder was given
    activations: dict[str, LayerActivations] = field(default_factory=dict)
    #: what the user should check although the case ran: one line each (e.g. inputs that look swapped)
    warnings: tuple[str, ...] = ()
    #: what the user may want to know about the result: one line each (e.g. what the cleaning removed)
    notes: tuple[str, ...] = ()
    #: the regions the island cleaning removed that a note names (from NOTED_REMOVED_ML), with the
    #: labels they had, on the input grid; None when it removed none
    removed: Volume | None = None


class Progress:
    """Turns per-stage fractions into one overall fraction that never goes backwards."""

    def __init__(self, callback: ProgressCallback | None):
        self.callback = callback
        self.last = 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        low, high = STAGES[stage]
        overall = max(self.last, low + (high - low) * min(max(fraction, 0.0), 1.0))
        self.last = overall
        if self.callback is not None:
            self.callback(stage, overall)


class Predictor:
    """A loaded model with its inference settings; reuse it for many cases."""

    def __init__(
        self,
        bundle: ModelBundle,
        device: str = "auto",
        mirror: bool | None = None,
        overlap: float | None = None,
        tile_batch: int | None = None,
        network=None,
        mixed_precision: bool = True,
    ):
        """``network``: an in-memory U-Net (training validation) instead of the bundle's weights.

        ``mixed_precision``: float16 (CUDA) or bfloat16 (CPUs that multiply it natively) arithmetic
        in the network, where the device has it (``device.mixed_precision_dtype``); float32 elsewhere
        or when False. On the CPU it halves the network's time and moved no Dice by more than 0.0023
        on the shipped models' 14 BraTS cases and 36 WMH scans (runs/s33/bf16 on the training machine);
        False gives the same labels on every machine.
        """
        import torch

        self.bundle = bundle
        settings = bundle.inference
        self.patch_size = tuple(settings["patch_size_zyx"])
        self.overlap = float(settings.get("overlap", 0.5) if overlap is None else overlap)
        self.tile_batch = int(settings.get("tile_batch", 1) if tile_batch is None else tile_batch)
        if not 0 <= self.overlap < 1:
            raise InputError(f"overlap must be in [0, 1), got {self.overlap}")
        if self.tile_batch < 1:
            raise InputError(f"tile batch must be at least 1, got {self.tile_batch}")
        use_mirroring = settings.get("mirror", False) if mirror is None else mirror
        self.mirror_axes = tuple(settings.get("mirror_axes", DEFAULT_MIRROR_AXES)) if use_mirroring else ()
        self.min_component_voxels = int(settings.get("min_component_voxels", 0))
        self.min_island_fraction = island_fraction(settings)
        self.islands_by_confidence = island_measure(settings) == "confidence"
        self.island_neck_mm = float(settings.get("island_neck_mm", 0.0))
        self.within_brain = bool(settings.get("brain_mask", False))
        self.refine_on_input_grid = bool(settings.get("refine_on_input_grid", False))
        self.device = torch.device(resolve_device(device))
        self.network = bundle.load_network(str(self.device)) if network is None else network.to(self.device)
        self.network.eval()
        self.amp_dtype = mixed_precision_dtype(self.device.type, mixed_precision)

    def read_inputs(self, paths: Mapping[str, str | Path], progress: Progress) -> dict[str, Volume]:
        """Read and check every modality before any computation, so bad files fail fast."""
        self.check_input_names(paths)
        for (first, first_path), (second, second_path) in itertools.combinations(paths.items(), 2):
            if same_file(first_path, second_path):  # as Slicer refuses one volume chosen for two inputs
                raise InputError(
                    f"given for both --{first} and --{second}; each needs its own scan", second_path
                )
        volumes = {}
        for index, name in enumerate(self.bundle.input_names):
            volumes[name] = read_image(paths[name])
            progress("load", (index + 1) / len(paths))
        return volumes

    def check_input_names(self, inputs: Mapping[str, object]) -> None:
        missing = [n for n in self.bundle.input_names if n not in inputs]
        unexpected = [n for n in inputs if n not in self.bundle.input_names]
        if missing or unexpected:
            parts = [f"needs {', '.join('--' + n for n in missing)}"] if missing else []
            parts += [f"does not take {', '.join('--' + n for n in unexpected)}"] if unexpected else []
            raise InputError(f"model {self.bundle.id} {' and '.join(parts)}")

    def predict(
        self,
        inputs: Mapping[str, Volume],
        progress: ProgressCallback | Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
        sources: Mapping[str, str | Path] | None = None,
        recorder: ActivationRecorder | None = None,
    ) -> Prediction:
        """Labels (and probabilities) on the grid of the first input modality, the reference.

        With a ``recorder`` (see :meth:`activation_recorder`), the same pass also captures feature maps.
        """
        tracker = progress if isinstance(progress, Progress) else Progress(progress)
        self.check_input_names(inputs)
        sources = sources or {name: name for name in inputs}
        timings = {}
        start = time.perf_counter()
        reference = inputs[self.bundle.input_names[0]]
        prepared = self.prepare(inputs, sources)
        warnings = input_warnings(self.bundle.task, inputs, self.bundle.input_names, prepared, sources)
        tracker("preprocess", 1.0)
        timings["preprocess_s"] = time.perf_counter() - start

        start = time.perf_counter()
        probabilities = self.run_network(
            prepared.image, lambda d, t: tracker("network", d / t), should_stop, recorder
        )
        timings["network_s"] = time.perf_counter() - start

        start = time.perf_counter()
        if self.within_brain:
            self.clear_outside(probabilities, prepared.region)
        prediction = self.finish(probabilities, prepared.geometry, reference, prepared.region)
        tracker("postprocess", 1.0)
        timings["postprocess_s"] = time.perf_counter() - start
        prediction.timings = timings
        prediction.warnings = tuple(warnings)
        if recorder is not None:
            prediction.activations = recorder.results(prepared.image.shape[1:], prepared.geometry)
        return prediction

    def activation_recorder(
        self, layers: list[str], gradcam_classes: list[str] = (), gradcam_region: str = "predicted", **options
    ) -> ActivationRecorder:
        """A recorder for this model; classes by output channel name, label value or BraTS region."""
        from .activations import output_channel_index

        classes = {name: output_channel_index(self.bundle, name) for name in gradcam_classes}
        sigmoid = self.bundle.output_activation == "sigmoid"
        return ActivationRecorder(self.network, layers, classes, gradcam_region, sigmoid, **options)

    def prepare(self, inputs: Mapping[str, Volume], sources: Mapping[str, str | Path]) -> PreparedCase:
        return prepare_case(
            inputs,
            self.bundle.input_names,
            self.bundle.preprocessing,
            sources,
            within_brain=self.within_brain,
        )

    def run_network(
        self,
        image: np.ndarray,
        on_tile: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        recorder: ActivationRecorder | None = None,
    ) -> np.ndarray:
        import torch

        from .sliding_window import fitted_patch_size, padded_shape, predict_sliding_window

        activation = torch.sigmoid if self.bundle.output_activation == "sigmoid" else lambda x: x.softmax(1)
        stride = self.network.config.total_stride
        patch = fitted_patch_size(image.shape[1:], self.patch_size, stride)
        if recorder is not None:
            recorder.start(padded_shape(image.shape[1:], patch, stride), patch)
        tensor = torch.from_numpy(image).to(self.device)
        with torch.no_grad():
            probabilities = predict_sliding_window(
                self.network,
                tensor,
                patch,
                activation,
                overlap=self.overlap,
                tile_batch=self.tile_batch,
                mirror_axes=self.mirror_axes,
                on_tile=on_tile,
                should_stop=should_stop,
                amp_dtype=self.amp_dtype,
                align=stride,
                observed_forward=None if recorder is None else recorder.forward,
            )
        return probabilities.cpu().numpy()

    def clear_outside(self, probabilities: np.ndarray, region: np.ndarray) -> None:
        """No finding outside the brain: what the network says about blanked scalp voxels is noise."""
        probabilities[:, ~region] = 0.0
        if self.bundle.output_activation == "softmax":
            probabilities[0, ~region] = 1.0

    def finish(
        self, probabilities: np.ndarray, geometry: Geometry, reference: Volume, region: np.ndarray
    ) -> Prediction:
        """Probabilities back onto the reference grid first, labels second: no blocky label resampling.

        ``region``: where the case was z-scored (brain or head), on the working grid ``geometry``.
        Lesions are redrawn from the input's voxels only when its slices are thinner than the working
        grid's: then the network's grid lost detail the input has (on 5 mm slices, measured, it cost Dice).
        """
        softmax = self.bundle.output_activation == "softmax"
        on_input_grid = np.stack(
            [
                resample(
                    Volume(channel, geometry),
                    reference.geometry,
                    reference.shape,
                    default=1.0 if softmax and index == 0 else 0.0,
                ).array
                for index, channel in enumerate(probabilities)
            ]
        ).astype(np.float32, copy=False)
        channel_labels = [c.label for c in self.bundle.output_channels]
        if self.refine_on_input_grid and max(reference.geometry.spacing) < max(geometry.spacing):
            lesion = self.refined_lesion(
                on_input_grid[-1], reference, Volume(region.astype(np.uint8), geometry)
            )
            labels = lesion.astype(np.uint8) * np.uint8(channel_labels[-1])
        else:
            labels = labels_from_probabilities(on_input_grid, self.bundle.output_activation, channel_labels)
        foreground = slice(1, None) if softmax else slice(None)
        kept = on_input_grid[foreground]
        confidence = (
            foreground_probability(kept, self.bundle.output_activation)
            if self.islands_by_confidence
            else None
        )
        cleaned = clean_islands(
            labels,
            self.min_component_voxels,
            self.min_island_fraction,
            confidence,
            self.island_neck_mm,
            reference.geometry.spacing[::-1],
        )
        removed, volumes = (
            (None, [])
            if cleaned is labels
            else removed_regions(labels, cleaned, reference.geometry.spacing[::-1], NOTED_REMOVED_ML)
        )
        names = tuple(c.name for c in self.bundle.output_channels[foreground])
        return Prediction(
            labels=reference.with_array(cleaned),
            probabilities=reference.with_array(kept[0] if len(kept) == 1 else kept),
            channel_names=names,
            removed=reference.with_array(removed) if volumes else None,
            notes=(removed_regions_note(volumes),) if volumes else (),
        )

    @staticmethod
    def refined_lesion(probability: np.ndarray, reference: Volume, region: Volume) -> np.ndarray:
        """The lesion mask redrawn from the reference image's own voxels (refine_lesions_by_intensity)."""
        inside = resample(region, reference.geometry, reference.shape, linear=False).array > 0
        zscores = zscore(reference.array.astype(np.float32, copy=False), inside)
        return refine_lesions_by_intensity(probability, zscores)


def removed_regions_note(volumes_ml: list[float]) -> str:
    """What the island cleaning took away, in words: the probability maps still show it."""
    sizes = [f"{volume:.1f}" for volume in volumes_ml]
    if len(sizes) == 1:
        what, them = f"a region of {sizes[0]} ml", "it"
    else:
        what, them = f"{len(sizes)} regions of {', '.join(sizes[:-1])} and {sizes[-1]} ml", "them"
    return (
        f"the island cleaning removed {what} apart from what it kept; the probability maps still show {them}"
    )
