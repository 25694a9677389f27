"""Which Python packages the engine needs that this Python lacks, and what to say when installing fails.

Slicer ships numpy, scipy and SimpleITK but not safetensors; torch comes from the PyTorch extension
(a build matching the GPU driver), never from the requirements file. Checking uses package
metadata only, so nothing heavy is imported before the user starts work.
"""

from __future__ import annotations

import importlib.metadata
import io
import sys
from pathlib import Path

try:
    from packaging.requirements import InvalidRequirement, Requirement
except ModuleNotFoundError:  # a Python without packaging still has pip's vendored copy
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement

REQUIREMENTS_FILE = Path(__file__).resolve().parents[2] / "Resources" / "requirements.txt"
#: Kept in step with pyproject.toml; the PyTorch extension installs a build for the local GPU.
TORCH_REQUIREMENT = "torch>=2.2,<2.15"


def read_requirements(path: str | Path = REQUIREMENTS_FILE) -> list[str]:
    """Requirement lines of a requirements file, without comments and blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines())
    return [line for line in lines if line]


def unmet(requirement: str) -> str | None:
    """Why ``requirement`` is not met ("missing", "version 1.2 installed"), or None when it is."""
    try:
        parsed = Requirement(requirement)
    except InvalidRequirement as error:
        raise ValueError(f"invalid requirement {requirement!r}: {error}") from None
    try:
        version = importlib.metadata.version(parsed.name)
    except importlib.metadata.PackageNotFoundError:
        return "missing"
    if parsed.specifier and not parsed.specifier.contains(version, prereleases=True):
        return f"version {version} installed"
    return None


def missing_requirements(requirements: list[str] | None = None) -> list[str]:
    """The requirements (default: the extension's requirements file) that need installing."""
    requirements = read_requirements() if requirements is None else requirements
    return [requirement for requirement in requirements if unmet(requirement) is not None]


def explain_install_failure(packages: list[str], error: str) -> str:
    """A message a user can act on, from pip's output when installing ``packages`` failed."""
    lowered = error.lower()
    if "no space left" in lowered or "errno 28" in lowered:
        advice = "The disk is full: free some space (a few hundred MB) and try again."
    elif any(
        hint in lowered
        for hint in ("name resolution", "connection", "network is unreachable", "timed out", "proxy")
    ):
        advice = (
            "The package index could not be reached (offline, firewall or proxy). Connect to the "
            "internet and try again, or install the wheels from a local folder in the Python console: "
            "slicer.util.pip_install('--no-index --find-links /path/to/wheels " + " ".join(packages) + "')."
        )
    elif "permission denied" in lowered or "errno 13" in lowered:
        advice = "Slicer's Python folder is not writable: install Slicer in a folder you own."
    else:
        advice = "See the Python console for pip's full output."
    last_line = next((line for line in reversed(error.strip().splitlines()) if line.strip()), "")
    return f"Could not install {', '.join(packages)}. {advice}" + (
        f"\n\npip said: {last_line}" if last_line else ""
    )


class CapturedOutput(io.TextIOBase):
    """A stdout that keeps what pip prints (for :func:`explain_install_failure`) and still shows it."""

    def __init__(self, echo=None):
        self._echo = echo if echo is not None else sys.stdout
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return self._echo.write(text)

    def flush(self) -> None:
        self._echo.flush()

    @property
    def text(self) -> str:
        return "".join(self._parts)
