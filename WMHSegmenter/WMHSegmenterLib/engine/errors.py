"""The errors a user can cause and fix, reported once at the edge (CLI, Slicer panel, web page)."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input: a file, a model, an option. The message is one line that names what is wrong."""

    def __init__(self, problem: str, path: str | Path | None = None):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


class Cancelled(Exception):
    """The user asked to stop; raised at the next tile boundary."""
