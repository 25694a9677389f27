"""Paths a browser names, resolved inside the data folder and nowhere else.

Anything a page sends is untrusted: a relative path can climb out with ``..``, be absolute, or pass
through a symlink that points elsewhere. Resolving it completely (every symlink followed) and
checking that the result still lies under the completely resolved root refuses all three at once;
the same check filters what is listed, so the page is never offered a file it may not read.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ..engine.errors import InputError


def resolve_under(root: str | Path, relative: str | Path) -> Path:
    """The real path of ``relative`` inside ``root``; raises InputError for anything that leaves it.

    Refuses absolute paths, ``..`` components, and symlinks (of the file or of any folder on the way)
    that resolve outside the root. The path need not exist yet, so outputs can be checked too.
    """
    text = str(relative)
    if not text.strip():
        raise InputError("no file named")
    if "\x00" in text:
        raise InputError("refused: not a file name", repr(text))
    parts = PurePosixPath(text.replace("\\", "/"))
    if parts.is_absolute() or ".." in parts.parts:
        raise InputError("refused: give a path inside the data folder, without '..'", text)
    real_root = Path(root).resolve(strict=True)
    try:
        resolved = (real_root / parts).resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop, a name too long
        raise InputError(f"refused: cannot resolve ({error})", text) from None
    if not resolved.is_relative_to(real_root):
        raise InputError("refused: it leads outside the data folder", text)
    return resolved


def is_inside(root: str | Path, path: str | Path) -> bool:
    """True when ``path`` (a symlink followed to its target) lies inside ``root``."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def relative_name(root: str | Path, path: str | Path) -> str:
    """``path`` as the page shows it: relative to the data folder, with forward slashes."""
    return Path(path).relative_to(Path(root)).as_posix()
