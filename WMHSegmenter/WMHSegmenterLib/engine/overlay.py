"""A PNG a person can glance at: the axial slice with the most foreground, image and labels side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .volume import Volume, publish_file


def overlay_png(
    image: Volume,
    labels: Volume,
    colors: dict[int, tuple[float, float, float]],
    path: str | Path,
    overwrite: bool = False,
    opacity: float = 0.5,
) -> Path:
    """Axial slice (array axis 0) through the largest label area; grey image left, overlay right."""
    area = (labels.array > 0).sum(axis=(1, 2))
    index = int(np.argmax(area)) if area.any() else image.shape[0] // 2
    slice_image = image.array[index].astype(np.float32)
    low, high = np.percentile(slice_image, (1, 99.5))
    grey = np.clip((slice_image - low) / max(high - low, 1e-6), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    blended = rgb.copy()
    for value, color in colors.items():
        mask = labels.array[index] == value
        blended[mask] = (1 - opacity) * rgb[mask] + opacity * np.asarray(color)
    panel = np.concatenate([radiological(rgb, image), radiological(blended, image)], axis=1)
    picture = Image.fromarray((panel * 255).astype(np.uint8))
    return publish_file(lambda temporary: picture.save(temporary, format="PNG"), path, overwrite)


def radiological(plane: np.ndarray, image: Volume) -> np.ndarray:
    """An axial plane as radiologists view it: anterior at the top, the patient's right on the left.

    Array rows run along the grid's y axis and columns along x; LPS +y is posterior, +x is left.
    """
    direction = image.geometry.direction_matrix
    plane = plane[::-1] if direction[1, 1] < 0 else plane
    return plane[:, ::-1] if direction[0, 0] < 0 else plane
