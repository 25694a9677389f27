"""Checkpoints that survive a kill at any moment and can never execute code when loaded.

A checkpoint is written to a temporary file, flushed to disk and renamed over the old one; rename is
atomic, so a reader sees either the previous checkpoint or the new one, never a torn file. Contents
are tensors and plain Python values only, loaded with ``weights_only=True`` (no arbitrary unpickling).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import torch

from WMHSegmenterLib.engine.errors import InputError

CHECKPOINT_FORMAT = 1
LAST = "last.pt"
BEST = "best.pt"


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with open(temporary, "wb") as handle:
            torch.save({"format": CHECKPOINT_FORMAT, **state}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _sync_folder(path.parent)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for one problem: not a checkpoint we wrote
        lines = str(error).splitlines() or [type(error).__name__]
        reason = next((line.strip() for line in lines if "Unpickler error" in line), lines[0])
        raise InputError(f"not a readable checkpoint ({reason[:200]})", path) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"not a checkpoint of format {CHECKPOINT_FORMAT}", path)
    return state


def remove_partial_files(folder: str | Path) -> None:
    """Temporary files of writes a kill interrupted; only the process owning the run may call this."""
    for leftover in Path(folder).glob(".*.partial"):
        leftover.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    """Torch's generators as tensors (CPU, and every CUDA device when present)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (a power cut right after it must not bring the old file back)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
