"""The one check every metric needs first: reference and prediction share a voxel grid."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..volume import Volume


def require_same_grid(reference: Volume, prediction: Volume, source: str | Path | None = None) -> None:
    """Refuse a prediction off the reference grid: overlap on different grids would be meaningless.

    ``source`` names the prediction (its file) in the one-line error.
    """
    if reference.shape != prediction.shape:
        problem = f"size {_size(prediction.shape)} differs from the reference's {_size(reference.shape)}"
    elif not reference.geometry.matches(prediction.geometry):
        problem = (
            "spacing/origin/direction differ from the reference's "
            f"(spacing {_numbers(prediction.geometry.spacing)} vs {_numbers(reference.geometry.spacing)}, "
            f"origin {_numbers(prediction.geometry.origin)} vs {_numbers(reference.geometry.origin)})"
        )
    else:
        return
    raise InputError(f"prediction does not lie on the reference grid: {problem}", source)


def _size(shape_zyx: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in reversed(shape_zyx))


def _numbers(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"
