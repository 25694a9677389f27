"""The cases a page may open for a model: the bundled sample, and the data folder's cases by file name.

The page gets each case as a key: ``sample:<task>`` or the reference image's path relative to the data
folder. A key coming back from the page is untrusted, so it is resolved again (never looked up in
what was listed) and the case rebuilt from the files around it with the engine's own name matching.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..engine.bundle import ModelBundle
from ..engine.cases import find_cases
from ..engine.errors import InputError
from ..engine.samples import sample_inputs
from .safe_paths import is_inside, relative_name, resolve_under

SAMPLE_PREFIX = "sample:"


@dataclass(frozen=True)
class CaseFiles:
    id: str
    paths: dict[str, Path]  # modality -> file, the bundle's reference modality first
    is_sample: bool


def case_choices(root: Path, bundle: ModelBundle) -> list[dict[str, str]]:
    """Select items ``{"title", "value"}``: the sample first, then every complete case under ``root``."""
    case_id, _ = sample_inputs(bundle.task)
    choices = [{"title": f"Sample: {case_id}", "value": SAMPLE_PREFIX + bundle.task}]
    reference = bundle.input_names[0]
    for case in find_cases(root, bundle):
        if case.problem is None and all(is_inside(root, path) for path in case.paths.values()):
            choices.append({"title": case.id, "value": relative_name(root, case.paths[reference])})
    return choices


def resolve_case(root: Path, bundle: ModelBundle, key: str) -> CaseFiles:
    """The files of the case a page asked for; InputError for anything outside ``root`` or incomplete."""
    if key.startswith(SAMPLE_PREFIX):
        if key != SAMPLE_PREFIX + bundle.task:
            raise InputError(f"there is no sample {key[len(SAMPLE_PREFIX) :]!r} for a {bundle.task} model")
        case_id, paths = sample_inputs(bundle.task)
        return CaseFiles(case_id, paths, is_sample=True)
    reference = resolve_under(root, key)
    if not reference.is_file():
        raise InputError("file not found in the data folder", key)
    spec = bundle.inputs[0]
    for case in find_cases(root, bundle):
        if case.paths.get(spec.name, Path()).resolve() != reference:
            continue
        if case.problem is not None:
            raise InputError(case.problem, key)
        paths = {name: path.resolve() for name, path in case.paths.items()}
        if not all(is_inside(root, path) for path in paths.values()):
            raise InputError("refused: a modality of this case lies outside the data folder", key)
        return CaseFiles(case.id, paths, is_sample=False)
    raise InputError(f"not a {spec.description} image by name (expected {', '.join(spec.patterns)})", key)
