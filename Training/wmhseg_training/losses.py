"""Segmentation losses matched to the engine's output heads, with deep supervision.

WMH models end in a softmax (background, WMH): cross-entropy plus a soft overlap term on the WMH
channel, and label 2 ("other pathology" in WMH challenge references) is an ignore index: those voxels
neither count as background nor as lesion. BraTS models end in three sigmoids for the nested regions
whole tumor, tumor core and enhancing tumor (the engine's "brats" outputs), so their loss is
region-based: binary cross-entropy and soft overlap per region, as in the BraTS-winning recipes.

Overlap terms are "batch" versions (sums over the batch and the voxels), which stay meaningful for
patches without any lesion. The Jaccard distance is Kayalibay et al. 2017 (arXiv:1701.03056).

The "blob" term (WMH only) scores each lesion on its own, so that missing a small lesion costs as much
as missing a large one, as it does in the challenge's lesion recall; the idea is that of "blob loss"
(Kofler et al., IPMI 2023, arXiv:2205.08209), with false positives counted near each lesion only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from WMHSegmenterLib.engine.labels import BRATS2018, region_labels
from WMHSegmenterLib.engine.metrics.overlap import label_lesions

from .datasets import WMH_IGNORE_LABEL

SMOOTH = 1e-5
#: How far (voxels of the working grid) a lesion's own false positives reach in the "blob" term.
BLOB_NEIGHBOURHOOD_VOXELS = 3
#: BraTS output channels in the engine's order ("whole tumor", "tumor core", "enhancing tumor").
BRATS_CHANNEL_REGIONS = ("wt", "tc", "et")


class SegmentationLoss(torch.nn.Module):
    """``loss(outputs, labels)``: outputs are logits, or a finest-first list of them (deep supervision)."""

    def __init__(self, task: str, terms: Sequence[str]):
        super().__init__()
        self.task = task
        self.terms = tuple(terms)

    def forward(self, outputs: torch.Tensor | Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            return self.single_scale(outputs, labels)
        weights = deep_supervision_weights(len(outputs))
        total = outputs[0].new_zeros((), dtype=torch.float32)
        for weight, logits in zip(weights, outputs):
            total = total + weight * self.single_scale(logits, downsample_labels(labels, logits.shape[2:]))
        return total

    def single_scale(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.task == "brats":
            targets = brats_region_targets(labels)
            probabilities = torch.sigmoid(logits)
            valid = torch.ones_like(targets)
            cross_entropy = F.binary_cross_entropy_with_logits(logits, targets)
            foreground = slice(None)
        else:
            valid_voxels = labels != WMH_IGNORE_LABEL
            classes = torch.where(valid_voxels, labels, torch.zeros_like(labels))
            targets = F.one_hot(classes, logits.shape[1]).movedim(-1, 1).float()
            probabilities = logits.softmax(1)
            valid = valid_voxels[:, None].float()
            per_voxel = F.cross_entropy(logits, labels, ignore_index=WMH_IGNORE_LABEL, reduction="sum")
            cross_entropy = per_voxel / valid.sum().clamp_min(1.0)
            foreground = slice(1, None)  # overlap of the lesion channel(s), not of background
        total = logits.new_zeros(())
        for term in self.terms:
            if term == "ce":
                total = total + cross_entropy
            elif term == "blob":
                total = total + blob_dice_loss(probabilities[:, 1], labels)
            else:
                p, g, v = probabilities[:, foreground], targets[:, foreground], valid
                total = total + overlap_loss(p * v, g * v, term)
        return total


def overlap_loss(probabilities: torch.Tensor, targets: torch.Tensor, kind: str) -> torch.Tensor:
    """1 - soft Dice, or the soft Jaccard distance, per channel over batch and voxels, averaged."""
    axes = [0, *range(2, probabilities.ndim)]
    intersection = (probabilities * targets).sum(axes)
    total = probabilities.sum(axes) + targets.sum(axes)
    if kind == "dice":
        score = (2 * intersection + SMOOTH) / (total + SMOOTH)
    else:
        score = (intersection + SMOOTH) / (total - intersection + SMOOTH)
    return 1 - score.mean()


def blob_dice_loss(lesion_probability: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1 - the mean over lesions of each lesion's soft Dice, scored in its own neighbourhood.

    A patch's overlap term is dominated by its largest lesions: missing ten small ones costs less than
    trimming the border of a big one. Here each 26-connected lesion of ``labels == 1`` gets its own
    Dice, so each lesion weighs the same. Its false positives are the background voxels nearer to it
    than to any other lesion and within ``BLOB_NEIGHBOURHOOD_VOXELS`` (what makes it look larger than it
    is); those far from every lesion are left to the patch's own terms, or a few hundred faint
    probabilities spread over the patch would drown a small lesion's Dice whether it is found or not.
    Ignored voxels (label 2) count nowhere. ``lesion_probability`` is (N, z, y, x); 0 without lesions.
    """
    lesion_of_voxel = np.zeros(labels.shape, dtype=np.int64)  # 0: no lesion's business
    found = 0
    for n, sample in enumerate(labels.cpu().numpy()):
        labelled, count = label_lesions(sample == 1)
        if count == 0:
            continue
        distance, nearest = ndimage.distance_transform_edt(labelled == 0, return_indices=True)
        nearest_lesion = labelled[tuple(nearest)]
        near = (sample == 1) | ((sample == 0) & (distance <= BLOB_NEIGHBOURHOOD_VOXELS))
        lesion_of_voxel[n] = np.where(near, nearest_lesion + found, 0)
        found += count
    if found == 0:
        return lesion_probability.new_zeros(())
    ids = torch.from_numpy(lesion_of_voxel).to(lesion_probability.device).flatten()
    in_lesion = (labels == 1).flatten().to(lesion_probability.dtype)
    probability = lesion_probability.flatten()
    zeros = lesion_probability.new_zeros(found + 1)
    overlap = zeros.index_add(0, ids, probability * in_lesion)
    predicted = zeros.index_add(0, ids, probability)
    sizes = zeros.index_add(0, ids, in_lesion)
    dice = (2 * overlap + SMOOTH) / (predicted + sizes + SMOOTH)
    return 1 - dice[1:].mean()


def brats_region_targets(labels: torch.Tensor) -> torch.Tensor:
    """(N, 3, z, y, x) float WT, TC, ET masks from 2018-convention labels (the cache's convention)."""
    regions = region_labels(BRATS2018)
    masks = [
        torch.isin(labels, torch.tensor(regions[r], device=labels.device)) for r in BRATS_CHANNEL_REGIONS
    ]
    return torch.stack(masks, dim=1).float()


def downsample_labels(labels: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Nearest-neighbour labels at a coarser decoder level (no averaging: labels are categories)."""
    if tuple(labels.shape[1:]) == tuple(shape):
        return labels
    return F.interpolate(labels[:, None].float(), size=tuple(shape), mode="nearest")[:, 0].long()


def deep_supervision_weights(levels: int) -> list[float]:
    """1, 1/2, 1/4, ... normalised to sum 1: the full-resolution output matters most (nnU-Net)."""
    raw = [0.5**level for level in range(levels)]
    return [w / sum(raw) for w in raw]
