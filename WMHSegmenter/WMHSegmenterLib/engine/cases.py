"""Batch mode: finding each case's modalities in a folder by the bundle's file-name patterns.

A pattern like ``*_flair`` matches a file's name without its extension, case-insensitively; the
``*`` is the case id (BraTS: ``Brats18_X_flair.nii.gz`` -> case ``Brats18_X``). Where ``*`` matches
nothing (WMH 2017: ``<site>/<id>/pre/FLAIR.nii.gz``), the case id is the folder path.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from .bundle import ModelBundle
from .volume import READABLE_EXTENSIONS

#: Folders that only hold a case's preprocessed or original images (WMH 2017 layout), not name it.
_LAYOUT_FOLDERS = {"pre", "orig"}


@dataclass
class Case:
    id: str
    paths: dict[str, Path] = field(default_factory=dict)
    problem: str | None = None


def image_stem(name: str) -> str | None:
    """The file name without a readable image extension, or None if it is not an image."""
    lower = name.lower()
    for extension in READABLE_EXTENSIONS:
        if lower.endswith(extension):
            return name[: -len(extension)]
    return None


def find_cases(folder: str | Path, bundle: ModelBundle) -> list[Case]:
    """Every case in ``folder`` (searched recursively); incomplete cases carry a ``problem``."""
    folder = Path(folder)
    reference, *others = bundle.inputs
    cases: dict[str, Case] = {}
    for directory, subdirectories, files in os.walk(folder):
        subdirectories.sort()
        stems = {image_stem(f).lower(): Path(directory) / f for f in sorted(files) if image_stem(f)}
        for path in stems.values():
            original_case = match_case_id(image_stem(path.name), reference.patterns)
            if original_case is None:
                continue
            case_part = original_case.lower()
            case_id = original_case or _folder_case_id(Path(directory), folder)
            case = cases.setdefault(case_id, Case(case_id))
            case.paths[reference.name] = path
            for spec in others:
                found = next(
                    (
                        stems[p.replace("*", case_part).lower()]
                        for p in spec.patterns
                        if p.replace("*", case_part).lower() in stems
                    ),
                    None,
                )
                if found is None:
                    case.problem = f"no {spec.name} image (looked for {', '.join(spec.patterns)})"
                else:
                    case.paths[spec.name] = found
    return sorted(cases.values(), key=lambda c: c.id)


def match_case_id(name: str, patterns: tuple[str, ...]) -> str | None:
    """What ``*`` stands for in the first pattern matching ``name`` (case-insensitive; keeps name's case)."""
    lowered = name.lower()
    for pattern in patterns:
        pattern = pattern.lower()
        if fnmatch.fnmatchcase(lowered, pattern):
            prefix, _, suffix = pattern.partition("*")
            return name[len(prefix) : len(name) - len(suffix)]
    return None


def _folder_case_id(directory: Path, root: Path) -> str:
    parts = list(directory.relative_to(root).parts)
    while parts and parts[-1].lower() in _LAYOUT_FOLDERS:
        parts.pop()
    return "_".join(parts) or root.name
