"""Synthetic training patches for the Training package, alone or mixed with real cases.

``sampling.PatchDataset`` draws every patch from a sampler's ``sample(rng)``, which returns
``(image (channels, z, y, x) float32, labels (z, y, x) uint8, case)`` with ``case.spacing_xyz`` (for the
augmentation) and ``case.id``. :class:`SyntheticPatchSampler` honours that contract, so synthetic patches
go through the same dataset, augmentation and loader as real ones; :class:`MixedPatchSampler` draws from
several samplers by weight. A patch is then still a pure function of (seed, rank, epoch, index).

The config section (``synthetic:``) these helpers read:

    fraction: 0.5              # share of training patches that are synthetic (0 off, 1 synthetic only)
    anatomies:                 # one or more; paths relative to the repository
      - {kind: mni152, path: ../shared/data/mni152}
      - {kind: segmentation, path: aseg.nii.gz, classes: freesurfer}   # or three_class, or {value: tissue}
      - {kind: phantom}
    foreground_fraction: null  # share of patches centred on a lesion; null: training.foreground_fraction
    generator: {}              # GeneratorSettings overrides, e.g. {lesions: {fazekas_probabilities: [...]}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from WMHSegmenterLib.engine.errors import InputError

from ..augmentation import Augmentation
from ..sampling import PatchDataset
from .anatomy import Anatomy, Tissue, load_mni152, load_segmentation, phantom_anatomy
from .generator import GeneratorSettings, SyntheticFlairGenerator

ANATOMY_KINDS = ("mni152", "segmentation", "phantom")


class PatchSource(Protocol):
    """What ``sampling.PatchDataset`` needs from a sampler."""

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, Any]: ...


@dataclass(frozen=True)
class SyntheticCase:
    """Stands where a cached real case stands: names the source and gives the patch's spacing."""

    id: str
    spacing_xyz: tuple[float, float, float]


class SyntheticPatchSampler:
    """Regions of ``region_size_zyx`` voxels, each a freshly generated synthetic FLAIR crop.

    ``foreground_fraction`` of the regions are centred on a lesion (like real patches, nnU-Net style);
    the rest on a random brain point.
    """

    def __init__(
        self, generator: SyntheticFlairGenerator, region_size_zyx: Sequence[int], foreground_fraction: float
    ):
        self.generator = generator
        self.region_size = tuple(int(s) for s in region_size_zyx)
        self.foreground_fraction = float(foreground_fraction)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, SyntheticCase]:
        centre = "lesion" if rng.random() < self.foreground_fraction else "random"
        sample = self.generator.generate(rng, self.region_size, centre=centre)
        case = SyntheticCase(f"synthetic:{sample.info['anatomy']}", sample.image.geometry.spacing)
        return sample.image.array[None], sample.labels.array, case


class MixedPatchSampler:
    """Draws each region from one of several samplers, chosen with probability proportional to its weight."""

    def __init__(self, samplers: Sequence[tuple[PatchSource, float]]):
        weights = np.asarray([w for _, w in samplers], dtype=float)
        if not samplers or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError("a mixed sampler needs samplers with non-negative weights that do not sum to 0")
        self.samplers = [s for s, _ in samplers]
        self.probabilities = weights / weights.sum()

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, Any]:
        choice = int(rng.choice(len(self.samplers), p=self.probabilities))
        return self.samplers[choice].sample(rng)


def synthetic_patch_dataset(
    generator: SyntheticFlairGenerator,
    patch_size_zyx: Sequence[int],
    samples_per_epoch: int,
    seed: int,
    foreground_fraction: float = 0.33,
    rank: int = 0,
    augmentation: Augmentation | None = None,
) -> PatchDataset:
    """A torch Dataset of purely synthetic patches: item ``epoch * samples_per_epoch + i`` is
    ``(image (1, z, y, x) float32 tensor, labels (z, y, x) int64 tensor)`` (``sampling.EpochIndices``
    walks one epoch).

    It is the Training package's own PatchDataset around a :class:`SyntheticPatchSampler`, so it batches,
    augments and reproduces exactly like real patches.
    """
    sampler = SyntheticPatchSampler(generator, patch_size_zyx, foreground_fraction)
    return PatchDataset(sampler, patch_size_zyx, samples_per_epoch, seed, rank, augmentation)


def load_anatomies(specs: Sequence[Mapping[str, Any]], base: str | Path) -> list[Anatomy]:
    """Anatomies from config entries (see the module docstring); relative paths are relative to ``base``."""
    anatomies = []
    for number, spec in enumerate(specs, start=1):
        where = f"synthetic.anatomies[{number}]"
        kind = spec.get("kind") if isinstance(spec, Mapping) else None
        if kind not in ANATOMY_KINDS:
            raise InputError(f"{where}: kind must be one of {ANATOMY_KINDS}, got {kind!r}")
        allowed = {"mni152": {"kind", "path"}, "segmentation": {"kind", "path", "classes"}}.get(
            kind, {"kind", "spacing_mm", "with_head"}
        )
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise InputError(f"{where}: unknown key(s) {', '.join(unknown)} for kind {kind}")
        if kind == "phantom":
            anatomies.append(
                phantom_anatomy(float(spec.get("spacing_mm", 1.0)), bool(spec.get("with_head", False)))
            )
            continue
        if not spec.get("path"):
            raise InputError(f"{where}: needs a path")
        path = Path(base) / Path(str(spec["path"])).expanduser()
        if kind == "mni152":
            anatomies.append(load_mni152(path))
        else:
            classes = spec.get("classes", "freesurfer")
            if isinstance(classes, Mapping):
                classes = {int(k): _tissue(v, where) for k, v in classes.items()}
            anatomies.append(load_segmentation(path, classes))
    return anatomies


def synthetic_sampler(
    section: Mapping[str, Any],
    region_size_zyx: Sequence[int],
    foreground_fraction: float,
    spacing_xyz_mm: Sequence[float | None],
    base: str | Path,
) -> SyntheticPatchSampler:
    """The sampler a ``synthetic:`` config section describes, on the training grid's spacing.

    The generator's spacing is always the training spacing (a ``null`` axis, meaning "keep the input's",
    becomes 1 mm), so synthetic and real patches share a grid.
    """
    if not section.get("anatomies"):
        raise InputError("synthetic.anatomies must list at least one anatomy")
    settings = GeneratorSettings.from_mapping(section.get("generator"))
    spacing = tuple(float(s) if s is not None else 1.0 for s in spacing_xyz_mm)
    settings = replace(settings, spacing_xyz_mm=spacing)
    generator = SyntheticFlairGenerator(load_anatomies(section["anatomies"], base), settings)
    own = section.get("foreground_fraction")
    return SyntheticPatchSampler(
        generator, region_size_zyx, foreground_fraction if own is None else float(own)
    )


def mix_with_synthetic(real: PatchSource, synthetic: PatchSource, fraction: float) -> PatchSource:
    """``real`` alone, ``synthetic`` alone, or both drawn in the ratio ``fraction`` : 1 - ``fraction``."""
    if not 0 <= fraction <= 1:
        raise InputError(f"synthetic.fraction must be in [0, 1], got {fraction}")
    if fraction == 0:
        return real
    if fraction == 1:
        return synthetic
    return MixedPatchSampler([(real, 1 - fraction), (synthetic, fraction)])


def _tissue(value: Any, where: str) -> Tissue:
    names = {t.name.lower(): t for t in Tissue if t != Tissue.LESION}
    if isinstance(value, str) and value.lower() in names:
        return names[value.lower()]
    raise InputError(f"{where}: classes values must be one of {sorted(names)}, got {value!r}")
