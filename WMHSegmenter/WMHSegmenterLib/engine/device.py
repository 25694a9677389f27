"""Choosing where the network runs: cuda > mps > cpu, or what the user asked for if it exists."""

from __future__ import annotations

from .errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> list[str]:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.insert(0, "mps")
    return devices


def resolve_device(requested: str = "auto") -> str:
    if requested not in DEVICE_CHOICES:
        raise InputError(f"unknown device {requested!r} (choose from {', '.join(DEVICE_CHOICES)})")
    available = available_devices()
    if requested == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if d in available)
    if requested not in available:
        raise InputError(f"device {requested!r} was requested but is not available on this machine")
    return requested
