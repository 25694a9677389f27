"""Options and output helpers shared by several sub-commands."""

from __future__ import annotations

from pathlib import Path

from ..engine.activations import on_input_grid
from ..engine.errors import InputError
from ..engine.tasks import task_metadata
from ..engine.volume import make_output_folder, write_volume

MODALITIES = tuple(dict.fromkeys(i["name"] for t in ("wmh", "brats") for i in task_metadata(t)["inputs"]))


def add_activation_options(parser) -> None:
    """Options shared with `wmhseg segment --activations`."""
    parser.add_argument(
        "--layers", default="", help="comma-separated blocks, e.g. encoder.0,bottleneck,decoder.0"
    )
    parser.add_argument(
        "--view",
        default="mean",
        help="comma-separated: mean, max, pca, channel:K, gradcam:CLASS (e.g. gradcam:WMH)",
    )
    parser.add_argument(
        "--region", choices=("predicted", "image"), default="predicted", help="Grad-CAM score region"
    )
    parser.add_argument(
        "--grid", choices=("input", "layer"), default="input", help="write maps on the input grid"
    )


def parse_layers_and_views(args) -> tuple[list[str], list[str]]:
    layers = [name.strip() for name in args.layers.split(",") if name.strip()]
    views = [view.strip() for view in args.view.split(",") if view.strip()]
    if not layers:
        raise InputError("give --layers (see --list-layers)")
    return layers, views or ["mean"]


def gradcam_classes(views: list[str]) -> list[str]:
    return [view.partition(":")[2] for view in views if view.startswith("gradcam:")]


def write_activation_maps(
    activations, reference, views, folder: Path, grid: str, overwrite: bool
) -> list[Path]:
    """Every requested view of every captured layer, on the input grid or the layer's own grid."""
    make_output_folder(folder)
    written = []
    for name, layer in activations.items():
        for view in views:
            volume = layer.view(view)
            if grid == "input":
                volume = on_input_grid(volume, reference)
            written.append(
                write_volume(volume, folder / f"{name}_{view.replace(':', '-')}.nii.gz", overwrite)
            )
    return written
