"""Where a model came from: the code revision and the hardware it was trained on, for model.json."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

import torch

from .config import REPOSITORY_ROOT


def code_version() -> str:
    """``<package version>+g<commit>[-dirty]``, or just the package version outside a git checkout."""
    try:
        package = metadata.version("wmhsegmenter")
    except metadata.PackageNotFoundError:
        package = "unknown"
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=REPOSITORY_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return package
    return f"{package}+g{described}" if described else package


def hardware(device: torch.device, world_size: int) -> dict[str, object]:
    described = {
        "device": device.type,
        "processes": world_size,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": str(torch.__version__),  # TorchVersion is not a plain str for weights_only loads
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        described["gpu"] = str(torch.cuda.get_device_name(device))
    return described
