"""Preprocessed cases on disk, so epochs read patches from memory-mapped .npy files instead of NIfTI.

A case is preprocessed by the engine's ``prepare_case``, the very function the predictor calls, so the
network trains on exactly the images it will see in use. An entry's folder name carries a hash of
everything that could change its content (the files' bytes, the preprocessing settings, the engine's
preprocessing code); a stale entry (same settings, changed files or code) is never read, only replaced,
while entries of other settings stay for the runs that use them. Keying on the bytes rather than on
paths and modification times keeps the cache valid for a data set that is copied, moved or restored
(hashing the 14 BraTS cases, 120 MB, takes 0.2 s; preprocessing them with N4 takes minutes). Entries
are built in a temporary folder and renamed into place, so a killed run leaves no half-written entry,
and runs started side by side may build the same entry at once.

A case may also have drawn-head variants (``head_draws``): the same skull-stripped FLAIR with a head
drawn around it (``synthetic.head``), preprocessed like any scan, so the network sees real lesions in
skull-on images, z-scored as the predictor z-scores them. Each draw is a fixed function of the case and
its number, cached like the case itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from WMHSegmenterLib.engine import input_checks as engine_input_checks
from WMHSegmenterLib.engine import preprocessing as engine_preprocessing
from WMHSegmenterLib.engine import resampling as engine_resampling
from WMHSegmenterLib.engine.bundle import sha256_of
from WMHSegmenterLib.engine.errors import InputError
from WMHSegmenterLib.engine.input_checks import input_warnings
from WMHSegmenterLib.engine.preprocessing import prepare_case
from WMHSegmenterLib.engine.volume import Volume, make_output_folder, read_image, read_volume

from .datasets import CaseFiles, checked_labels

CACHE_FORMAT = 1
#: Foreground voxels remembered per class for oversampling; a random subset is as good as all of them.
MAX_FOREGROUND_POINTS = 10_000
FOREGROUND_CLASSES = {"wmh": (1,), "brats": (1, 2, 4)}
META_FILE = "meta.json"
#: A build takes seconds to minutes; a temporary folder older than this is a killed build's leftover.
LEFTOVER_AGE_S = 3600.0


@dataclass
class CachedCase:
    """A preprocessed case; its arrays are opened (memory-mapped) on first use in each process."""

    id: str
    folder: Path
    shape_zyx: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    foreground_classes: tuple[int, ...]
    head_draw: int | None = None  # which drawn-head variant of the case; None for the scan itself
    #: the predictor's content checks of the case's scans (e.g. FLAIR and T2 that look swapped)
    warnings: tuple[str, ...] = ()
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def image(self) -> np.ndarray:
        """(channels, z, y, x) float32, z-scored."""
        return self._array("image")

    @property
    def labels(self) -> np.ndarray:
        """(z, y, x) uint8; BraTS in the 2018 convention, WMH with 2 = ignored."""
        return self._array("labels")

    def foreground(self, label: int) -> np.ndarray:
        """(N, 3) voxel indices (z, y, x) of ``label``."""
        return self._array(f"foreground_{label}")

    def _array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = np.load(self.folder / f"{name}.npy", mmap_mode="r")
        return self._arrays[name]

    def __getstate__(self) -> dict[str, Any]:
        # data-loader workers re-open the maps themselves instead of receiving copies of the arrays
        return {**self.__dict__, "_arrays": {}}


def preprocessing_code_digest(drawn_head: bool = False) -> str:
    """Changes whenever the engine's preprocessing (or the checks recorded with it) changes, which must
    invalidate every cached case, and for drawn-head variants (``drawn_head``) whenever the head drawing
    changes too."""
    modules = [engine_preprocessing, engine_resampling, engine_input_checks]
    if drawn_head:
        from .synthetic import head

        modules.append(head)
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def file_digests(case: CaseFiles, input_names: Sequence[str]) -> list[str]:
    """The sha256 of each file an entry of ``case`` is built from: its inputs in order, then its label."""
    return [sha256_of(path) for path in [*(case.images[name] for name in input_names), case.label]]


def cache_key(
    files: Sequence[str],
    task: str,
    input_names: Sequence[str],
    preprocessing: Mapping[str, Any],
    code: str,
    head_draw: int | None = None,
) -> str:
    """``files``: the case's :func:`file_digests`, hashed once for the case and all its drawn heads."""
    content = {
        "format": CACHE_FORMAT,
        **_settings(task, input_names, preprocessing, head_draw),
        "files": list(files),
        "code": code,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def load_or_build(
    cases: Sequence[CaseFiles],
    cache_dir: Path,
    task: str,
    input_names: Sequence[str],
    preprocessing: Mapping[str, Any],
    build: bool = True,
    on_case: Callable[[str, bool], None] | None = None,
    head_draws: int = 0,
) -> list[CachedCase]:
    """Every case from the cache, and its ``head_draws`` drawn-head variants, preprocessing those
    missing or stale (when ``build``).

    ``on_case(case_id, built)`` reports progress. With ``build=False`` (ranks other than 0, which
    wait for rank 0 to fill the cache) a missing entry is an error.
    """
    make_output_folder(cache_dir)
    code = preprocessing_code_digest()
    code_with_head = preprocessing_code_digest(drawn_head=True) if head_draws else None
    loaded = []
    for case in cases:
        files = file_digests(case, input_names)
        for head_draw in [None, *range(head_draws)]:
            digest = code if head_draw is None else code_with_head
            key = cache_key(files, task, input_names, preprocessing, digest, head_draw)
            suffix = "" if head_draw is None else f"+head{head_draw}"
            folder = cache_dir / f"{_safe_name(case.id)}{suffix}-{key}"
            built = not (folder / META_FILE).is_file()
            if built:
                if not build:
                    raise RuntimeError(f"cache entry {folder} missing after rank 0 built the cache")
                _build_entry(case, folder, task, input_names, preprocessing, head_draw)
            loaded.append(_open_entry(folder))
            if on_case is not None:
                on_case(case.id + suffix, built)
    return loaded


def _build_entry(
    case: CaseFiles,
    folder: Path,
    task: str,
    input_names: Sequence[str],
    preprocessing: Mapping[str, Any],
    head_draw: int | None = None,
) -> None:
    images = {name: read_image(case.images[name]) for name in input_names}
    label_volume = read_volume(case.label)
    labels = Volume(checked_labels(label_volume.array, task, case.label), label_volume.geometry)
    if head_draw is not None:
        images, labels = _with_drawn_head(case, images, labels, input_names, head_draw)
    sources = {name: str(path) for name, path in case.images.items()}
    prepared = prepare_case(images, input_names, preprocessing, sources=sources, labels=labels)
    checked = head_draw is None  # a drawn head changes no scan's contrast: the case's own entry says it
    settings = _settings(task, input_names, preprocessing, head_draw)
    temporary = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.partial")
    temporary.mkdir()
    try:
        np.save(temporary / "image.npy", prepared.image.astype(np.float32, copy=False))
        np.save(temporary / "labels.npy", prepared.labels.astype(np.uint8, copy=False))
        present = []
        rng = np.random.default_rng(0)
        for label in FOREGROUND_CLASSES[task]:
            points = np.argwhere(prepared.labels == label).astype(np.int32)
            if len(points) > MAX_FOREGROUND_POINTS:
                points = points[np.sort(rng.choice(len(points), MAX_FOREGROUND_POINTS, replace=False))]
            np.save(temporary / f"foreground_{label}.npy", points)
            if len(points):
                present.append(label)
        meta = {
            "id": case.id,
            "shape_zyx": list(prepared.image.shape[1:]),
            "spacing_xyz": list(prepared.geometry.spacing),
            "foreground_classes": present,
            "head_draw": head_draw,
            "warnings": input_warnings(task, images, input_names, prepared, sources) if checked else [],
            "settings": settings,
            "sources": {name: str(path) for name, path in [*case.images.items(), ("label", case.label)]},
        }
        (temporary / META_FILE).write_text(json.dumps(meta, indent=1))
        _remove_stale_entries(folder, settings)
        try:
            os.replace(temporary, folder)
        except OSError:  # another process published the same entry meanwhile: identical content
            if not (folder / META_FILE).is_file():
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _open_entry(folder: Path) -> CachedCase:
    meta = json.loads((folder / META_FILE).read_text())
    return CachedCase(
        id=meta["id"],
        folder=folder,
        shape_zyx=tuple(meta["shape_zyx"]),
        spacing_xyz=tuple(meta["spacing_xyz"]),
        foreground_classes=tuple(meta["foreground_classes"]),
        head_draw=meta.get("head_draw"),
        warnings=tuple(meta["warnings"]),
    )


def _with_drawn_head(
    case: CaseFiles, images: dict[str, Volume], labels: Volume, input_names: Sequence[str], head_draw: int
) -> tuple[dict[str, Volume], Volume]:
    """The case's FLAIR with head number ``head_draw`` drawn around it (same draw on every run)."""
    from .synthetic.head import draw_head_around_brain

    if len(input_names) != 1:
        raise InputError("drawn heads are for single-FLAIR models", case.images[input_names[0]])
    name = input_names[0]
    rng = np.random.default_rng([head_draw, *case.id.encode()])
    try:
        image, labels = draw_head_around_brain(images[name], labels, rng)
    except InputError as error:
        raise InputError(error.problem, case.images[name]) from None
    return {name: image}, labels


def _settings(
    task: str, input_names: Sequence[str], preprocessing: Mapping[str, Any], head_draw: int | None = None
) -> dict[str, Any]:
    """What an entry is computed with, besides its files and code: part of its key, and what makes two
    entries of a case alternatives rather than one stale and one current."""
    settings = {"task": task, "inputs": list(input_names), "preprocessing": preprocessing}
    if head_draw is not None:
        settings["head_draw"] = head_draw
    return json.loads(json.dumps(settings))


def _remove_stale_entries(folder: Path, settings: Mapping[str, Any]) -> None:
    """Entries of the same case and settings under another key, and leftovers of killed builds.

    A fresh temporary folder may be another process building this entry now, so only old ones go.
    """
    case_part = folder.name.rsplit("-", 1)[0]
    for other in folder.parent.glob(f"{case_part}-*"):
        key = other.name[len(case_part) + 1 :]
        is_entry = len(key) == 16 and all(c in "0123456789abcdef" for c in key)
        if other != folder and is_entry and _entry_settings(other) in (settings, None):
            shutil.rmtree(other, ignore_errors=True)
    for leftover in folder.parent.glob(f".{case_part}-*.partial"):
        try:
            age_s = time.time() - leftover.stat().st_mtime
        except FileNotFoundError:  # its build just finished
            continue
        if age_s > LEFTOVER_AGE_S:
            shutil.rmtree(leftover, ignore_errors=True)


def _entry_settings(folder: Path) -> dict[str, Any] | None:
    """None for entries written before settings were recorded, or unreadable: those are replaced."""
    try:
        return json.loads((folder / META_FILE).read_text()).get("settings")
    except (OSError, ValueError):
        return None


def _safe_name(case_id: str) -> str:
    return "".join(c if c.isalnum() or c in "._" else "_" for c in case_id)
