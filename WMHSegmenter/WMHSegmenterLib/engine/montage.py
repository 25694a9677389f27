"""A figure of what each block sees: contracting path on top, expansive path below, one axial plane."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .activations import LayerActivations
from .resampling import resample
from .volume import Geometry, publish_file

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
    plane: tuple[Geometry, tuple[int, int, int]],
    view: str,
    path: str | Path,
    overwrite: bool = False,
) -> Path:
    """One row along the contracting path (encoders, bottleneck), one along the expansive path, on
    ``plane``, one of the input's axial planes (:meth:`AxialPlanes.grid`)."""
    names = [name for name in block_order if name in activations]
    split = next((i for i, name in enumerate(names) if name.startswith("decoder")), len(names))
    rows = [row for row in (names[:split], names[split:]) if row]
    geometry, shape = plane
    columns = max(len(row) for row in rows)
    canvas = Image.new("RGB", (columns * CELL, len(rows) * (CELL + LABEL_HEIGHT)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        for c, name in enumerate(row):
            values = resample(activations[name].view(view), geometry, shape).array[0]
            low, high = np.percentile(values, (1, 99))
            scaled = np.clip((values - low) / max(high - low, 1e-8), 0, 1)
            tile = Image.fromarray((colorize(scaled) * 255).astype(np.uint8))
            tile.thumbnail((CELL, CELL))
            top = r * (CELL + LABEL_HEIGHT)
            canvas.paste(tile, (c * CELL + (CELL - tile.width) // 2, top + LABEL_HEIGHT))
            draw.text((c * CELL + 4, top + 2), f"{name} ({view})", fill="black")
    return publish_file(lambda temporary: canvas.save(temporary, format="PNG"), path, overwrite)
