"""Patch augmentation with TorchIO: spatial, intensity and resolution changes MRI data really shows.

TorchIO (Pérez-García et al., Comput. Methods Programs Biomed. 2021) is used instead of hand-written
transforms because it is maintained, tested on medical images, and works in millimetres: rotations,
elastic displacements and blurs respect anisotropic voxels, and its anisotropy transform simulates
thick clinical slices (FLAIR is often 0.5 x 0.5 x 5-8 mm) the same way along any axis. Only gamma is
our own: TorchIO's sign(I)|I|^gamma bends z-scored intensities around 0, whereas nnU-Net's form
(rescale to [0, 1], apply gamma, rescale back) keeps the intensity range and order.

Arrays here are (channels, z, y, x); TorchIO wants (channels, x, y, z) with an affine, so they are
transposed on the way in and out. Axis numbers in the config are (0=z, 1=y, 2=x) as in the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import torch

#: Elastic displacements above this fraction of the control-point spacing can fold the image.
MAX_DISPLACEMENT_FRACTION = 0.45

#: Degree of the polynomial whose exponential is the bias field (TorchIO's default).
BIAS_FIELD_ORDER = 3


class Augmentation:
    """Random transforms of one patch; randomness comes from torch's generator, which the caller seeds."""

    def __init__(self, settings: Mapping[str, Any]):
        import torchio  # noqa: F401  (imported once here, not in every data-loader worker)

        self.settings = settings

    def __call__(
        self, image: np.ndarray, labels: np.ndarray, spacing_xyz: tuple[float, float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        import torchio as tio

        affine = np.diag([*map(float, spacing_xyz), 1.0])
        subject = tio.Subject(
            image=tio.ScalarImage(
                tensor=torch.from_numpy(np.ascontiguousarray(image.transpose(0, 3, 2, 1))), affine=affine
            ),
            labels=tio.LabelMap(
                tensor=torch.from_numpy(
                    np.ascontiguousarray(labels.transpose(2, 1, 0)[None].astype(np.int16))
                ),
                affine=affine,
            ),
        )
        extent_mm = np.asarray(image.shape[:0:-1]) * np.asarray(spacing_xyz)
        transformed = tio.Compose(self.transforms(extent_mm))(subject)
        out_image = transformed["image"].data.numpy().transpose(0, 3, 2, 1)
        out_labels = transformed["labels"].data.numpy()[0].transpose(2, 1, 0)
        return np.ascontiguousarray(out_image, dtype=np.float32), np.ascontiguousarray(
            out_labels, dtype=np.uint8
        )

    def transforms(self, extent_mm: np.ndarray) -> list:
        """TorchIO transforms in nnU-Net's order: spatial, resolution, intensity, flips."""
        import torchio as tio

        s = self.settings
        transforms = []
        if s["affine"]["p"] > 0:
            degrees = s["affine"]["degrees"]
            transforms.append(
                tio.RandomAffine(
                    scales=tuple(s["affine"]["scales"]),
                    degrees=tuple(degrees[::-1]) if isinstance(degrees, list) else degrees,
                    isotropic=True,
                    default_pad_value=0.0,
                    p=s["affine"]["p"],
                )
            )
        if s["elastic"]["p"] > 0:
            control_points = int(s["elastic"]["control_points"])
            grid_spacing = extent_mm / (control_points - 2)
            displacement = np.minimum(
                s["elastic"]["max_displacement_mm"], MAX_DISPLACEMENT_FRACTION * grid_spacing
            )
            transforms.append(
                tio.RandomElasticDeformation(
                    num_control_points=control_points,
                    max_displacement=tuple(displacement.tolist()),
                    p=s["elastic"]["p"],
                )
            )
        if s["slice_thickness"]["p"] > 0:
            transforms.append(
                tio.RandomAnisotropy(
                    axes=tuple(2 - a for a in s["slice_thickness"]["axes"]),
                    downsampling=tuple(s["slice_thickness"]["downsampling"]),
                    p=s["slice_thickness"]["p"],
                )
            )
        if s["noise"]["p"] > 0:
            transforms.append(tio.RandomNoise(std=tuple(s["noise"]["std"]), p=s["noise"]["p"]))
        if s["blur"]["p"] > 0:
            transforms.append(tio.RandomBlur(std=tuple(s["blur"]["std_mm"]), p=s["blur"]["p"]))
        if s["bias_field"]["p"] > 0:
            bias = s["bias_field"]
            transforms.append(
                tio.Lambda(
                    partial(
                        bias_field_on_raw_intensities,
                        coefficient=float(bias["coefficients"]),
                        mean_over_std=_ordered_pair(bias["mean_over_std"], "bias_field.mean_over_std"),
                        per_channel=bool(bias["per_channel"]),
                    ),
                    types_to_apply=[tio.INTENSITY],
                    p=bias["p"],
                )
            )
        if s["gamma"]["p"] > 0:
            transforms.append(
                tio.Lambda(
                    partial(range_preserving_gamma, log_gamma=tuple(s["gamma"]["log_gamma"])),
                    types_to_apply=[tio.INTENSITY],
                    p=s["gamma"]["p"],
                )
            )
        if s["flip"]["p"] > 0 and s["flip"]["axes"]:
            transforms.append(
                tio.RandomFlip(axes=tuple(2 - a for a in s["flip"]["axes"]), flip_probability=s["flip"]["p"])
            )
        return transforms


def range_preserving_gamma(tensor: torch.Tensor, log_gamma: tuple[float, float]) -> torch.Tensor:
    """Per channel: rescale to [0, 1], raise to a random gamma (log-uniform), rescale back."""
    channels = []
    for channel in tensor.float():
        low, high = channel.min(), channel.max()
        span = (high - low).clamp_min(1e-8)
        gamma = torch.exp(torch.empty(()).uniform_(*log_gamma))
        channels.append(((channel - low) / span) ** gamma * span + low)
    return torch.stack(channels)


def polynomial_bias_field(shape: tuple[int, ...], coefficient: float) -> torch.Tensor:
    """Smooth like a coil's sensitivity: exp of a random cubic in the patch coordinates (each in [-1, 1])."""
    axes = torch.meshgrid(*(torch.linspace(-1.0, 1.0, size) for size in shape), indexing="ij")
    log_field = torch.zeros(shape)
    for i in range(BIAS_FIELD_ORDER + 1):
        for j in range(BIAS_FIELD_ORDER + 1 - i):
            for k in range(BIAS_FIELD_ORDER + 1 - i - j):
                weight = torch.empty(()).uniform_(-coefficient, coefficient)
                log_field += weight * axes[0] ** i * axes[1] ** j * axes[2] ** k
    return torch.exp(log_field)


def bias_field_on_raw_intensities(
    tensor: torch.Tensor, coefficient: float, mean_over_std: tuple[float, float], per_channel: bool
) -> torch.Tensor:
    """A smooth multiplicative field applied as if before the z-score, inside the image's nonzero voxels.

    A z-scored voxel z had raw intensity proportional to z + m, m the raw tissue mean over its standard
    deviation (drawn per channel from ``mean_over_std``), so the field b turns it into (z + m) b - m;
    m = 0 multiplies the z-scores themselves. Sequences are acquired one after another, each with its
    own field: ``per_channel`` draws one per channel instead of one for all.
    """
    inside = (tensor != 0).any(dim=0)
    field = None
    channels = []
    for channel in tensor.float():
        if field is None or per_channel:
            field = polynomial_bias_field(tuple(channel.shape), coefficient)
        offset = torch.empty(()).uniform_(*mean_over_std)
        channels.append(torch.where(inside, (channel + offset) * field - offset, channel))
    return torch.stack(channels)


def _ordered_pair(value: Any, name: str) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not 0 <= low <= high:
        raise ValueError(f"{name} must be [low, high] with 0 <= low <= high, not {value}")
    return low, high


def context_voxels(settings: Mapping[str, Any], patch_size_zyx) -> tuple[int, int, int]:
    """Extra voxels read around a patch so rotations and deformations pull in real image, not padding."""
    spatial = settings["enabled"] and (settings["affine"]["p"] > 0 or settings["elastic"]["p"] > 0)
    if not spatial:
        return (0, 0, 0)
    return tuple(int(round(p * settings["context_fraction"])) for p in patch_size_zyx)
