"""What the network sees, in the scene: kept feature maps, one activation volume, slice-view overlay.

The engine captures the maps during the Segment pass itself (no second forward pass); the logic keeps
them until the next run, so the panel can flip between layers and views without re-running. The
volume shown holds one view on its layer's own grid: exact, small (a stride-s layer has s^3 times
fewer voxels), and placed in physical space by its geometry, so Slicer resamples it for display.
Layer grids lie in world space (the input's parent transform applied), so the node has no transform.

Nothing here imports torch: the maps and the recorder arrive from the engine already made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import slicer

from ..engine.errors import InputError
from ..engine.volume import Volume
from .nodes import set_volume

if TYPE_CHECKING:
    from ..engine.activations import ActivationRecorder, LayerActivations, LayerInfo
    from ..engine.bundle import ModelBundle

#: The engine's view kinds (engine.activations.VIEWS, which cannot be imported without torch).
VIEWS = ("mean", "max", "pca", "channel", "gradcam")
#: Dark-to-bright maps: Slicer's Inferno where the Colors module loaded its files, else Iron (built in).
COLOR_NODE_IDS = ("vtkMRMLColorTableNodeFileInferno.txt", "vtkMRMLColorTableNodeIron")
DEFAULT_OPACITY = 0.5
#: Display window from these percentiles, so a few extreme voxels do not wash the map out.
WINDOW_PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True)
class ActivationChoices:
    """What the panel's selectors offer after a run."""

    layers: list[LayerInfo]  # in the order data flows through the network
    views: tuple[str, ...]
    classes: list[str]  # Grad-CAM classes captured, in the bundle's output order


@dataclass
class KeptActivations:
    """A run's maps and the recorder that owns their spilled files; :meth:`close` releases both."""

    maps: dict[str, LayerActivations]
    reference: slicer.vtkMRMLScalarVolumeNode
    segmentation_node: slicer.vtkMRMLSegmentationNode
    recorder: ActivationRecorder

    def choices(self) -> ActivationChoices:
        layers = [maps.layer for maps in self.maps.values()]
        classes = list(next(iter(self.maps.values())).gradcam) if self.maps else []
        views = VIEWS if classes else VIEWS[:-1]
        return ActivationChoices(layers, views, classes)

    def view(self, layer: str, spec: str) -> Volume:
        if layer not in self.maps:
            raise InputError(f"layer {layer!r} was not kept (kept: {', '.join(self.maps)})")
        return self.maps[layer].view(spec)

    def close(self) -> None:
        """Drop the maps first, so no memory map still holds the spilled files when they are removed."""
        self.maps = {}
        self.recorder.close()


def foreground_classes(bundle: ModelBundle) -> list[str]:
    """Output channels worth explaining: all of a sigmoid model's, all but a softmax background."""
    first = 1 if bundle.output_activation == "softmax" else 0
    return [channel.name for channel in bundle.output_channels[first:]]


def make_recorder(
    predictor: Any, layers: Sequence[str], memory_budget: int | None = None
) -> ActivationRecorder:
    """A recorder for ``layers`` (none named: every block) with Grad-CAM for every foreground class.

    Blocks are captured in data-flow order, whatever order they were named in, so the panel lists
    them that way; unknown names are passed on for the engine to refuse by name.
    """
    blocks = predictor.network.block_names()
    names = [b for b in blocks if b in layers] + [n for n in layers if n not in blocks] if layers else blocks
    options = {} if memory_budget is None else {"memory_budget": memory_budget}
    return predictor.activation_recorder(names, foreground_classes(predictor.bundle), **options)


def parse_layer_names(text: str) -> tuple[str, ...]:
    """``"encoder.0, bottleneck"`` -> ``("encoder.0", "bottleneck")``; empty text means every block."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def view_spec(view: str, channel: int = 0, class_name: str | None = None) -> str:
    """The engine's view string from the panel's selectors (``channel:K``, ``gradcam:CLASS``, ...)."""
    if view not in VIEWS:
        raise InputError(f"unknown activation view {view!r} (choose from {', '.join(VIEWS)})")
    if view == "channel":
        return f"channel:{int(channel)}"
    if view == "gradcam":
        if not class_name:
            raise InputError("choose a class for the Grad-CAM view")
        return f"gradcam:{class_name}"
    return view


def display_range(array: np.ndarray) -> tuple[float, float]:
    """Robust min/max for the window: the 1st and 99th percentiles, widened when the map is flat."""
    values = array[np.isfinite(array)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(values, WINDOW_PERCENTILES))
    if high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        high = low + 1.0
    return low, high


def color_node_id(scene: slicer.vtkMRMLScene) -> str:
    """The first of :data:`COLOR_NODE_IDS` the scene holds (a Qt-free scene lacks the file-based ones)."""
    for node_id in COLOR_NODE_IDS:
        if scene.GetNodeByID(node_id) is not None:
            return node_id
    raise InputError("the scene has no colour map for activations: its Colors module logic is not set up")


def fill_activation_node(
    node: slicer.vtkMRMLScalarVolumeNode, volume: Volume, name: str
) -> slicer.vtkMRMLScalarVolumeNode:
    """Voxels and geometry of one view, with a dark-to-bright colour map and a robust window."""
    set_volume(node, volume)
    node.SetName(name)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(color_node_id(node.GetScene()))
    display.SetAutoWindowLevel(False)
    display.SetWindowLevelMinMax(*display_range(volume.array))
    return node


def show_in_slice_views(
    scene: slicer.vtkMRMLScene,
    foreground: slicer.vtkMRMLVolumeNode,
    opacity: float,
    background: slicer.vtkMRMLVolumeNode | None = None,
) -> None:
    """Every slice view shows ``foreground`` over ``background`` (when given) with ``opacity``."""
    for composite in _slice_composite_nodes(scene):
        if background is not None:
            composite.SetBackgroundVolumeID(background.GetID())
        composite.SetForegroundVolumeID(foreground.GetID())
        composite.SetForegroundOpacity(float(opacity))


def set_foreground_opacity(scene: slicer.vtkMRMLScene, opacity: float) -> None:
    for composite in _slice_composite_nodes(scene):
        composite.SetForegroundOpacity(float(opacity))


def _slice_composite_nodes(scene: slicer.vtkMRMLScene) -> list:
    collection = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]
