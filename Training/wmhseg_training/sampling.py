"""Training patches: random crops of cached cases, a share of them centred on foreground.

Lesions fill well under 1 % of a brain, so uniformly placed patches would teach the network mostly
"background"; centring a fixed share of patches on a foreground voxel (nnU-Net uses 1/3) fixes that.
Every patch is a pure function of (seed, rank, epoch, index): any number of data-loader workers, and a
run resumed after a crash, draw exactly the same patches. The epoch travels inside the index (see
:class:`EpochIndices`), so persistent workers need no message when an epoch starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .augmentation import Augmentation
from .cache import CachedCase


def crop(array: np.ndarray, start_zyx: Sequence[int], size_zyx: Sequence[int]) -> np.ndarray:
    """``array[..., start:start+size]`` over the last three axes, zero-filled where it leaves the array."""
    shape = array.shape[-3:]
    out = np.zeros((*array.shape[:-3], *size_zyx), dtype=array.dtype)
    source, target = [], []
    for start, size, extent in zip(start_zyx, size_zyx, shape):
        low, high = max(start, 0), min(start + size, extent)
        if high <= low:
            return out
        source.append(slice(low, high))
        target.append(slice(low - start, high - start))
    out[(..., *target)] = array[(..., *source)]
    return out


class PatchSampler:
    """Draws (image, labels) regions of ``region_size`` voxels from the cases."""

    def __init__(
        self, cases: Sequence[CachedCase], region_size_zyx: Sequence[int], foreground_fraction: float
    ):
        self.cases = list(cases)
        self.region_size = tuple(int(s) for s in region_size_zyx)
        self.foreground_fraction = float(foreground_fraction)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, CachedCase]:
        case = self.cases[int(rng.integers(len(self.cases)))]
        lowest = [min(0, s - r) for s, r in zip(case.shape_zyx, self.region_size)]
        highest = [max(0, s - r) for s, r in zip(case.shape_zyx, self.region_size)]
        wants_foreground = rng.random() < self.foreground_fraction
        if wants_foreground and case.foreground_classes:
            label = case.foreground_classes[int(rng.integers(len(case.foreground_classes)))]
            points = case.foreground(label)
            centre = points[int(rng.integers(len(points)))]
            start = [
                int(np.clip(c - r // 2, lo, hi))
                for c, r, lo, hi in zip(centre, self.region_size, lowest, highest)
            ]
        else:
            start = [int(rng.integers(lo, hi + 1)) for lo, hi in zip(lowest, highest)]
        return crop(case.image, start, self.region_size), crop(case.labels, start, self.region_size), case


class PatchDataset(Dataset):
    """Patches by global index ``epoch * samples_per_epoch + item`` (see :class:`EpochIndices`).

    ``sampler`` is anything with ``sample(rng) -> (image, labels, case)``: a :class:`PatchSampler` of
    real cases, a synthetic one, or a mix of both.
    """

    def __init__(
        self,
        sampler,
        patch_size_zyx: Sequence[int],
        samples_per_epoch: int,
        seed: int,
        rank: int = 0,
        augmentation: Augmentation | None = None,
    ):
        self.sampler = sampler
        self.patch_size = tuple(int(s) for s in patch_size_zyx)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed, self.rank = int(seed), int(rank)
        self.augmentation = augmentation

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, item = divmod(int(index), self.samples_per_epoch)
        rng = np.random.default_rng([self.seed, self.rank, epoch, item])
        image, labels, case = self.sampler.sample(rng)
        if self.augmentation is not None:
            # TorchIO draws from torch's global generator: seed it per patch without disturbing the caller's
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(int(rng.integers(2**62)))
                image, labels = self.augmentation(image, labels, case.spacing_xyz)
        margin = [(r - p) // 2 for r, p in zip(image.shape[1:], self.patch_size)]
        window = tuple(slice(m, m + p) for m, p in zip(margin, self.patch_size))
        image = np.ascontiguousarray(image[(slice(None), *window)], dtype=np.float32)
        labels = np.ascontiguousarray(labels[window]).astype(np.int64)
        return torch.from_numpy(image), torch.from_numpy(labels)


class EpochIndices(Sampler[int]):
    """The indices of one epoch's patches; the loop sets :attr:`epoch` before iterating the loader."""

    def __init__(self, samples_per_epoch: int):
        self.samples_per_epoch = int(samples_per_epoch)
        self.epoch = 0

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __iter__(self):
        first = self.epoch * self.samples_per_epoch
        return iter(range(first, first + self.samples_per_epoch))
