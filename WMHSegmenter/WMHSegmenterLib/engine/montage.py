"""A figure of what each block sees: contracting path on top, expansive path below, one axial slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .activations import LayerActivations, on_input_grid
from .volume import Volume, publish_file

#: Anchor colours of a perceptually ordered dark-to-bright map (black, purple, orange, pale yellow).
_COLOR_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]]) / 255.0
CELL = 160
LABEL_HEIGHT = 16


def colorize(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] to RGB through the anchor colours."""
    positions = np.linspace(0, 1, len(_COLOR_ANCHORS))
    return np.stack([np.interp(values, positions, _COLOR_ANCHORS[:, c]) for c in range(3)], axis=-1)


def activation_montage(
    activations: dict[str, LayerActivations],
    block_order: list[str],
    reference: Volume,
    view: str,
    path: str | Path,
    slice_index: int | None = None,
    overwrite: bool = False,
) -> Path:
    """One row along the contracting path (encoders, bottleneck), one along the expansive path."""
    names = [name for name in block_order if name in activations]
    split = next((i for i, name in enumerate(names) if name.startswith("decoder")), len(names))
    rows = [row for row in (names[:split], names[split:]) if row]
    index = reference.shape[0] // 2 if slice_index is None else slice_index
    columns = max(len(row) for row in rows)
    canvas = Image.new("RGB", (columns * CELL, len(rows) * (CELL + LABEL_HEIGHT)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        for c, name in enumerate(row):
            plane = on_input_grid(activations[name].view(view), reference).array[index]
            low, high = np.percentile(plane, (1, 99))
            scaled = np.clip((plane - low) / max(high - low, 1e-8), 0, 1)
            tile = Image.fromarray((colorize(_radiological(scaled, reference)) * 255).astype(np.uint8))
            tile.thumbnail((CELL, CELL))
            top = r * (CELL + LABEL_HEIGHT)
            canvas.paste(tile, (c * CELL + (CELL - tile.width) // 2, top + LABEL_HEIGHT))
            draw.text((c * CELL + 4, top + 2), f"{name} ({view})", fill="black")
    return publish_file(lambda temporary: canvas.save(temporary, format="PNG"), path, overwrite)


def _radiological(plane: np.ndarray, image: Volume) -> np.ndarray:
    """A plane of the image as stored, drawn as radiologists view an axial one: anterior at the top,
    the patient's right on the left.

    Array rows run along the grid's y axis and columns along x; LPS +y is posterior, +x is left.
    """
    direction = image.geometry.direction_matrix
    plane = plane[::-1] if direction[1, 1] < 0 else plane
    return plane[:, ::-1] if direction[0, 0] < 0 else plane
